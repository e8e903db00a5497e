"""The submit call's statements, each PostgreSQL statement beside its ORM twin.

`POST /api/assignments/<id>/submit/` runs `own_assignment_to_submit` (the caller's assignment and
what the submission must cover), then `finish_leased_postgresql`; a post that is not leased any
more (done and rated again, expired, skipped) takes the general path in
`annotation.services.assignments`, which locks it and calls `finish_locked`, the ORM twin. Every
rating is written by `ratings_upsert` or by the finish statement's INSERT, with one conflict rule.
"""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from annotation.hot_path.rows import (
    ASSIGNMENT_FIELDS,
    CAMPAIGN_FIELDS,
    OWN_ASSIGNMENT_SQL,
    PARAMETER_ITEMS_SQL,
    POST_ITEMS_SQL,
    TARGETS_COLUMNS,
    RatingTargets,
    assignment_from_row,
    from_row,
    on_postgresql,
)
from annotation.models import Assignment, Campaign, Rating
from annotation.selectors import campaign_items
from config import prepared

# --- the assignment and what a submission must cover ----------------------------------------------


def own_assignment(*, user: AbstractBaseUser, assignment_id: int) -> Assignment | None:
    """One of the user's assignments, in an active campaign they still rate in, or None."""
    if on_postgresql():
        row = prepared.fetchone(OWN_ASSIGNMENT_SQL, {"user": user.pk, "assignment": assignment_id})
        if row is None:
            return None
        split = len(ASSIGNMENT_FIELDS)
        campaign = from_row(Campaign, CAMPAIGN_FIELDS, row[split:])
        return assignment_from_row(row[:split], campaign)
    return (
        Assignment.objects.select_related("campaign")
        .filter(pk=assignment_id, annotator=user, campaign__members=user, campaign__is_active=True)
        .first()
    )


_RATING_TARGETS_SQL = f"""
WITH items AS ({PARAMETER_ITEMS_SQL})
SELECT {TARGETS_COLUMNS.format(campaign="%(campaign)s")}
"""


def rating_targets(*, assignment: Assignment) -> RatingTargets:
    """The questions and items a submission of this assignment must rate."""
    campaign = assignment.campaign
    if on_postgresql():
        params = {"campaign": campaign.pk, "post": assignment.post_id}
        return RatingTargets.from_row(*prepared.fetchone(_RATING_TARGETS_SQL, params))
    items = campaign_items(campaign=campaign).filter(post_id=assignment.post_id)
    return RatingTargets(
        {q.pk: (q.name, q.scale) for q in campaign.questions.all()},
        set(items.values_list("id", flat=True)),
    )


# The submitter's assignment, its campaign and what the submission must cover, in one round trip.
_OWN_ASSIGNMENT_TO_SUBMIT_SQL = f"""
WITH own AS ({OWN_ASSIGNMENT_SQL}),
items AS ({
    POST_ITEMS_SQL.format(
        campaign="(SELECT campaign_id FROM own)", post="(SELECT post_id FROM own)"
    )
})
SELECT own.*, {TARGETS_COLUMNS.format(campaign="own.campaign_id")}
FROM own
"""


def own_assignment_to_submit(
    *, user: AbstractBaseUser, assignment_id: int
) -> tuple[Assignment | None, RatingTargets | None]:
    """`own_assignment` and its `rating_targets`: one statement on PostgreSQL."""
    if not on_postgresql():
        assignment = own_assignment(user=user, assignment_id=assignment_id)
        return assignment, None if assignment is None else rating_targets(assignment=assignment)
    row = prepared.fetchone(
        _OWN_ASSIGNMENT_TO_SUBMIT_SQL, {"user": user.pk, "assignment": assignment_id}
    )
    if row is None:
        return None, None
    split = len(ASSIGNMENT_FIELDS)
    campaign = from_row(Campaign, CAMPAIGN_FIELDS, row[split:-2])
    return assignment_from_row(row[:split], campaign), RatingTargets.from_row(*row[-2:])


# Everything the API shows for one assignment: the post, its description, its items, the
# questions, and the annotator's own values (looked up only once the post was rated).


# --- finishing a post ---------------------------------------------------------------------------

# One rating per item, question and annotator; rating again changes these fields.
RATING_KEY = ("item", "question", "annotator")
RATING_CHANGED_AGAIN = ("value", "assignment", "updated_at")


def _columns(names) -> list[str]:
    return [Rating._meta.get_field(name).column for name in names]


def ratings_upsert(ratings: list[Rating]) -> None:
    """Insert ratings; one that exists (same item, question, annotator) takes the new value."""
    Rating.objects.bulk_create(
        ratings,
        update_conflicts=True,
        unique_fields=RATING_KEY,
        update_fields=RATING_CHANGED_AGAIN,
        batch_size=2000,
    )


# A leased post finished in one statement (its own transaction in autocommit): the assignment
# becomes done with the time spent on it (what the page measured, never more than the lease has
# lasted), its version goes up, and the ratings are upserted as `ratings_upsert` does. It changes
# nothing unless the assignment is still leased and, when the submitter sent the version it was
# shown, still at that version; a concurrent double submit waits for the first and then finds it
# done. It locks no row another annotator's submission needs.
_FINISH_SQL = f"""
WITH finished AS (
    UPDATE annotation_assignment
    SET status = %(done)s, completed_at = %(now)s, version = version + 1,
        seconds_spent = GREATEST(0, LEAST(
            COALESCE(%(seconds)s::float8, 'Infinity'::float8),
            EXTRACT(EPOCH FROM %(now)s::timestamptz - leased_at)::float8))
    WHERE id = %(assignment)s AND status = %(leased)s
      AND (%(version)s::integer IS NULL OR version = %(version)s::integer)
    RETURNING id, task_id, seconds_spent, version
), rated AS (
    INSERT INTO annotation_rating
        (campaign_id, item_id, question_id, annotator_id, assignment_id, value, seconds,
         created_at, updated_at)
    SELECT %(campaign)s, r.item, r.question, %(annotator)s, finished.id, r.value,
           finished.seconds_spent / %(count)s, %(now)s, %(now)s
    FROM finished,
         unnest(%(items)s::bigint[], %(questions)s::bigint[], %(values)s::integer[])
             AS r(item, question, value)
    ON CONFLICT ({", ".join(_columns(RATING_KEY))}) DO UPDATE
    SET {", ".join(f"{c} = EXCLUDED.{c}" for c in _columns(RATING_CHANGED_AGAIN))}
)
SELECT seconds_spent, version FROM finished
"""


def finish_leased_postgresql(
    *,
    assignment: Assignment,
    values: dict[tuple[int, int], int],
    seconds,
    now: datetime,
    version: int | None = None,
) -> Assignment | None:
    """Finish a leased post in one statement; None when it is not leased (any more) or not at
    `version`: the caller then locks it and takes `finish_locked`, the ORM twin, after its own
    checks (which word the refusal)."""
    ordered = sorted(values.items())
    params = {
        "assignment": assignment.pk,
        "campaign": assignment.campaign_id,
        "annotator": assignment.annotator_id,
        "now": now,
        "seconds": None if seconds is None else float(seconds),
        "count": max(1, len(ordered)),
        "items": [item for (item, _), _ in ordered],
        "questions": [question for (_, question), _ in ordered],
        "values": [value for _, value in ordered],
        "version": version,
        "done": Assignment.Status.DONE,
        "leased": Assignment.Status.LEASED,
    }
    row = prepared.fetchone(_FINISH_SQL, params)
    if row is None:
        return None
    assignment.status = Assignment.Status.DONE
    assignment.completed_at = now
    assignment.seconds_spent, assignment.version = row
    return assignment


def seconds_spent(*, leased_at: datetime, seconds: float | None, now: datetime) -> float:
    """Time on the post: what the page measured, never more than the lease has lasted."""
    elapsed = max(0.0, (now - leased_at).total_seconds())
    return elapsed if seconds is None else max(0.0, min(float(seconds), elapsed))


def finish_locked(
    *, locked: Assignment, values: dict[tuple[int, int], int], seconds, now: datetime
) -> Assignment:
    """`finish_leased_postgresql` with the ORM, on an assignment the caller holds locked (and whose
    version the caller checked): a leased one becomes done; the ratings are upserted either way (a
    done post is rated again), and the version goes up."""
    spent = seconds_spent(leased_at=locked.leased_at, seconds=seconds, now=now)
    changed = ["version"]
    if locked.status == Assignment.Status.LEASED:
        locked.status = Assignment.Status.DONE
        locked.completed_at = now
        locked.seconds_spent = spent
        changed += ["status", "completed_at", "seconds_spent"]
    locked.version += 1
    locked.save(update_fields=changed)
    per_rating = (locked.seconds_spent or spent) / max(1, len(values))
    ratings_upsert(
        [
            Rating(
                campaign_id=locked.campaign_id,
                item_id=item_id,
                question_id=question_id,
                annotator_id=locked.annotator_id,
                assignment=locked,
                value=value,
                seconds=per_rating,
                created_at=now,
                updated_at=now,
            )
            for (item_id, question_id), value in sorted(values.items())
        ]
    )
    return locked
