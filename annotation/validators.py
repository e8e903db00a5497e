"""The rules a campaign's settings follow, one validator per field.

The admins' form (`annotation.forms`), the API's serializers (`annotation.apis`), the Django admin
and the services (`annotation.services.campaigns`) all check a value with the same function here,
so the limits and their messages exist once. Each raises Django's `ValidationError`, which forms
and DRF serializers take as they are; the services turn it into an `AnnotationError` for the field.
"""

from collections.abc import Callable

from django.core.exceptions import ValidationError

MAX_OVERLAP = 100  # annotators per post
MAX_LEASE_MINUTES = 7 * 24 * 60


def validate_overlap(value: int) -> None:
    if not 1 <= value <= MAX_OVERLAP:
        raise ValidationError(
            f"overlap must be between 1 and {MAX_OVERLAP}", code="overlap", params={"value": value}
        )


def validate_lease_minutes(value: int) -> None:
    if not 1 <= value <= MAX_LEASE_MINUTES:
        raise ValidationError(
            f"the lease must last at least one minute and at most {MAX_LEASE_MINUTES} (a week)",
            code="lease_minutes",
            params={"value": value},
        )


def validate_gold_rate(value: float) -> None:
    if not 0 <= value <= 1:
        raise ValidationError(
            "the gold rate must be between 0 and 1", code="gold_rate", params={"value": value}
        )


CAMPAIGN_VALIDATORS: dict[str, Callable[[object], None]] = {
    "overlap": validate_overlap,
    "lease_minutes": validate_lease_minutes,
    "gold_rate": validate_gold_rate,
}
