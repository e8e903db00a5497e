"""Reads for batches and endpoints: lists, and a batch's progress as pages and the API show it."""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from generation.models import Batch, Endpoint, StageResult


def endpoint_list() -> QuerySet[Endpoint]:
    return Endpoint.objects.order_by("name")


def batch_list() -> QuerySet[Batch]:
    return Batch.objects.select_related("dataset", "endpoint", "launched_by").order_by("-id")


@dataclass
class StageProgress:
    stage: str
    endpoint: str
    done: int
    failed: int
    skipped: int
    cached: int
    # Posts that failed at an earlier stage: this one will not be asked for them.
    not_reached: int
    pending: int


@dataclass
class Retrying:
    """Calls waiting to be tried again, and the latest of them."""

    calls: int
    attempt: int
    max_attempts: int
    rate_limited: bool
    next_try_at: datetime
    seconds_to_next_try: int
    error: str


@dataclass
class BatchProgress:
    status: str
    status_text: str
    posts_total: int
    posts_done: int
    posts_failed: int
    posts_pending: int
    percent: int
    prompt_tokens: int
    completion_tokens: int
    token_budget: int | None
    calls: int
    calls_per_second: float | None
    seconds_left: int | None
    stages: list[StageProgress]
    error: str
    retrying: Retrying | None
    percent_done: int
    percent_failed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_progress(*, batch: Batch) -> BatchProgress:
    """Counters the runner wrote, plus rates over the current run (no query beyond endpoints)."""
    endpoint_names = {
        e.pk: e.name
        for e in Endpoint.objects.filter(pk__in=[int(pk) for pk in batch.stage_endpoints.values()])
    }
    default = batch.endpoint.name if batch.endpoint_id else ""
    stages = []
    for stage, counts in batch.stage_progress.items():
        endpoint_id = batch.stage_endpoints.get(stage)
        done, failed, skipped, not_reached = (
            counts.get("done", 0),
            counts.get("failed", 0),
            counts.get("skipped", 0),
            counts.get("not_reached", 0),
        )
        stages.append(
            StageProgress(
                stage=stage,
                endpoint=endpoint_names.get(int(endpoint_id), "") if endpoint_id else default,
                done=done,
                failed=failed,
                skipped=skipped,
                cached=counts.get("cached", 0),
                not_reached=not_reached,
                pending=max(0, batch.posts_total - done - failed - skipped - not_reached),
            )
        )
    calls_per_second = seconds_left = None
    if batch.status == Batch.Status.RUNNING and batch.run_started_at:
        elapsed = (timezone.now() - batch.run_started_at).total_seconds()
        if elapsed > 0:
            calls_per_second = round(batch.run_calls / elapsed, 1)
            if batch.run_posts_finished:
                per_post = elapsed / batch.run_posts_finished
                seconds_left = round(per_post * batch.posts_pending)
    finished = batch.posts_done + batch.posts_failed
    total = batch.posts_total
    return BatchProgress(
        status=batch.status,
        status_text=batch.status_text,
        posts_total=batch.posts_total,
        posts_done=batch.posts_done,
        posts_failed=batch.posts_failed,
        posts_pending=batch.posts_pending,
        percent=round(100 * finished / batch.posts_total) if batch.posts_total else 100,
        prompt_tokens=batch.prompt_tokens,
        completion_tokens=batch.completion_tokens,
        token_budget=batch.token_budget,
        calls=batch.calls,
        calls_per_second=calls_per_second,
        seconds_left=seconds_left,
        stages=stages,
        error=batch.error,
        retrying=_retrying(batch),
        percent_done=round(100 * batch.posts_done / total) if total else 0,
        percent_failed=round(100 * batch.posts_failed / total) if total else 0,
    )


def _retrying(batch: Batch) -> Retrying | None:
    if batch.status != Batch.Status.RUNNING or not batch.retrying.get("calls"):
        return None
    state = batch.retrying
    next_try_at = datetime.fromisoformat(state["next_try_at"])
    return Retrying(
        calls=state["calls"],
        attempt=state["attempt"],
        max_attempts=state["max_attempts"],
        rate_limited=state.get("rate_limited", False),
        next_try_at=next_try_at,
        seconds_to_next_try=max(0, round((next_try_at - timezone.now()).total_seconds())),
        error=state["error"],
    )


def batch_failures(*, batch: Batch, limit: int = 20) -> QuerySet[StageResult]:
    """The latest failed results of a batch, with their error and raw answer, for the page."""
    return (
        StageResult.objects.filter(batch=batch, status=StageResult.Status.FAILED)
        .select_related("post")
        .only("id", "stage", "error", "raw_answer", "attempts", "updated_at", "post__external_id")
        .order_by("-updated_at")[:limit]
    )
