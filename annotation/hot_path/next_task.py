"""The next-task call's statements, each PostgreSQL statement beside its ORM twin.

`POST /api/campaigns/<id>/next/` runs `member_campaign_and_lease` (membership and the caller's
open lease), then `claim_one` unless they hold a lease, then `task_data`; now and then
`expire_leases` first (at most every few seconds per campaign and process; the beat process runs
it every minute too). The rules around them are in `annotation.services.assignments`.
"""

from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import cache

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef

from annotation.hot_path.rows import (
    A_ASSIGNMENT_COLUMNS,
    ASSIGNMENT_COLUMNS,
    CAMPAIGN_COLUMNS,
    CAMPAIGN_FIELDS,
    PARAMETER_ITEMS_SQL,
    assignment_from_row,
    from_row,
    on_postgresql,
)
from annotation.models import Assignment, Campaign, Task
from annotation.selectors import task_dict, task_view
from config import prepared
from generation.models import Post

# --- the campaign and the open lease ------------------------------------------------------------

_OPEN_LEASE_SQL = (
    f"SELECT {ASSIGNMENT_COLUMNS} FROM annotation_assignment "
    "WHERE campaign_id = %s AND annotator_id = %s AND status = %s LIMIT 1"
)


def open_lease(*, campaign: Campaign, annotator: AbstractBaseUser) -> Assignment | None:
    """The annotator's open lease in the campaign (at most one), with the campaign attached."""
    if on_postgresql():
        params = [campaign.pk, annotator.pk, Assignment.Status.LEASED]
        row = prepared.fetchone(_OPEN_LEASE_SQL, params)
        return None if row is None else assignment_from_row(row, campaign)
    lease = (
        Assignment.objects.filter(
            campaign=campaign, annotator=annotator, status=Assignment.Status.LEASED
        )
        .select_related("post", "task")
        .first()
    )
    if lease is not None:
        lease.campaign = campaign
    return lease


_CAMPAIGN_AND_LEASE_SQL = f"""
SELECT {CAMPAIGN_COLUMNS}, {A_ASSIGNMENT_COLUMNS}
FROM annotation_campaign c
JOIN annotation_campaign_members m ON m.campaign_id = c.id AND m.user_id = %(user)s
LEFT JOIN annotation_assignment a
    ON a.campaign_id = c.id AND a.annotator_id = %(user)s AND a.status = %(leased)s
WHERE c.id = %(campaign)s AND c.is_active
"""


def member_campaign_and_lease(
    *, user: AbstractBaseUser, campaign_id: int
) -> tuple[Campaign | None, Assignment | None]:
    """An active campaign the user rates in (or None) and their open lease in it."""
    if not on_postgresql():
        # One membership row per campaign and user, so the join needs no DISTINCT.
        campaign = Campaign.objects.filter(pk=campaign_id, members=user, is_active=True).first()
        if campaign is None:
            return None, None
        return campaign, open_lease(campaign=campaign, annotator=user)
    params = {"user": user.pk, "campaign": campaign_id, "leased": Assignment.Status.LEASED}
    row = prepared.fetchone(_CAMPAIGN_AND_LEASE_SQL, params)
    if row is None:
        return None, None
    split = len(CAMPAIGN_FIELDS)
    campaign = from_row(Campaign, CAMPAIGN_FIELDS, row[:split])
    lease = None if row[split] is None else assignment_from_row(row[split:], campaign)
    return campaign, lease


def member_campaign(*, user: AbstractBaseUser, campaign_id: int) -> Campaign | None:
    """An active campaign the user rates in, or None."""
    return member_campaign_and_lease(user=user, campaign_id=campaign_id)[0]


# --- the task ------------------------------------------------------------------------------------

_TASK_SQL = f"""
WITH items AS ({PARAMETER_ITEMS_SQL})
SELECT
    p.external_id, p.text, p.image,
    (SELECT s.parsed ->> 'description' FROM items
     JOIN generation_stageresult s ON s.id = items.description_result_id
     ORDER BY items.position, items.id LIMIT 1),
    (SELECT json_agg(json_build_array(items.id, items.kind, items.text)
                     ORDER BY items.position, items.id)
     FROM items),
    (SELECT json_agg(json_build_array(q.id, q.name, q.prompt, q.scale)
                     ORDER BY q.position, q.id)
     FROM annotation_question q WHERE q.campaign_id = %(campaign)s),
    CASE WHEN %(rated)s THEN
        (SELECT json_agg(json_build_array(r.item_id, r.question_id, r.value))
         FROM annotation_rating r
         WHERE r.assignment_id = %(assignment)s
           AND r.item_id IN (SELECT items.id FROM items))
    END
FROM generation_post p
WHERE p.id = %(post)s
"""


def task_data(*, assignment: Assignment) -> dict:
    """The API's view of one assignment (the shape of `TaskSerializer`), as plain data."""
    if not on_postgresql():
        return task_data_from_view(assignment=assignment)
    external_id, text, image, description, items, questions, mine = prepared.fetchone(
        _TASK_SQL,
        {
            "post": assignment.post_id,
            "campaign": assignment.campaign_id,
            "assignment": assignment.pk,
            "rated": assignment.status != Assignment.Status.LEASED,
        },
    )
    values: dict[int, dict[int, int]] = {}
    for item_id, question_id, value in mine or []:
        values.setdefault(item_id, {})[question_id] = value
    image_url = Post._meta.get_field("image").storage.url(image) if image else None
    return task_dict(
        assignment=assignment,
        post=(external_id, text, image_url),
        description=description or "",
        items=[(pk, kind, item_text, values.get(pk, {})) for pk, kind, item_text in items or []],
        questions=questions or [],
    )


def task_data_from_view(*, assignment: Assignment) -> dict:
    """`task_data` built with the ORM from the rating page's `task_view`, on any database."""
    view = task_view(assignment=assignment)
    post = view.post
    return task_dict(
        assignment=assignment,
        post=(post.external_id, post.text, post.image.url if post.image else None),
        description=view.description,
        items=[(i.item.pk, i.item.kind, i.item.text, i.values) for i in view.items],
        questions=[
            (q.question.pk, q.question.name, q.question.prompt, q.question.scale)
            for q in view.questions
        ],
    )


# --- the claim ----------------------------------------------------------------------------------

# One statement (its own transaction in autocommit): lock the first claimable task, skipping rows
# other claims hold, raise its `taken` and insert the lease.
#
# Its commit does not wait for the WAL to reach the disk (`synchronous_commit` off for this
# transaction only). The task row stays locked until that commit, and the annotators finishing
# the same post wait for it: on a slow disk, waiting for the flush was most of a submit's tail
# latency. A lease is not a rating: a database crash may forget the leases of the last fraction of
# a second (their posts simply return to the pool, consistently, `taken` with them), and every
# submit still commits synchronously, which also makes the claims before it durable, so an
# acknowledged rating is never lost.
_CLAIM_SQL = """
WITH lease_only AS (
    SELECT set_config('synchronous_commit', 'off', true)
), candidate AS (
    SELECT t.id FROM annotation_task t
    WHERE t.campaign_id = %(campaign)s AND {gold} {limit}
      AND EXISTS (SELECT FROM lease_only)
      AND NOT EXISTS (
          SELECT 1 FROM annotation_assignment a
          WHERE a.task_id = t.id AND a.annotator_id = %(annotator)s
      )
    ORDER BY t.taken DESC, t.id
    LIMIT 1
    FOR UPDATE OF t {skip_locked}
), raised AS (
    UPDATE annotation_task t SET taken = t.taken + 1
    FROM candidate WHERE t.id = candidate.id {limit}
    RETURNING t.id, t.post_id
)
INSERT INTO annotation_assignment
    (campaign_id, task_id, post_id, annotator_id, status, leased_at, expires_at)
SELECT %(campaign)s, raised.id, raised.post_id, %(annotator)s, %(status)s, %(now)s, %(expires)s
FROM raised
RETURNING {columns}
"""


@cache
def _claim_sql(*, gold: bool, skip_locked: bool) -> str:
    return _CLAIM_SQL.format(
        gold="t.is_gold" if gold else "NOT t.is_gold",
        limit="" if gold else "AND t.taken < %(overlap)s",
        skip_locked="SKIP LOCKED" if skip_locked else "",
        columns=ASSIGNMENT_COLUMNS,
    )


def claimable(*, campaign: Campaign, annotator: AbstractBaseUser, gold: bool):
    """Tasks this annotator never had, in claim order; gold tasks have no overlap limit."""
    had = Assignment.objects.filter(task=OuterRef("pk"), annotator=annotator)
    tasks = Task.objects.filter(campaign=campaign, is_gold=gold).exclude(Exists(had))
    if not gold:
        tasks = tasks.filter(taken__lt=campaign.overlap)
    return tasks.order_by("-taken", "id")


# SKIP LOCKED first, so concurrent claims never wait on each other. When every candidate is locked
# (the tail of a campaign), wait for the locks instead of reporting "nothing left".
_SKIP_LOCKED_TRIES = (True, True, False, False)


def claim_one(
    *, campaign: Campaign, annotator: AbstractBaseUser, gold: bool, now: datetime
) -> Assignment | None:
    """Lease the first claimable task (gold or not), raising its `taken`; None when none is left.

    Raises IntegrityError when the annotator holds an open lease already (a concurrent request).
    """
    expires = now + timedelta(minutes=campaign.lease_minutes)
    if on_postgresql():
        params = {
            "campaign": campaign.pk,
            "annotator": annotator.pk,
            "overlap": campaign.overlap,
            "status": Assignment.Status.LEASED,
            "now": now,
            "expires": expires,
        }
        # Outside a transaction the statement is atomic by itself; inside one (tests, callers
        # that batch work) a savepoint keeps a unique violation from spoiling the caller's.
        atomic = transaction.atomic if connection.in_atomic_block else nullcontext
        for skip_locked in _SKIP_LOCKED_TRIES:
            with atomic():
                row = prepared.fetchone(_claim_sql(gold=gold, skip_locked=skip_locked), params)
            if row is not None:
                return assignment_from_row(row, campaign)
            # Nothing claimed: every candidate was locked (look again, then wait for the locks),
            # or the one we waited for filled up meanwhile, or nothing is left.
        return None
    for skip_locked in _SKIP_LOCKED_TRIES:
        with transaction.atomic():
            task = (
                claimable(campaign=campaign, annotator=annotator, gold=gold)
                .select_for_update(skip_locked=skip_locked, of=("self",))
                .select_related("post")
                .only("id", "post")
                .first()
            )
            if task is None:
                if skip_locked:
                    continue
                return None
            limit = {} if gold else {"taken__lt": campaign.overlap}
            if not Task.objects.filter(pk=task.pk, **limit).update(taken=F("taken") + 1):
                continue  # filled while we waited for its lock; look again
            return Assignment.objects.create(
                campaign=campaign,
                task=task,
                post=task.post,
                annotator=annotator,
                status=Assignment.Status.LEASED,
                leased_at=now,
                expires_at=expires,
            )
    return None


# --- expiry -------------------------------------------------------------------------------------

# Every expired lease (of one campaign, or all) in one statement. A transaction-level advisory lock
# lets one expiry run at a time; a second caller finds the lock taken and leaves the work to the
# first instead of queueing behind it. `taken` goes down by the leases each post lost.
_EXPIRY_LOCK = 0x4C454153  # any constant of our own, shared by every caller
_EXPIRE_SQL = """
WITH gate AS (
    SELECT pg_try_advisory_xact_lock(%(lock)s) AS mine
), expired AS (
    UPDATE annotation_assignment a SET status = %(expired)s
    WHERE a.status = %(leased)s AND a.expires_at < %(now)s {campaign}
      AND (SELECT mine FROM gate)
    RETURNING a.task_id
), lost AS (
    SELECT task_id, count(*) AS n FROM expired GROUP BY task_id
), lowered AS (
    UPDATE annotation_task t SET taken = GREATEST(0, t.taken - lost.n)
    FROM lost WHERE t.id = lost.task_id
)
SELECT count(*) FROM expired
"""


def expire_leases(*, campaign: Campaign | None, now: datetime) -> int:
    """Expire the open leases past their time (of one campaign, or all); how many were expired.

    PostgreSQL: one statement, under the advisory lock. Elsewhere each lease in its own short
    transaction (`expire_lease`), at most 1000 per call.
    """
    if on_postgresql():
        sql = _EXPIRE_SQL.format(
            campaign="" if campaign is None else "AND a.campaign_id = %(campaign)s"
        )
        params = {
            "lock": _EXPIRY_LOCK,
            "expired": Assignment.Status.EXPIRED,
            "leased": Assignment.Status.LEASED,
            "now": now,
            "campaign": None if campaign is None else campaign.pk,
        }
        return prepared.fetchone(sql, params)[0]
    open_leases = Assignment.objects.filter(status=Assignment.Status.LEASED, expires_at__lt=now)
    if campaign is not None:
        open_leases = open_leases.filter(campaign=campaign)
    expired = 0
    for assignment_id, task_id in open_leases.order_by("id").values_list("id", "task_id")[:1000]:
        expired += expire_lease(assignment_id=assignment_id, task_id=task_id, now=now)
    return expired


def expire_lease(*, assignment_id: int, task_id: int, now: datetime) -> int:
    """Expire one lease if it is still open and past its time; 1 if this call expired it.

    A conditional UPDATE: when two callers race, the second waits for the first and then finds
    nothing to change, so `taken` goes down once.
    """
    with transaction.atomic():
        changed = Assignment.objects.filter(
            pk=assignment_id, status=Assignment.Status.LEASED, expires_at__lt=now
        ).update(status=Assignment.Status.EXPIRED)
        if changed:
            Task.objects.filter(pk=task_id, taken__gt=0).update(taken=F("taken") - 1)
    return changed
