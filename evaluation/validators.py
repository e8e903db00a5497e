"""The bounds of an export's filters that are counts, one validator per field.

The export form (`evaluation.forms`), the API (`evaluation.apis`) and `export_dataset` check a
count with the same function, so a number no item can reach (10**30) is refused with one message
instead of being saved on a job whose query then fails.
"""

from django.core.exceptions import ValidationError

MAX_RATING_COUNT = 10_000  # ratings of one item on one question; far above any overlap


def validate_min_ratings(value: int) -> None:
    if not 0 <= value <= MAX_RATING_COUNT:
        raise ValidationError(
            f"the minimum number of ratings must be between 0 and {MAX_RATING_COUNT}",
            code="min_ratings",
            params={"value": value},
        )


def validate_agree_count(value: int) -> None:
    if not 1 <= value <= MAX_RATING_COUNT:
        raise ValidationError(
            f"the count of ratings must be between 1 and {MAX_RATING_COUNT}",
            code="count",
            params={"value": value},
        )
