"""Bounds of the whole numbers an admin gives a batch or an endpoint, one per field.

The form, the API and the management commands all check with these (the forms and serializers
through `form_field`/`serializer_field`, the services through `number_check`), so a number too
big for the database (10**30) is a clear error everywhere, never a 500.
"""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from rest_framework import serializers

BOUNDS: dict[str, tuple[int, int]] = {
    "limit": (1, 10**9),
    "token_budget": (1, 10**15),
    "requests_per_minute": (1, 10**6),
    "concurrency": (1, 10**4),
}
LABELS = {
    "limit": "The limit",
    "token_budget": "The token budget",
    "requests_per_minute": "Requests per minute",
    "concurrency": "Concurrency",
}


def number_error(field: str, value: Any) -> str | None:
    """Why `value` is not a valid `field`; None when it is (None itself is left to the caller)."""
    low, high = BOUNDS[field]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{LABELS[field]} must be a whole number."
    if value < low:
        return f"{LABELS[field]} must be at least {low}."
    if value > high:
        return f"{LABELS[field]} must be at most {high:,}."
    return None


def number_check(**values: Any) -> None:
    """A `ValidationError` naming every field out of its bounds; None values pass."""
    errors = {
        field: error
        for field, value in values.items()
        if value is not None and (error := number_error(field, value))
    }
    if errors:
        raise ValidationError(errors)


def form_field(field: str, **kwargs: Any) -> forms.IntegerField:
    low, high = BOUNDS[field]
    return forms.IntegerField(min_value=low, max_value=high, **kwargs)


def serializer_field(field: str, **kwargs: Any) -> serializers.IntegerField:
    low, high = BOUNDS[field]
    return serializers.IntegerField(min_value=low, max_value=high, **kwargs)
