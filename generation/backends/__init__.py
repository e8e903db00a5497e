"""Backends: the only code that talks to a model. `backend_for(endpoint)` picks one."""

from typing import TYPE_CHECKING

from generation.backends.base import Backend, BackendError, ChatRequest, Completion

if TYPE_CHECKING:
    from generation.models import Endpoint

__all__ = ["Backend", "BackendError", "ChatRequest", "Completion", "backend_for"]


def backend_for(endpoint: "Endpoint") -> Backend:
    """A backend for an endpoint. Raises BackendError (not retryable) when its API key is unset.

    The transformers backend is imported only here, so web and API workers never load torch.
    """
    if endpoint.backend == "openai":
        from generation.backends.openai import OpenAIBackend

        return OpenAIBackend(
            model=endpoint.model,
            base_url=endpoint.base_url,
            parameters=endpoint.parameters,
            api_key_env=endpoint.api_key_env,
            concurrency=endpoint.concurrency,
        )
    if endpoint.backend == "transformers":
        from generation.backends.transformers import TransformersBackend

        return TransformersBackend(
            model=endpoint.model, model_path=endpoint.model_path, parameters=endpoint.parameters
        )
    raise ValueError(f"unknown backend {endpoint.backend!r}")
