"""The annotators' hot path: each PostgreSQL statement beside its ORM twin and its row mapping.

An annotator makes two calls per post, and each is a few statements (docs/annotation.md):

- `next_task`: `POST /api/campaigns/<id>/next/`: the campaign with the caller's open lease, the
  claim, the task as one row; now and then the expiry of forgotten leases;
- `submit`: `POST /api/assignments/<id>/submit/`: the assignment with what the submission must
  cover, then one statement that marks it done and upserts the ratings;
- `rows`: what both share: rows mapped onto models, SQL pieces.

On PostgreSQL each function runs one prepared statement (config/prepared.py); on any other
database (SQLite in `make demo` and most tests) its ORM twin, a few lines below it, does the same,
and tests/annotation/test_postgres_path.py checks that both give the same answers. The rules around
the statements (what a submission must hold, which lease an annotator gets, what a late submission
may do) are in `annotation.services.assignments`.
"""

from annotation.hot_path.next_task import (
    claim_one,
    claimable,
    expire_lease,
    expire_leases,
    member_campaign,
    member_campaign_and_lease,
    open_lease,
    task_data,
    task_data_from_view,
)
from annotation.hot_path.rows import RatingTargets
from annotation.hot_path.submit import (
    finish_leased_postgresql,
    finish_locked,
    own_assignment,
    own_assignment_to_submit,
    rating_targets,
    ratings_upsert,
)

__all__ = [
    "RatingTargets",
    "claim_one",
    "claimable",
    "expire_lease",
    "expire_leases",
    "finish_leased_postgresql",
    "finish_locked",
    "member_campaign",
    "member_campaign_and_lease",
    "open_lease",
    "own_assignment",
    "own_assignment_to_submit",
    "rating_targets",
    "ratings_upsert",
    "task_data",
    "task_data_from_view",
]
