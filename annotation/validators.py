"""The rules a campaign's settings, its question names and ids sent in bodies follow, one
validator per field.

The admins' form (`annotation.forms`), the API's serializers (`annotation.apis`), the Django admin
and the services (`annotation.services.campaigns`) all check a value with the same function here,
so the limits and their messages exist once. Each raises Django's `ValidationError`, which forms
and DRF serializers take as they are; the services turn it into an `AnnotationError` for the field.
"""

import re
from collections.abc import Callable

from django.core.exceptions import ValidationError

from config.converters import MAX_ID

MAX_OVERLAP = 100  # annotators per post
MAX_LEASE_MINUTES = 7 * 24 * 60
MAX_QUESTION_NAME = 50  # Question.name's max_length
# Letters, digits, _ and -: a name is a column of the CSV exports and never starts a formula.
_QUESTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


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


def validate_question_name(value: str) -> None:
    if len(value) > MAX_QUESTION_NAME or not _QUESTION_NAME.fullmatch(value):
        raise ValidationError(
            f"a question name is 1 to {MAX_QUESTION_NAME} letters, digits, _ or - "
            "(not starting with -)",
            code="question_name",
            params={"value": value},
        )


# Batches whose items a campaign may rate: finished, with every post tried (done with failures is
# still done). Queued, running and paused batches are unfinished; failed and cancelled ones stop.
RATEABLE_BATCH_STATUSES = frozenset({"done"})


def validate_batch_rateable(batch) -> None:
    """A campaign rates finished batches only: a failed or unfinished one is refused by name."""
    if batch.status not in RATEABLE_BATCH_STATUSES:
        raise ValidationError(
            f"batch {batch.pk} is {batch.status}: only finished (done) batches can be rated",
            code="batch_not_rateable",
            params={"value": batch.pk},
        )


def validate_id(value: int) -> None:
    """An id sent in a body (an item, a question): a whole number the database can hold."""
    if not 1 <= value <= MAX_ID:
        raise ValidationError(
            f"{value} is not an id (1 to {MAX_ID})", code="id", params={"value": value}
        )


CAMPAIGN_VALIDATORS: dict[str, Callable[[object], None]] = {
    "overlap": validate_overlap,
    "lease_minutes": validate_lease_minutes,
    "gold_rate": validate_gold_rate,
}
