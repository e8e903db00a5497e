"""Assignments: claim the next post, skip it, submit its ratings, expire forgotten leases.

The claim keeps one counter on `Task`: `taken`, its assignments leased or done. Every change to it
is a conditional UPDATE inside the transaction that changes the assignment, so no post is ever
handed out more than `overlap` times. Submitting does not touch the task (models.Task says why).
The statements themselves, PostgreSQL's and their ORM twins, are in `annotation.hot_path`.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation import hot_path
from annotation.errors import AnnotationError, StaleSubmission
from annotation.hot_path import RatingTargets, open_lease, rating_targets
from annotation.models import Assignment, Campaign, Task
from annotation.scales import get_scale


@dataclass(frozen=True)
class RatingInput:
    item_id: int
    question_id: int
    value: int


def leases_expire(*, campaign: Campaign | None = None, now: datetime | None = None) -> int:
    """Return expired leases to the pool: status `expired`, and the post's `taken` goes down.

    On PostgreSQL one statement expires them all, under an advisory lock: a caller that finds
    another expiry running returns 0 at once and leaves the work to it. Elsewhere each lease is
    expired in its own short transaction by a conditional UPDATE: when two callers race, the
    second waits for the first and then finds nothing to change. Either way `taken` goes down
    exactly once per lease, and expiry cannot deadlock with a claim.
    """
    return hot_path.expire_leases(campaign=campaign, now=now or timezone.now())


# Lazy expiry at claim time, at most every few seconds per campaign and process: the periodic task
# does the rest, and a claim never has to wait for a full scan of open leases.
EXPIRY_EVERY = timedelta(seconds=5)
_last_expiry: dict[int, datetime] = {}


def _expire_now_and_then(*, campaign: Campaign, now: datetime) -> None:
    last = _last_expiry.get(campaign.pk)
    if last is None or not timedelta(0) <= now - last < EXPIRY_EVERY:
        _last_expiry[campaign.pk] = now
        leases_expire(campaign=campaign, now=now)


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
        hot_path.expire_lease(assignment_id=lease.pk, task_id=lease.task_id, now=now)
    _expire_now_and_then(campaign=campaign, now=now)
    if not campaign.is_active:
        return None
    gold_first = campaign.gold_rate > 0 and random.random() < campaign.gold_rate
    for gold in (True, False) if gold_first else (False,):
        try:
            lease = hot_path.claim_one(campaign=campaign, annotator=annotator, gold=gold, now=now)
        except IntegrityError:
            # A concurrent request of the same annotator took a lease first: hand that one back.
            return open_lease(campaign=campaign, annotator=annotator)
        if lease is not None:
            return lease
    # A concurrent request of the same annotator may have taken the lease meanwhile.
    return open_lease(campaign=campaign, annotator=annotator)


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
    """The ratings by (item id, question id), once each is checked; every pair must be there."""
    targets = targets or rating_targets(assignment=assignment)
    questions, items = targets.questions, targets.items
    values: dict[tuple[int, int], int] = {}
    for rating in ratings:
        question = questions.get(rating.question_id)
        if question is None:
            raise AnnotationError(f"question {rating.question_id} is not in this campaign")
        if rating.item_id not in items:
            # One answer whether the item exists elsewhere or not at all: ids of other
            # datasets cannot be probed this way.
            raise AnnotationError(f"item {rating.item_id} is not an item of this post")
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


def assignment_submit(
    *,
    assignment: Assignment,
    ratings: Sequence[RatingInput],
    seconds: float | None = None,
    now=None,
    targets: RatingTargets | None = None,
    version: int | None = None,
) -> Assignment:
    """Store the ratings of one post, mark its assignment done and raise its version.

    Idempotent: a double click or a resubmission updates the same Rating rows (unique per item,
    question and annotator) and counts the post once. A done assignment may be resubmitted to
    change its ratings. A lease that expired is accepted only while the post still has room.
    `version` is the assignment's version the submitter was shown: when given and the assignment
    has been submitted since (from another tab), `StaleSubmission` refuses it and nothing is
    written. `targets` are the post's questions and items when the caller read them already.
    """
    now = now or timezone.now()
    values = _validate_ratings(assignment=assignment, ratings=ratings, targets=targets)
    if connection.vendor == "postgresql":
        # The common case in one statement, the version check included; a post done before
        # (re-rated), expired, skipped or at another version takes the general path below.
        done = hot_path.finish_leased_postgresql(
            assignment=assignment, values=values, seconds=seconds, now=now, version=version
        )
        if done is not None:
            return done
    with transaction.atomic():
        # Lock the assignment: concurrent submissions of the same post run one after the other.
        locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if locked.status == Assignment.Status.SKIPPED:
            raise AnnotationError("this post was skipped; it cannot be rated now")
        if version is not None and locked.version != version:
            raise StaleSubmission(
                "this post was submitted from another tab or window after this page was loaded, "
                "so these answers were not saved"
            )
        if locked.status == Assignment.Status.EXPIRED:
            # The slot went back to the pool; take it again if nobody filled it meanwhile.
            if not Task.objects.filter(pk=locked.task_id, taken__lt=locked.campaign.overlap).update(
                taken=F("taken") + 1
            ):
                raise AnnotationError(
                    "your lease on this post expired and it was given to someone else"
                )
            locked.status = Assignment.Status.LEASED
        return hot_path.finish_locked(locked=locked, values=values, seconds=seconds, now=now)


def assignments_reopen(*, campaign: Campaign, post_id: int) -> int:
    """Give a post back to the annotators who skipped it or let their lease on it expire: their
    assignments go, so the claim may offer them the post again. Returns how many were reopened.

    Skipped and expired assignments hold no ratings and do not count in the task's `taken`, so
    nothing else changes. Refused when the post has none.
    """
    task = Task.objects.filter(campaign=campaign, post_id=post_id).first()
    if task is None:
        raise AnnotationError(f"post {post_id} is not in campaign {campaign.name!r}", status=404)
    _, deleted = Assignment.objects.filter(
        task=task, status__in=(Assignment.Status.SKIPPED, Assignment.Status.EXPIRED)
    ).delete()
    reopened = deleted.get(Assignment._meta.label, 0)
    if not reopened:
        raise AnnotationError(
            f"post {post_id} has no skipped or expired assignment to reopen", status=409
        )
    return reopened
