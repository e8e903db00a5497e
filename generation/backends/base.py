"""The backend interface: the only door through which Distillery talks to a model.

A request is an OpenAI-style chat (images as data URLs in `image_url` parts); an answer is its text
and token counts. API backends answer one request at a time, asynchronously, so the executor can
keep a rolling window of requests in flight; GPU backends answer a list at once, batched on the
device.
"""

from dataclasses import dataclass, field
from typing import Any


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
