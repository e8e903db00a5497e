"""Any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, TGI) through the official client.

The caller owns retries and concurrency: the client is built with `max_retries=0`, every failure
becomes a `BackendError` (retryable for 408, 409, 429, 5xx, timeouts and broken connections or
bodies) that keeps the raw body, and one pooled HTTP client per backend holds as many connections
as the endpoint's concurrency. Answers are read from the raw JSON body rather than through the
client's response models, which keeps our CPU per call below the bare client's.

The API key is read from the environment variable the endpoint names, when the backend is made;
it is never stored on the endpoint, logged, or shown in errors and reprs. The variable and the base
URL are checked then too (`generation.backends.guard`): a Django, database or broker variable is
never sent, and a metadata or (unless allowed) private address never called.
"""

import asyncio
import email.utils
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import openai

from generation.backends.base import (
    Backend,
    BackendError,
    ChatRequest,
    Completion,
    sampling_parameters,
)
from generation.backends.guard import api_key_env_error, base_url_error

DEFAULT_TIMEOUT = 120.0

# Sampling parameters the client takes as arguments; others (top_k, repetition_penalty, ...) go
# in the request body for servers such as vLLM that understand them.
_CLIENT_ARGUMENTS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "reasoning_effort",
    }
)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _status_error(status: int, headers: Mapping[str, str], raw: str) -> BackendError:
    message = raw
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return BackendError(
        f"HTTP {status}: {str(message)[:300]}",
        retryable=status in (408, 409, 429) or status >= 500,
        status=status,
        raw=raw,
        retry_after=_retry_after(headers),
    )


class OpenAIBackend(Backend):
    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        parameters: dict[str, Any] | None = None,
        api_key_env: str = "",
        concurrency: int = 32,
    ) -> None:
        super().__init__(model=model, parameters=parameters)
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.concurrency = max(1, concurrency)
        self.structured_output = bool(self.parameters.get("structured_output"))
        self.timeout = float(self.parameters.get("timeout") or DEFAULT_TIMEOUT)
        self._defaults = sampling_parameters(self.parameters)
        # Checked again here, not only when the endpoint was saved (generation/backends/guard.py):
        # an endpoint saved before the checks, or a name that now resolves elsewhere.
        if error := base_url_error(self.base_url):
            raise BackendError(f"refused base URL: {error}", retryable=False)
        self._api_key = self._read_api_key()
        self._client: openai.AsyncOpenAI | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r})"
        )

    def _read_api_key(self) -> str:
        if not self.api_key_env:
            return "none"  # local servers (vLLM, Ollama) take any key
        if error := api_key_env_error(self.api_key_env):
            raise BackendError(f"refused API key variable: {error}", retryable=False)
        key = os.environ.get(self.api_key_env)
        if not key:
            raise BackendError(
                f"the environment variable {self.api_key_env} that holds the API key is not set",
                retryable=False,
            )
        return key

    def _client_for_running_loop(self) -> openai.AsyncOpenAI:
        # An HTTP pool belongs to the event loop it was made in; a new loop gets a new pool.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # The client's own HTTP library (httpx or its successor), whichever it ships with.
            limits = type(openai.DEFAULT_CONNECTION_LIMITS)(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            )
            # No pool timeout: a call waiting for a free connection is queued, not failed.
            timeout = openai.Timeout(self.timeout, pool=None)
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                max_retries=0,
                timeout=timeout,
                # No redirects: a server may not send the worker to an address not checked.
                http_client=openai.DefaultAsyncHttpxClient(
                    limits=limits, timeout=timeout, follow_redirects=False
                ),
            )
            self._loop = loop
        return self._client

    def request_arguments(self, request: ChatRequest) -> dict[str, Any]:
        """The arguments of `chat.completions.create` for a request (endpoint defaults first)."""
        parameters = {**self._defaults, **sampling_parameters(request.parameters)}
        arguments: dict[str, Any] = {"model": self.model, "messages": request.messages}
        extra_body = {}
        for name, value in parameters.items():
            if name in _CLIENT_ARGUMENTS:
                arguments[name] = value
            else:
                extra_body[name] = value
        if extra_body:
            arguments["extra_body"] = extra_body
        if self.structured_output and request.json_schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.json_schema.get("title") or "answer",
                    "schema": request.json_schema,
                    "strict": True,
                },
            }
        return arguments

    async def acomplete(self, request: ChatRequest) -> Completion:
        client = self._client_for_running_loop()
        started = time.perf_counter()
        try:
            response = await client.chat.completions.with_raw_response.create(
                **self.request_arguments(request)
            )
        except openai.APITimeoutError as exc:
            raise BackendError(f"no answer within {self.timeout:g} s", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise BackendError(
                f"connection to {self.base_url} failed: {type(exc.__cause__).__name__}",
                retryable=True,
            ) from exc
        except openai.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.response.headers, exc.response.text) from exc
        latency_ms = round((time.perf_counter() - started) * 1000)
        return _completion(response.http_response, latency_ms)

    async def aclose(self) -> None:
        client, loop = self._client, self._loop
        self._client = self._loop = None
        # A pool made in another (finished) loop cannot be closed from this one; it is dropped.
        if client is not None and loop is asyncio.get_running_loop():
            await client.close()


def _completion(http_response: Any, latency_ms: int) -> Completion:
    raw = http_response.text
    try:
        body = json.loads(raw)
        choice = body["choices"][0]
        text = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BackendError(
            f"the server's answer is not a chat completion ({type(exc).__name__}: {exc})",
            retryable=True,
            status=http_response.status_code,
            raw=raw,
        ) from exc
    if not isinstance(text, str):
        refusal = choice["message"].get("refusal")
        raise BackendError(
            f"the answer has no text{f' (refusal: {refusal})' if refusal else ''}",
            retryable=False,
            status=http_response.status_code,
            raw=raw,
        )
    usage = body.get("usage") or {}
    return Completion(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_ms=latency_ms,
        finish_reason=choice.get("finish_reason") or "stop",
    )
