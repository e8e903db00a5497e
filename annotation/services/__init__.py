"""Writes of the annotation app, one module per use case:

- `campaigns`: create a campaign (its questions and tasks), add tasks, update it, add members;
- `assignments`: claim the next post, skip it, submit its ratings, expire forgotten leases,
  reopen a post for those who skipped it;
- `gold`: gold answers, which make their posts gold tasks;
- `ratings_import`: ratings from a file, all or nothing.

The PostgreSQL statements of the annotators' hot path and their ORM twins are in
`annotation.hot_path`; the rules a campaign's settings follow in `annotation.validators`.
Everything callers use is importable from here.
"""

from annotation.errors import AnnotationError, StaleSubmission
from annotation.services.assignments import (
    RatingInput,
    assignment_claim,
    assignment_skip,
    assignment_submit,
    assignments_reopen,
    leases_expire,
)
from annotation.services.campaigns import (
    QuestionSpec,
    campaign_add_members,
    campaign_add_tasks,
    campaign_create,
    campaign_update,
    question_specs,
)
from annotation.services.gold import gold_answers_set
from annotation.services.ratings_import import RatingsImportReport, ratings_import

__all__ = [
    "AnnotationError",
    "QuestionSpec",
    "RatingInput",
    "RatingsImportReport",
    "StaleSubmission",
    "assignment_claim",
    "assignment_skip",
    "assignment_submit",
    "assignments_reopen",
    "campaign_add_members",
    "campaign_add_tasks",
    "campaign_create",
    "campaign_update",
    "gold_answers_set",
    "leases_expire",
    "question_specs",
    "ratings_import",
]
