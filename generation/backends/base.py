"""The backend interface: the only door through which Distillery talks to a model.

A request is an OpenAI-style chat (images as data URLs in `image_url` parts); an answer is its text
and token counts. API backends answer one request at a time, asynchronously, so the executor can
keep a rolling window of requests in flight; GPU backends answer a list at once, batched on the
device.
"""

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

#: Endpoint parameters that configure the backend rather than sampling, with the types they take;
#: never sent to a model. `structured_output`: the server supports JSON-schema response formats.
#: `timeout` (seconds per call, default 120). `allow_download`, `device`, `dtype`, `batch_size`,
#: `adapter` (a PEFT adapter folder): local models (see `generation/backends/transformers.py`).
#: `share_cache`: answers are shared with every endpoint serving the same model name that also
#: shares (see `Endpoint.cache_key`).
BACKEND_OPTIONS: dict[str, tuple[type, ...]] = {
    "structured_output": (bool,),
    "timeout": (int, float),
    "allow_download": (bool,),
    "device": (str,),
    "dtype": (str,),
    "batch_size": (int,),
    "adapter": (str,),
    "share_cache": (bool,),
}


def sampling_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters meant for the model, without the backend options."""
    return {k: v for k, v in parameters.items() if k not in BACKEND_OPTIONS}


_DATA_URL = re.compile(r"^data:([\w/+.-]+)?(;base64)?,", re.IGNORECASE)


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 `data:` URL (images reach backends this way)."""
    match = _DATA_URL.match(url)
    if not match or not match.group(2):
        raise ValueError("expected a base64 data: URL")
    try:
        return base64.b64decode(url[match.end() :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the data URL is not valid base64: {exc}") from exc


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    # Sampling parameters in OpenAI's names: temperature, top_p, max_tokens, seed, ...
    parameters: dict[str, Any] = field(default_factory=dict)
    # A JSON schema the answer must follow, used where the endpoint supports structured output.
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    # "stop", or "length" when the answer was cut at max_tokens (its parse will likely fail).
    finish_reason: str = "stop"


class BackendError(Exception):
    """A failed call. `retryable` for rate limits, timeouts and 5xx; `raw` keeps what came back."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        raw: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.raw = raw
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"BackendError({str(self)!r}, retryable={self.retryable}, status={self.status}, "
            f"retry_after={self.retry_after})"
        )


class Backend:
    """Base class. Subclasses implement `acomplete` (API) or `complete_batch` (local models)."""

    #: True when calls should go through `complete_batch` on the `gpu` queue.
    batched: bool = False

    def __init__(self, *, model: str, parameters: dict[str, Any] | None = None) -> None:
        self.model = model
        self.parameters = dict(parameters or {})

    async def acomplete(self, request: ChatRequest) -> Completion:
        raise NotImplementedError

    def complete_batch(self, requests: list[ChatRequest]) -> list[Completion | BackendError]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections; the executor calls it when a run ends."""
