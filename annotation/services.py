"""Writes of the annotation app: campaigns, the assignment claim, ratings, gold answers.

The claim keeps one counter on `Task`: `taken`, its assignments leased or done. Every change to it
is a conditional UPDATE inside the transaction that changes the assignment, so no post is ever
handed out more than `overlap` times. Submitting does not touch the task (models.Task says why).
"""

import random
import re
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from annotation.models import Assignment, Campaign, GoldAnswer, Question, Rating, Task
from annotation.scales import DEFAULT_QUESTIONS, get_scale
from annotation.selectors import (
    ASSIGNMENT_COLUMNS,
    RatingTargets,
    assignment_from_row,
    campaign_items,
    open_lease,
    rating_targets,
)
from config import prepared
from generation.models import Batch, Dataset, KnowledgeItem, Post


class AnnotationError(ValueError):
    """A request the rules refuse; the message is meant for the person who made it."""


@dataclass(frozen=True)
class QuestionSpec:
    name: str
    prompt: str = ""
    scale: str = "1-5"


@dataclass(frozen=True)
class RatingInput:
    item_id: int
    question_id: int
    value: int


def question_specs(*, names: Sequence[str], scale: str = "1-5") -> list[QuestionSpec]:
    """Questions by name; the default ones get their standard prompt."""
    get_scale(scale)
    return [
        QuestionSpec(name, DEFAULT_QUESTIONS.get(name, name.capitalize()), scale) for name in names
    ]


@transaction.atomic
def campaign_create(
    *,
    name: str,
    dataset: Dataset,
    batches: Iterable[Batch] = (),
    kinds: Sequence[str] = (),
    questions: Sequence[QuestionSpec] = (),
    overlap: int = 3,
    lease_minutes: int = 15,
    instructions: str = "",
    gold_rate: float = 0.0,
    members: Iterable[AbstractBaseUser] = (),
    created_by: AbstractBaseUser | None = None,
    with_tasks: bool = True,
) -> Campaign:
    """Create a campaign and one Task per post that has items to rate.

    Without batches, every batch of the dataset is rated. Tasks are written with one
    INSERT ... SELECT, so a campaign over 137,287 posts takes seconds, not minutes.
    """
    if Campaign.objects.filter(name=name).exists():
        raise AnnotationError(f"a campaign named {name!r} already exists")
    if overlap < 1:
        raise AnnotationError("overlap must be at least 1")
    if lease_minutes < 1:
        raise AnnotationError("the lease must last at least one minute")
    if not 0 <= gold_rate <= 1:
        raise AnnotationError("the gold rate must be between 0 and 1")
    batches = list(batches) or list(Batch.objects.filter(dataset=dataset))
    for batch in batches:
        if batch.dataset_id != dataset.pk:
            raise AnnotationError(f"batch {batch.pk} belongs to another dataset")
    questions = list(questions) or question_specs(names=list(DEFAULT_QUESTIONS))
    seen = set()
    for spec in questions:
        try:
            get_scale(spec.scale)
        except ValueError as error:
            raise AnnotationError(str(error)) from None
        if spec.name in seen:
            raise AnnotationError(f"question {spec.name!r} is named twice")
        seen.add(spec.name)
    campaign = Campaign.objects.create(
        name=name,
        dataset=dataset,
        kinds=list(kinds),
        overlap=overlap,
        lease_minutes=lease_minutes,
        instructions=instructions,
        gold_rate=gold_rate,
        created_by=created_by,
    )
    campaign.batches.set(batches)
    campaign.members.set(list(members))
    Question.objects.bulk_create(
        Question(campaign=campaign, name=q.name, prompt=q.prompt, scale=q.scale, position=i)
        for i, q in enumerate(questions)
    )
    if with_tasks:
        campaign_add_tasks(campaign=campaign)
    return campaign


def campaign_add_tasks(*, campaign: Campaign, post_ids: Iterable[int] | None = None) -> int:
    """Add a Task for each post with items in the campaign (or of `post_ids`) that lacks one."""
    posts = campaign_items(campaign=campaign).values("post_id")
    if post_ids is not None:
        post_ids = list(post_ids)
        if not post_ids:
            return 0  # an empty IN () cannot be written as SQL
        posts = posts.filter(post_id__in=post_ids)
    posts = (
        posts.exclude(Exists(Task.objects.filter(campaign=campaign, post_id=OuterRef("post_id"))))
        .distinct()
        .order_by("post_id")
    )
    select_sql, params = posts.query.sql_with_params()
    table = Task._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (campaign_id, post_id, is_gold, taken) "
            f"SELECT %s, post_id, %s, 0 FROM ({select_sql}) AS posts",
            [campaign.pk, False, *params],
        )
        return cursor.rowcount


def campaign_update(*, campaign: Campaign, **fields) -> Campaign:
    allowed = {"instructions", "lease_minutes", "gold_rate", "is_active", "show_gold_accuracy"}
    unknown = set(fields) - allowed - {"members"}
    if unknown:
        raise AnnotationError(f"these fields cannot change: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        members = fields.pop("members", None)
        for key, value in fields.items():
            setattr(campaign, key, value)
        campaign.save()
        if members is not None:
            campaign.members.set(members)
    return campaign


# --- assignment ---------------------------------------------------------------------------------


def leases_expire(*, campaign: Campaign | None = None, now=None) -> int:
    """Return expired leases to the pool: status `expired`, and the post's `taken` goes down.

    On PostgreSQL one statement expires them all, under an advisory lock: a caller that finds
    another expiry running returns 0 at once and leaves the work to it. Elsewhere each lease is
    expired in its own short transaction by a conditional UPDATE: when two callers race, the
    second waits for the first and then finds nothing to change. Either way `taken` goes down
    exactly once per lease, and expiry cannot deadlock with a claim.
    """
    now = now or timezone.now()
    if connection.vendor == "postgresql":
        return _leases_expire_postgresql(campaign=campaign, now=now)
    open_leases = Assignment.objects.filter(status=Assignment.Status.LEASED, expires_at__lt=now)
    if campaign is not None:
        open_leases = open_leases.filter(campaign=campaign)
    expired = 0
    for assignment_id, task_id in open_leases.order_by("id").values_list("id", "task_id")[:1000]:
        expired += _lease_expire(assignment_id=assignment_id, task_id=task_id, now=now)
    return expired


def _lease_expire(*, assignment_id: int, task_id: int, now) -> int:
    """Expire one lease if it is still open and past its time; 1 if this call expired it."""
    with transaction.atomic():
        changed = Assignment.objects.filter(
            pk=assignment_id, status=Assignment.Status.LEASED, expires_at__lt=now
        ).update(status=Assignment.Status.EXPIRED)
        if changed:
            Task.objects.filter(pk=task_id, taken__gt=0).update(taken=F("taken") - 1)
    return changed


# PostgreSQL: every expired lease (of one campaign, or all) in one statement. A transaction-level
# advisory lock lets one expiry run at a time; a second caller finds the lock taken and leaves the
# work to the first instead of queueing behind it. `taken` goes down by the leases each post lost.
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


def _leases_expire_postgresql(*, campaign: Campaign | None, now) -> int:
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


# Lazy expiry at claim time, at most every few seconds per campaign and process: the periodic task
# does the rest, and a claim never has to wait for a full scan of open leases.
EXPIRY_EVERY = timedelta(seconds=5)
_last_expiry: dict[int, datetime] = {}


def _expire_now_and_then(*, campaign: Campaign, now: datetime) -> None:
    last = _last_expiry.get(campaign.pk)
    if last is None or not timedelta(0) <= now - last < EXPIRY_EVERY:
        _last_expiry[campaign.pk] = now
        leases_expire(campaign=campaign, now=now)


def _claimable(*, campaign: Campaign, annotator: AbstractBaseUser, gold: bool):
    """Tasks this annotator never had, in claim order; gold tasks have no overlap limit."""
    had = Assignment.objects.filter(task=OuterRef("pk"), annotator=annotator)
    tasks = Task.objects.filter(campaign=campaign, is_gold=gold).exclude(Exists(had))
    if not gold:
        tasks = tasks.filter(taken__lt=campaign.overlap)
    return tasks.order_by("-taken", "id")


_LOOK_UP = object()


def assignment_claim(
    *, campaign: Campaign, annotator: AbstractBaseUser, now=None, held=_LOOK_UP
) -> Assignment | None:
    """The annotator's next post: their open lease if they hold one, else a fresh lease.

    A fresh lease goes to the post with the most assignments below the overlap that this
    annotator never had (breadth-first, so items finish early), locked with
    SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL so that concurrent claims take different
    posts; `taken` is raised by a conditional UPDATE in the same transaction. On SQLite the
    transaction is IMMEDIATE, so claims are serialised by the database lock. Returns None when
    nothing is left for this annotator. `held` is the annotator's open lease in the campaign
    (or None) when the caller read it already.
    """
    now = now or timezone.now()
    lease = open_lease(campaign=campaign, annotator=annotator) if held is _LOOK_UP else held
    if lease is not None:
        if lease.expires_at > now:
            return lease
        # Their own lease ran out: it goes back to the pool before they claim another.
        _lease_expire(assignment_id=lease.pk, task_id=lease.task_id, now=now)
    _expire_now_and_then(campaign=campaign, now=now)
    if not campaign.is_active:
        return None
    gold_first = campaign.gold_rate > 0 and random.random() < campaign.gold_rate
    for gold in (True, False) if gold_first else (False,):
        try:
            lease = _claim_one(campaign=campaign, annotator=annotator, gold=gold, now=now)
        except IntegrityError:
            # A concurrent request of the same annotator took a lease first: hand that one back.
            return open_lease(campaign=campaign, annotator=annotator)
        if lease is not None:
            return lease
    # A concurrent request of the same annotator may have taken the lease meanwhile.
    return open_lease(campaign=campaign, annotator=annotator)


# The claim on PostgreSQL as one statement (its own transaction in autocommit): lock the first
# claimable task, skipping rows other claims hold, raise its `taken` and insert the lease.
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


def _claim_one_postgresql(
    *, campaign: Campaign, annotator: AbstractBaseUser, gold: bool, now
) -> Assignment | None:
    params = {
        "campaign": campaign.pk,
        "annotator": annotator.pk,
        "overlap": campaign.overlap,
        "status": Assignment.Status.LEASED,
        "now": now,
        "expires": now + timedelta(minutes=campaign.lease_minutes),
    }
    # Outside a transaction the statement is atomic by itself; inside one (tests, callers that
    # batch work) a savepoint keeps a unique violation from spoiling the caller's transaction.
    atomic = transaction.atomic if connection.in_atomic_block else nullcontext
    for skip_locked in (True, True, False, False):
        with atomic():
            row = prepared.fetchone(_claim_sql(gold=gold, skip_locked=skip_locked), params)
        if row is not None:
            return assignment_from_row(row, campaign)
        # Nothing claimed: every candidate was locked (look again, then wait for the locks), or
        # the one we waited for filled up meanwhile, or nothing is left.
    return None


def _claim_one(
    *, campaign: Campaign, annotator: AbstractBaseUser, gold: bool, now
) -> Assignment | None:
    if connection.vendor == "postgresql":
        return _claim_one_postgresql(campaign=campaign, annotator=annotator, gold=gold, now=now)
    # SKIP LOCKED first, so concurrent claims never wait on each other. When every candidate is
    # locked (the tail of a campaign), wait for the locks instead of reporting "nothing left".
    for skip_locked in (True, True, False, False):
        with transaction.atomic():
            task = (
                _claimable(campaign=campaign, annotator=annotator, gold=gold)
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
                expires_at=now + timedelta(minutes=campaign.lease_minutes),
            )
    return None


def assignment_skip(*, assignment: Assignment, now=None) -> Assignment:
    """Give a leased post back to the pool; the annotator will not be offered it again."""
    with transaction.atomic():
        changed = Assignment.objects.filter(
            pk=assignment.pk, status=Assignment.Status.LEASED
        ).update(status=Assignment.Status.SKIPPED, completed_at=now or timezone.now())
        if changed:
            Task.objects.filter(pk=assignment.task_id, taken__gt=0).update(taken=F("taken") - 1)
    assignment.refresh_from_db()
    return assignment


def _validate_ratings(
    *, assignment: Assignment, ratings: Sequence[RatingInput], targets: RatingTargets | None
) -> dict[tuple[int, int], int]:
    targets = targets or rating_targets(assignment=assignment)
    questions, items = targets.questions, targets.items
    values: dict[tuple[int, int], int] = {}
    for rating in ratings:
        question = questions.get(rating.question_id)
        if question is None:
            raise AnnotationError(f"question {rating.question_id} is not in this campaign")
        if rating.item_id not in items:
            if KnowledgeItem.objects.filter(pk=rating.item_id).exists():
                raise AnnotationError(
                    f"item {rating.item_id} is not an item of this post in this campaign"
                )
            raise AnnotationError(f"item {rating.item_id} does not exist")
        name, scale_key = question
        scale = get_scale(scale_key)
        if rating.value not in scale:
            allowed = ", ".join(str(v) for v in scale.values)
            raise AnnotationError(
                f"{rating.value} is not on the {scale.label} scale of {name!r} (allowed: {allowed})"
            )
        values[(rating.item_id, rating.question_id)] = rating.value
    missing = len(items) * len(questions) - len(values)
    if missing:
        raise AnnotationError(
            f"rate every item on every question: {missing} rating(s) missing"
            if missing > 1
            else "rate every item on every question: 1 rating missing"
        )
    return values


def _seconds_spent(*, leased_at: datetime, seconds: float | None, now: datetime) -> float:
    """Time on the post: what the page measured, never more than the lease has lasted."""
    elapsed = max(0.0, (now - leased_at).total_seconds())
    return elapsed if seconds is None else max(0.0, min(float(seconds), elapsed))


# Finishing a leased post on PostgreSQL in one statement (its own transaction in autocommit): the
# assignment becomes done with the time spent on it (what the page measured, never more than the
# lease has lasted) and the ratings are upserted. It changes nothing unless the assignment is still
# leased; a concurrent double submit waits for the first and then finds it done. It locks no row
# another annotator's submission needs.
_FINISH_SQL = """
WITH finished AS (
    UPDATE annotation_assignment
    SET status = %(done)s, completed_at = %(now)s,
        seconds_spent = GREATEST(0, LEAST(
            COALESCE(%(seconds)s::float8, 'Infinity'::float8),
            EXTRACT(EPOCH FROM %(now)s::timestamptz - leased_at)::float8))
    WHERE id = %(assignment)s AND status = %(leased)s
    RETURNING id, task_id, seconds_spent
), rated AS (
    INSERT INTO annotation_rating
        (campaign_id, item_id, question_id, annotator_id, assignment_id, value, seconds,
         created_at, updated_at)
    SELECT %(campaign)s, r.item, r.question, %(annotator)s, finished.id, r.value,
           finished.seconds_spent / %(count)s, %(now)s, %(now)s
    FROM finished,
         unnest(%(items)s::bigint[], %(questions)s::bigint[], %(values)s::integer[])
             AS r(item, question, value)
    ON CONFLICT (item_id, question_id, annotator_id) DO UPDATE
    SET value = EXCLUDED.value, assignment_id = EXCLUDED.assignment_id,
        updated_at = EXCLUDED.updated_at
)
SELECT seconds_spent FROM finished
"""


def _finish_postgresql(
    *, assignment: Assignment, values: dict[tuple[int, int], int], seconds, now
) -> Assignment | None:
    """Finish a leased post in one round trip; None when it is not leased (any more)."""
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
        "done": Assignment.Status.DONE,
        "leased": Assignment.Status.LEASED,
    }
    row = prepared.fetchone(_FINISH_SQL, params)
    if row is None:
        return None
    assignment.status = Assignment.Status.DONE
    assignment.completed_at = now
    assignment.seconds_spent = row[0]
    return assignment


def assignment_submit(
    *,
    assignment: Assignment,
    ratings: Sequence[RatingInput],
    seconds: float | None = None,
    now=None,
    targets: RatingTargets | None = None,
) -> Assignment:
    """Store the ratings of one post and mark its assignment done.

    Idempotent: a double click or a resubmission updates the same Rating rows (unique per item,
    question and annotator) and counts the post once. A done assignment may be resubmitted to
    change its ratings. A lease that expired is accepted only while the post still has room.
    `targets` are the post's questions and items when the caller read them already.
    """
    now = now or timezone.now()
    values = _validate_ratings(assignment=assignment, ratings=ratings, targets=targets)
    if connection.vendor == "postgresql":
        # The common case in one statement; a post done before (re-rated), expired or skipped
        # takes the general path below.
        done = _finish_postgresql(assignment=assignment, values=values, seconds=seconds, now=now)
        if done is not None:
            return done
    with transaction.atomic():
        # Lock the assignment: concurrent submissions of the same post run one after the other.
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.status == Assignment.Status.SKIPPED:
            raise AnnotationError("this post was skipped; it cannot be rated now")
        if locked.status == Assignment.Status.EXPIRED:
            # The slot went back to the pool; take it again if nobody filled it meanwhile.
            if not Task.objects.filter(pk=locked.task_id, taken__lt=locked.campaign.overlap).update(
                taken=F("taken") + 1
            ):
                raise AnnotationError(
                    "your lease on this post expired and it was given to someone else"
                )
            locked.status = Assignment.Status.LEASED
        spent = _seconds_spent(leased_at=locked.leased_at, seconds=seconds, now=now)
        if locked.status == Assignment.Status.LEASED:
            locked.status = Assignment.Status.DONE
            locked.completed_at = now
            locked.seconds_spent = spent
            locked.save(update_fields=["status", "completed_at", "seconds_spent"])
        per_rating = (locked.seconds_spent or spent) / max(1, len(values))
        Rating.objects.bulk_create(
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
            ],
            update_conflicts=True,
            unique_fields=["item", "question", "annotator"],
            update_fields=["value", "assignment", "updated_at"],
        )
    return locked


@transaction.atomic
def gold_answers_set(
    *, campaign: Campaign, answers: Sequence[tuple[int, str, int]]
) -> list[GoldAnswer]:
    """Expected answers, as (item id, question name, value); their posts become gold tasks."""
    questions = {q.name: q for q in campaign.questions.all()}
    items = campaign_items(campaign=campaign).in_bulk([item_id for item_id, _, _ in answers])
    stored = []
    for item_id, question_name, value in answers:
        question = questions.get(question_name)
        if question is None:
            raise AnnotationError(f"question {question_name!r} is not in this campaign")
        item = items.get(item_id)
        if item is None:
            raise AnnotationError(f"item {item_id} is not in this campaign")
        if value not in get_scale(question.scale):
            raise AnnotationError(f"{value} is not on the scale of {question_name!r}")
        gold, _ = GoldAnswer.objects.update_or_create(
            campaign=campaign, item=item, question=question, defaults={"value": value}
        )
        stored.append(gold)
    post_ids = {item.post_id for item in items.values()}
    campaign_add_tasks(campaign=campaign, post_ids=post_ids)
    Task.objects.filter(campaign=campaign, post_id__in=post_ids).update(is_gold=True)
    return stored


# --- importing ratings ---------------------------------------------------------------------------


@dataclass
class RatingsImportReport:
    campaign: Campaign
    created_campaign: bool
    ratings: int
    posts: int
    annotators: list[str]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        made = "created" if self.created_campaign else "updated"
        return (
            f"campaign {self.campaign.name} {made}: {self.ratings} ratings of {self.posts} posts "
            f"by {len(self.annotators)} annotator(s)"
        )


def _resolve_items(*, dataset: Dataset, campaign: Campaign | None, posts: dict[str, int]):
    """Items of the rated posts keyed by (post id, kind) and (post id, position), unambiguous."""
    items = KnowledgeItem.objects.filter(post_id__in=posts.values()).select_related("batch")
    if campaign is not None:
        items = items.filter(pk__in=campaign_items(campaign=campaign).values("pk"))
    by_key: dict[tuple, list[KnowledgeItem]] = {}
    for item in items.order_by("-batch__imported", "-batch_id", "position"):
        by_key.setdefault((item.post_id, "kind", item.kind), []).append(item)
        by_key.setdefault((item.post_id, "position", item.position), []).append(item)
    return by_key


def _rows_matched_by_text(rows: list, *, dataset: Dataset, index, fail) -> list:
    """The rows with their post named by the id of the dataset's post of the same text."""
    from dataclasses import replace

    from generation.importers.matching import MatchedPost

    wanted = {}
    for row in rows:
        if row.text is None:
            raise fail(row, "--match-by text needs the post's text, which this row lacks")
        wanted.setdefault((row.text, row.image), (row.text, row.image))
    found = index.resolve(wanted)
    matched = []
    for row in rows:
        match = found.get((row.text, row.image))
        if match is None:
            raise fail(
                row, f"no post of dataset {dataset.name!r} has the text of post {row.post!r}"
            )
        if not isinstance(match, MatchedPost):
            raise fail(
                row,
                f"the text of post {row.post!r} is the text of several posts ({', '.join(match)});"
                " import with --match-by id",
            )
        matched.append(replace(row, post=match.external_id))
    return matched


def ratings_import(
    *,
    path,
    dataset_name: str,
    campaign_name: str,
    format: str = "csv",
    scale: str | None = None,
    annotator: str | None = None,
    match_by: str = "id",
) -> RatingsImportReport:
    """Import ratings from a file, all or nothing; create the campaign when it does not exist.

    A new campaign covers the rated posts' items, asks the questions the file names on `scale`
    (the format's own scale by default) and has an overlap of at least 3, or the most annotators
    any post has in the file. Annotators the database does not know become inactive users.
    `annotator` names the annotator of a whole file (Label Studio, MIKO release); `match_by="text"`
    finds each rated post by its text instead of its id (the same post under other ids in other
    annotators' files). A rating of a MIKO slot the post has no item for is reported and skipped.
    Raises AnnotationError naming `file:line: problem` or `file: task 7 (element 3, line 120): ...`.
    """
    from accounts.services import user_create_annotator
    from annotation.importers import DEFAULT_SCALES, READERS, RatingFileError, level_value
    from generation.importers.label_studio import slots_named
    from generation.importers.matching import MATCH_BY, PostsByText
    from generation.pipelines.miko import MIKO_KINDS

    if format not in READERS:
        raise AnnotationError(f"unknown format {format!r}; known: {', '.join(READERS)}")
    if match_by not in MATCH_BY:
        raise AnnotationError(f"unknown match {match_by!r}; choose one of {', '.join(MATCH_BY)}")
    if annotator is not None:
        annotator = annotator.strip()
        if format == "csv":
            raise AnnotationError("--annotator: the csv format names the annotator on every row")
        if not re.fullmatch(r"[\w.@+-]{1,150}", annotator):
            raise AnnotationError(f"--annotator {annotator!r} is not a valid user name")
    try:
        dataset = Dataset.objects.get(name=dataset_name)
    except Dataset.DoesNotExist:
        raise AnnotationError(f"no dataset named {dataset_name!r}") from None
    campaign = Campaign.objects.filter(name=campaign_name).first()
    if campaign is not None and campaign.dataset_id != dataset.pk:
        raise AnnotationError(f"campaign {campaign_name!r} rates another dataset")
    scale_key = scale or DEFAULT_SCALES[format]
    try:
        new_scale = get_scale(scale_key)
    except ValueError as error:
        raise AnnotationError(str(error)) from None

    try:
        reader = READERS[format]
        rows = list(reader(path) if format == "csv" else reader(path, annotator=annotator))
    except RatingFileError as error:
        raise AnnotationError(str(error)) from None
    except OSError as error:
        raise AnnotationError(f"{path}: {error.strerror or error}") from None
    if not rows:
        raise AnnotationError(f"{path}: no ratings in the file")

    def fail(row, problem: str) -> AnnotationError:
        return AnnotationError(f"{path}{row.place}: {problem}")

    if match_by == "text":
        rows = _rows_matched_by_text(rows, dataset=dataset, index=PostsByText(dataset), fail=fail)
    posts = dict(
        Post.objects.filter(dataset=dataset, external_id__in={r.post for r in rows}).values_list(
            "external_id", "id"
        )
    )
    items = _resolve_items(dataset=dataset, campaign=campaign, posts=posts)
    questions = {q.name: q for q in campaign.questions.all()} if campaign else {}
    resolved = []  # (row, item, value)
    warnings: list[str] = []
    seen: dict[tuple, int] = {}
    annotators_per_post: dict[int, list[str]] = {}
    for row in rows:
        if row.post not in posts:
            raise fail(row, f"post {row.post!r} is not in dataset {dataset_name!r}")
        post_id = posts[row.post]
        key = (post_id, "kind", row.kind) if row.kind else (post_id, "position", row.position)
        found = items.get(key, [])
        what = f"kind {row.kind!r}" if row.kind else f"item {row.position}"
        if not found:
            where = "in this campaign" if campaign else "in the dataset"
            if row.optional:
                if row.position and 1 <= row.position <= len(MIKO_KINDS):
                    what = f"item {slots_named([MIKO_KINDS[row.position - 1]])}"
                warnings.append(
                    f"{path}{row.place}: post {row.post!r} has no {what} {where}; "
                    f"{row.annotator}'s {row.question} rating skipped"
                )
                continue
            raise fail(row, f"post {row.post!r} has no {what} {where}")
        imported = [i for i in found if i.batch.imported] or found
        if len({i.batch_id for i in imported}) > 1:
            raise fail(row, f"post {row.post!r} has several items for {what}; rate one batch")
        item = imported[0]
        if campaign:
            if row.question not in questions:
                raise fail(row, f"question {row.question!r} is not in campaign {campaign_name!r}")
            q_scale = get_scale(questions[row.question].scale)
        else:
            if not re.fullmatch(r"[-a-zA-Z0-9_]{1,50}", row.question):
                raise fail(row, f"question {row.question!r} is not a valid name")
            q_scale = new_scale
        value = row.value if row.level is None else level_value(q_scale.values, *row.level)
        if value not in q_scale:
            allowed = ", ".join(str(v) for v in q_scale.values)
            raise fail(row, f"value {value} is not on the {q_scale.label} scale ({allowed})")
        unique = (item.pk, row.question, row.annotator)
        if unique in seen:
            raise fail(
                row,
                f"a second rating of the same item and question by {row.annotator!r}"
                f" (first on line {seen[unique]})",
            )
        seen[unique] = row.line
        names = annotators_per_post.setdefault(post_id, [])
        if row.annotator not in names:
            names.append(row.annotator)
        resolved.append((row, item, value))

    with transaction.atomic():
        created = campaign is None
        if created:
            names = list(dict.fromkeys(row.question for row, _, _ in resolved))
            campaign = campaign_create(
                name=campaign_name,
                dataset=dataset,
                batches=Batch.objects.filter(
                    pk__in={item.batch_id for _, item, _ in resolved}
                ).order_by("pk"),
                questions=question_specs(names=names, scale=scale_key),
                overlap=max(3, *(len(n) for n in annotators_per_post.values())),
                with_tasks=False,
            )
            questions = {q.name: q for q in campaign.questions.all()}
        campaign_add_tasks(campaign=campaign, post_ids=annotators_per_post)
        users = {}
        for name in dict.fromkeys(row.annotator for row, _, _ in resolved):
            user = get_user_model().objects.filter(username=name).first()
            users[name] = user or user_create_annotator(username=name, active=False)
        now = timezone.now()
        tasks = {
            t.post_id: t for t in Task.objects.filter(campaign=campaign, post_id__in=posts.values())
        }
        assignments = {}
        first_line = {}
        for row, item, _ in resolved:
            first_line.setdefault((item.post_id, row.annotator), row.place)
        for (post_id, name), line in first_line.items():
            task, user = tasks[post_id], users[name]
            assignment, made = Assignment.objects.get_or_create(
                task=task,
                annotator=user,
                defaults={
                    "campaign": campaign,
                    "post_id": post_id,
                    "status": Assignment.Status.DONE,
                    "leased_at": now,
                    "expires_at": now,
                    "completed_at": now,
                },
            )
            if not made and assignment.status != Assignment.Status.DONE:
                if assignment.status != Assignment.Status.LEASED:  # a leased one is counted
                    Task.objects.filter(pk=task.pk).update(taken=F("taken") + 1)
                assignment.status = Assignment.Status.DONE
                assignment.completed_at = now
                assignment.save(update_fields=["status", "completed_at"])
            elif made:
                Task.objects.filter(pk=task.pk).update(taken=F("taken") + 1)
            task.refresh_from_db(fields=["taken"])
            if task.taken > campaign.overlap:
                raise AnnotationError(
                    f"{path}{line}: post {task.post_id} would have {task.taken} annotators, "
                    f"more than the campaign's overlap of {campaign.overlap}"
                )
            assignments[(post_id, name)] = assignment
        Rating.objects.bulk_create(
            [
                Rating(
                    campaign=campaign,
                    item=item,
                    question=questions[row.question],
                    annotator=users[row.annotator],
                    assignment=assignments[(item.post_id, row.annotator)],
                    value=value,
                    created_at=now,
                    updated_at=now,
                )
                for row, item, value in resolved
            ],
            update_conflicts=True,
            unique_fields=["item", "question", "annotator"],
            update_fields=["value", "assignment", "updated_at"],
            batch_size=2000,
        )
    return RatingsImportReport(
        campaign=campaign,
        created_campaign=created,
        ratings=len(resolved),
        posts=len(annotators_per_post),
        annotators=list(users),
        warnings=warnings,
    )
