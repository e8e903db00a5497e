"""Does an endpoint work? One short check, its answer in plain words, before an endpoint is saved.

An OpenAI-compatible server is asked for its models list (`GET <base URL>/models`) and must list
the endpoint's model; a server without that route (404, 405) gets a one-token chat call instead.
A transformers endpoint's model must be a folder with a `config.json`, or a hub id already in the
local Hugging Face cache (or `allow_download` on). The check runs where it is asked (the web
server or the command line), not on the workers: a key or a model folder that only the workers
have fails here, and the endpoint can still be saved when the person asks for it.

The same rules as a batch's calls hold: the base URL and the key's variable pass
`generation.backends.guard` first, redirects are never followed, and the key never appears in a
message. torch is not imported (web processes never load it), nor openai until a check runs.
"""

import json
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from generation.backends.guard import api_key_env_error, base_url_error

if TYPE_CHECKING:
    import openai

    from generation.models import Endpoint

#: Seconds the check waits for an answer, at most (an endpoint's own `timeout` when shorter).
CHECK_TIMEOUT = 10.0
MODELS_NAMED = 10


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


class _Failed(Exception):
    pass


def connection_check(endpoint: "Endpoint") -> ConnectionCheck:
    """Check that `endpoint` answers, without saving anything; never raises for a failure."""
    try:
        if endpoint.backend == "openai":
            return ConnectionCheck(True, _openai_check(endpoint))
        if endpoint.backend == "transformers":
            return ConnectionCheck(True, _transformers_check(endpoint))
        return ConnectionCheck(False, f"Unknown backend {endpoint.backend!r}.")
    except _Failed as failure:
        return ConnectionCheck(False, str(failure))


# --- OpenAI-compatible servers -------------------------------------------------------------------


def _where(base_url: str) -> str:
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.hostname}:{port}"


def _api_key(endpoint: "Endpoint") -> str:
    if not endpoint.api_key_env:
        return "none"  # local servers (vLLM, Ollama) take any key
    if error := api_key_env_error(endpoint.api_key_env):
        raise _Failed(error)
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise _Failed(
            f"The environment variable {endpoint.api_key_env} that holds the API key is not set "
            "here, so the server cannot be asked with it. Set it where Distillery runs (the "
            "workers need it too)."
        )
    return key


def _timeout(endpoint: "Endpoint") -> float:
    own = (endpoint.parameters or {}).get("timeout")
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return min(float(own), CHECK_TIMEOUT)
    return CHECK_TIMEOUT


def _connection_failure(exc: BaseException, where: str, timeout: float) -> str:
    """The first cause of a failed connection that a person can act on, in words."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            host = where.rsplit(":", 1)[0]
            return f"DNS failure: the host name {host} does not resolve ({cause.strerror})."
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"Connection refused at {where}: nothing listens there. Is the model server "
                "running, on that port?"
            )
        if isinstance(cause, TimeoutError):
            return f"Timeout: no answer from {where} within {timeout:g} s."
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed with {where}: {cause.reason or cause}."
        if isinstance(cause, OSError) and cause.strerror:
            return f"Cannot connect to {where}: {cause.strerror}."
        cause = cause.__cause__ or cause.__context__
    return f"Cannot connect to {where}: {type(exc).__name__}."


def _server_message(response: Any) -> str:
    try:
        message = json.loads(response.text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return " ".join(str(message).split())[:300]


def _status_failure(response: Any, endpoint: "Endpoint", where: str) -> str:
    status = response.status_code
    said = _server_message(response)
    said = f" The server said: {said}" if said else ""
    if status == 401:
        if endpoint.api_key_env:
            return (
                f"401 Unauthorized: the server at {where} refused the API key in "
                f"{endpoint.api_key_env}.{said}"
            )
        return (
            f"401 Unauthorized: the server at {where} wants an API key; name the environment "
            f"variable that holds it.{said}"
        )
    if status == 403:
        return f"403 Forbidden: the server at {where} refused the request.{said}"
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return (
            f"The server at {where} redirects ({status}) to {location or 'another address'}; "
            "redirects are not followed: give the final address as the base URL."
        )
    return f"The server at {where} answered {status}.{said}"


def _openai_check(endpoint: "Endpoint") -> str:
    import openai

    if error := base_url_error(endpoint.base_url):
        raise _Failed(error)
    where = _where(endpoint.base_url)
    timeout = _timeout(endpoint)
    client = openai.OpenAI(
        base_url=endpoint.base_url,
        api_key=_api_key(endpoint),
        max_retries=0,
        timeout=timeout,
        # No redirects: a server may not send the check to an address not checked.
        http_client=openai.DefaultHttpxClient(timeout=timeout, follow_redirects=False),
    )
    started = time.perf_counter()
    try:
        response = client.models.with_raw_response.list()
        served = _model_ids(response.http_response.text)
        if served is None:
            raise _Failed(
                f"The server at {where} answered {endpoint.base_url.rstrip('/')}/models with "
                "something that is not a models list: is the base URL that of an "
                "OpenAI-compatible API (it usually ends in /v1)?"
            )
        if endpoint.model not in served:
            named = ", ".join(served[:MODELS_NAMED]) or "none"
            more = f" and {len(served) - MODELS_NAMED} more" if len(served) > MODELS_NAMED else ""
            raise _Failed(
                f"Model {endpoint.model!r} is not served at {where}; it serves: {named}{more}."
            )
        how = "is listed"
    except openai.APIStatusError as exc:
        if exc.status_code not in (404, 405):
            raise _Failed(_status_failure(exc.response, endpoint, where)) from None
        _one_token(client, endpoint, where)  # no models list there: ask for one token
        how = "answered a one-token call"
    except openai.APITimeoutError:
        raise _Failed(f"Timeout: no answer from {where} within {timeout:g} s.") from None
    except openai.APIConnectionError as exc:
        raise _Failed(_connection_failure(exc, where, timeout)) from None
    finally:
        client.close()
    milliseconds = round((time.perf_counter() - started) * 1000)
    return f"Connected to {where}: model {endpoint.model!r} {how} ({milliseconds} ms)."


def _model_ids(text: str) -> list[str] | None:
    try:
        data = json.loads(text)["data"]
        return [str(model["id"]) for model in data]
    except (ValueError, KeyError, TypeError):
        return None


def _one_token(client: "openai.OpenAI", endpoint: "Endpoint", where: str) -> None:
    import openai

    try:
        client.chat.completions.with_raw_response.create(
            model=endpoint.model,
            messages=[{"role": "user", "content": "Say OK."}],
            max_tokens=1,
        )
    except openai.APIStatusError as exc:
        if exc.status_code == 404:
            raise _Failed(
                f"Model {endpoint.model!r} is not served at {where} (404: "
                f"{_server_message(exc.response) or 'not found'})."
            ) from None
        raise _Failed(_status_failure(exc.response, endpoint, where)) from None


# --- local transformers models -------------------------------------------------------------------


def _transformers_check(endpoint: "Endpoint") -> str:
    path = endpoint.model_path
    folder = Path(path).expanduser()
    if folder.is_dir():
        config = folder / "config.json"
        if not config.is_file():
            raise _Failed(f"The folder {path} has no config.json: it is not a transformers model.")
        try:
            model_type = json.loads(config.read_text()).get("model_type") or "unknown"
        except (ValueError, OSError, AttributeError):
            raise _Failed(f"{path}/config.json is not a readable JSON model config.") from None
        return f"Found the model in {path} (model type {model_type})."
    if folder.exists():
        raise _Failed(f"{path} is a file, not a model folder.")
    if path.startswith(("/", ".", "~")) or path.count("/") != 1:
        raise _Failed(f"No folder {path} on this machine.")
    try:
        from huggingface_hub import try_to_load_from_cache  # with the gpu extra
    except ImportError:
        raise _Failed(
            f"No folder {path} on this machine, and hub ids can only be looked up where the "
            "gpu extra (transformers) is installed."
        ) from None
    cached = try_to_load_from_cache(path, "config.json")
    if isinstance(cached, str):
        return f"Found {path} in the local Hugging Face cache."
    if (endpoint.parameters or {}).get("allow_download") is True:
        return f"{path} is not in the local Hugging Face cache; the GPU worker will download it."
    raise _Failed(
        f"{path} is neither a folder on this machine nor a model in the local Hugging Face "
        'cache; download it first, or set "allow_download": true in the parameters.'
    )
