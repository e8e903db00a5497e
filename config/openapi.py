"""drf-spectacular hooks: document the error answers every operation can give.

DRF answers 400 (validation), 401/403 (authentication, permission), 404 and 429 (throttling) from
any view, and 415 to a body whose content type the view does not take; listing them once here
keeps the schema truthful without repeating them on every view.
"""

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "description": '`{"detail": message}` or `{field: [messages]}`',
    "additionalProperties": True,
}
ERRORS = {
    "400": "Invalid input",
    "401": "Not authenticated",
    "403": "Not allowed",
    "404": "Not found",
    "429": "Too many requests",
}
BODY_ERRORS = {"415": "Unsupported media type"}


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            errors = {**ERRORS, **(BODY_ERRORS if method in {"post", "put", "patch"} else {})}
            for status, description in errors.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                )
    return result
