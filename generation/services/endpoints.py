"""Model endpoints: create, change, test and delete them. Only the key's variable name is stored.

Bad input is a Django `ValidationError` (400); deleting an endpoint that ran batches is a
`Conflict` (409). With `test_connection`, saving first checks that the endpoint answers
(`generation.backends.probe`) and refuses, under the `connection` key, when it does not; the page,
the API and `endpoint_add` ask for it unless the person chose to save without a working
connection. The check runs before the transaction: no row is locked while a server is waited for.
"""

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from config.errors import Conflict
from generation.backends.base import BACKEND_OPTIONS
from generation.backends.guard import api_key_env_error, base_url_error
from generation.backends.probe import ConnectionCheck, connection_check
from generation.limits import number_error
from generation.models import Endpoint

ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RE = re.compile(r"^[\w.-]+$")
SAMPLING_PARAMETERS = {
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "seed": (int,),
    "frequency_penalty": (int, float),
    "presence_penalty": (int, float),
    "stop": (str, list),
}


def _has_nul(value: Any) -> bool:
    """PostgreSQL stores no NUL character, in text or in JSON."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def sampling_parameters_clean(
    parameters: Any, *, allowed: dict[str, tuple] = SAMPLING_PARAMETERS
) -> dict[str, Any]:
    """The sampling parameters a batch or endpoint may set, in OpenAI's names and types."""
    if parameters in (None, ""):
        return {}
    if not isinstance(parameters, dict):
        raise ValidationError({"parameters": "Sampling parameters must be a JSON object."})
    errors = []
    for key, value in parameters.items():
        types = allowed.get(key)
        if types is None:
            errors.append(f"unknown parameter {key!r} (allowed: {', '.join(allowed)})")
        elif bool in types:
            if not isinstance(value, bool):
                errors.append(f"{key} must be true or false")
        elif isinstance(value, bool) or not isinstance(value, types):
            errors.append(f"{key} has the wrong type")
        elif isinstance(value, int | float) and value < 0:
            errors.append(f"{key} must not be negative")
        elif _has_nul(value):
            errors.append(f"{key} must not contain a NUL character")
    if errors:
        raise ValidationError({"parameters": errors})
    return dict(parameters)


def _endpoint_clean(endpoint: Endpoint) -> None:
    errors: dict[str, str] = {}
    if not NAME_RE.match(endpoint.name or ""):
        errors["name"] = "Use letters, digits, dots, dashes and underscores."
    elif Endpoint.objects.filter(name=endpoint.name).exclude(pk=endpoint.pk).exists():
        errors["name"] = f"An endpoint named {endpoint.name!r} already exists."
    if endpoint.backend not in Endpoint.Backend.values:
        errors["backend"] = f"Backend must be one of {', '.join(Endpoint.Backend.values)}."
    if endpoint.backend == Endpoint.Backend.OPENAI:
        if not endpoint.base_url:
            errors["base_url"] = "An openai endpoint needs a base URL."
        else:
            # Not URLValidator: service names such as http://vllm:8000/v1 have no dot.
            url = urlsplit(endpoint.base_url)
            try:
                host = url.hostname
            except ValueError:
                host = None
            if url.scheme not in ("http", "https") or not host or " " in endpoint.base_url:
                errors["base_url"] = "Enter a valid http(s) URL."
            elif error := base_url_error(endpoint.base_url):
                errors["base_url"] = error
        if endpoint.model_path:
            errors["model_path"] = "An openai endpoint has a base URL, not a model path."
    elif endpoint.backend == Endpoint.Backend.TRANSFORMERS:
        if not endpoint.model_path:
            errors["model_path"] = "A transformers endpoint needs a model path or hub id."
        if endpoint.base_url:
            errors["base_url"] = "A transformers endpoint has a model path, not a base URL."
    if not endpoint.model:
        errors["model"] = "Name the model."
    if endpoint.api_key_env and not ENV_VAR_RE.match(endpoint.api_key_env):
        errors["api_key_env"] = (
            "Give the name of an environment variable (e.g. OPENAI_API_KEY), never the key."
        )
    elif error := api_key_env_error(endpoint.api_key_env):
        errors["api_key_env"] = error
    if error := number_error("concurrency", endpoint.concurrency):
        errors["concurrency"] = error
    if endpoint.requests_per_minute is not None and (
        error := number_error("requests_per_minute", endpoint.requests_per_minute)
    ):
        errors["requests_per_minute"] = error
    if errors:
        raise ValidationError(errors)
    endpoint.parameters = sampling_parameters_clean(
        endpoint.parameters,
        allowed={**SAMPLING_PARAMETERS, **BACKEND_OPTIONS},  # backend options: endpoints only
    )


def endpoint_create(
    *,
    name: str,
    backend: str,
    model: str,
    base_url: str = "",
    model_path: str = "",
    api_key_env: str = "",
    concurrency: int = 32,
    requests_per_minute: int | None = None,
    parameters: dict[str, Any] | None = None,
    test_connection: bool = False,
) -> Endpoint:
    """A new endpoint; with `test_connection`, only one that answers (its check is kept on the
    returned endpoint as `connection_check`)."""
    endpoint = Endpoint(
        name=name.strip(),
        backend=backend,
        model=model.strip(),
        base_url=base_url.strip(),
        model_path=model_path.strip(),
        api_key_env=api_key_env.strip(),
        concurrency=concurrency,
        requests_per_minute=requests_per_minute,
        parameters=parameters or {},
    )
    _endpoint_clean(endpoint)
    _connection_required(endpoint, test_connection)
    with transaction.atomic():
        endpoint.save()
    return endpoint


ENDPOINT_FIELDS = {
    "name",
    "backend",
    "model",
    "base_url",
    "model_path",
    "api_key_env",
    "concurrency",
    "requests_per_minute",
    "parameters",
}


def _with_changes(endpoint: Endpoint, changes: dict[str, Any]) -> Endpoint:
    unknown = set(changes) - ENDPOINT_FIELDS
    if unknown:
        raise ValidationError(f"Unknown endpoint fields: {', '.join(sorted(unknown))}")
    for field, value in changes.items():
        if isinstance(value, str):
            value = value.strip()
        setattr(endpoint, field, value)
    _endpoint_clean(endpoint)
    return endpoint


def _connection_required(endpoint: Endpoint, test_connection: bool) -> None:
    endpoint.connection_check = None
    if test_connection:
        check = connection_check(endpoint)
        if not check.ok:
            raise ValidationError({"connection": check.message})
        endpoint.connection_check = check


def endpoint_update(
    *, endpoint: Endpoint, test_connection: bool = False, **changes: Any
) -> Endpoint:
    """Change an endpoint; with `test_connection`, only when it answers afterwards."""
    _with_changes(endpoint, changes)
    _connection_required(endpoint, test_connection)
    with transaction.atomic():
        endpoint.save()
    return endpoint


def endpoint_connection_test(*, endpoint: Endpoint | None = None, **fields: Any) -> ConnectionCheck:
    """Whether an endpoint answers: a stored one, a stored one with `fields` changed, or a new one
    made of `fields`. Nothing is saved; invalid fields raise ValidationError as saving would."""
    endpoint = Endpoint(parameters={}) if endpoint is None else Endpoint.objects.get(pk=endpoint.pk)
    return connection_check(_with_changes(endpoint, fields))


@transaction.atomic
def endpoint_delete(*, endpoint: Endpoint) -> None:
    if endpoint.batches.exists():
        raise Conflict("This endpoint ran batches; it is kept for their provenance.")
    try:
        endpoint.delete()
    except ProtectedError:
        # Records of other apps that name it (judge runs) keep it too; nothing was deleted yet.
        raise Conflict(
            "This endpoint is named by judge runs; it is kept for their provenance."
        ) from None
