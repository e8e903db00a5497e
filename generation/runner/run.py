"""A batch's run in the caller's thread: claim, what is left to do, writes, counters, the end.

`batch_execute` claims the batch (`lease`), reads what is already stored under its keys, starts
the loop thread (`executor`, through `loop.LeasedRun`) and, a few times a second, writes the
results it reported (`writer`), renews the heartbeat with the counters, and acts on pause, cancel
and the token budget. A lost database connection is ridden out (`lease.reconnecting`); the
outcomes not yet written wait.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from generation.models import Batch, KnowledgeItem, Post, StageResult
from generation.pipelines.base import Pipeline, get_pipeline
from generation.runner.executor import Executor, PostWork
from generation.runner.gpu import DispatchChunk, GpuChunks
from generation.runner.keys import StagePlan, stage_plans
from generation.runner.lease import SYSTEM_CLOCK, Clock, batch_claim, reconnecting
from generation.runner.loop import LeasedRun, budget_error, leased_execute
from generation.runner.outcomes import DONE_STATUSES, PARTIAL, Outcome, plain_error
from generation.runner.writer import ResultIds, persist_outcomes, result_items
from generation.services.items import items_store


def stage_counters() -> dict[str, int]:
    """A stage's counters in `Batch.stage_progress`; `not_reached` counts the posts that failed
    at an earlier stage, so they are not left pending for good."""
    return {"done": 0, "failed": 0, "skipped": 0, "cached": 0, "partial": 0, "not_reached": 0}


@dataclass
class Progress:
    """The counters the runner keeps and writes, absolute, at every flush.

    Every attempt counts as a call when it is made, a retried one too: `counted` holds the
    attempts of each (post, stage) counted before its outcome came. `waiting` holds the calls
    waiting to be tried again, latest last: (attempts made, next try as a Unix time, error,
    whether it is a 429 being waited out).
    """

    stages: dict[str, dict[str, int]]
    posts_done: int = 0
    posts_failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    run_calls: int = 0
    run_posts_finished: int = 0
    last_error: str = ""
    waiting: dict[tuple[int, str], tuple[int, float, str, bool]] = field(default_factory=dict)
    counted: dict[tuple[int, str], int] = field(default_factory=dict)

    def retrying(self) -> dict[str, Any]:
        """What `Batch.retrying` holds: the calls waiting and the latest retry, or {}."""
        if not self.waiting:
            return {}
        attempts, next_try, error, rate_limited = next(reversed(self.waiting.values()))
        return {
            "calls": len(self.waiting),
            "attempt": attempts,
            "max_attempts": int(settings.DISTILLERY_RETRY_MAX_ATTEMPTS),
            "rate_limited": rate_limited,
            "next_try_at": datetime.fromtimestamp(next_try, tz=UTC).isoformat(),
            "error": error,
        }

    def fields(self) -> dict[str, Any]:
        return {
            "stage_progress": self.stages,
            "posts_done": self.posts_done,
            "posts_failed": self.posts_failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "calls": self.calls,
            "run_calls": self.run_calls,
            "run_posts_finished": self.run_posts_finished,
            "retrying": self.retrying(),
        }


def _stored_results(
    batch: Batch, plans: list[StagePlan], post_ids: set[int]
) -> dict[tuple[int, str], dict[str, Any]]:
    """Every result already stored under the batch's keys, by (post, stage)."""
    stored: dict[tuple[int, str], dict[str, Any]] = {}
    for plan in plans:
        rows = StageResult.objects.filter(
            post__dataset_id=batch.dataset_id, **plan.key()
        ).values_list("id", "post_id", "status", "parsed", "batch_id")
        for pk, post_id, status, parsed, batch_id in rows.iterator(chunk_size=2000):
            if post_id in post_ids:
                stored[(post_id, plan.name)] = {
                    "id": pk,
                    "status": status,
                    "parsed": parsed,
                    "batch_id": batch_id,
                }
    return stored


def _prepare(
    batch: Batch, plans: list[StagePlan], *, retry_failed: bool
) -> tuple[list[PostWork], Progress, ResultIds, list[KnowledgeItem]]:
    """What is left to do, from the results already stored under this batch's keys."""
    posts = Post.objects.filter(dataset_id=batch.dataset_id).only("id", "text", "image", "metadata")
    if batch.post_ids is not None:
        posts = posts.filter(pk__in=batch.post_ids)
    posts = list(posts.order_by("id")[: batch.limit] if batch.limit else posts.order_by("id"))
    stored = _stored_results(batch, plans, {post.pk for post in posts})
    raw_of_partial: dict[int, str] = {}
    if retry_failed:
        partial_ids = [row["id"] for row in stored.values() if row["status"] == PARTIAL]
        for start in range(0, len(partial_ids), 2000):
            raw_of_partial.update(
                StageResult.objects.filter(pk__in=partial_ids[start : start + 2000]).values_list(
                    "id", "raw_answer"
                )
            )
    progress = Progress(
        stages={p.name: stage_counters() for p in plans},
        prompt_tokens=batch.prompt_tokens,
        completion_tokens=batch.completion_tokens,
        calls=batch.calls,
    )
    known_ids = {key: row["id"] for key, row in stored.items()}
    work, items = [], []
    for post in posts:
        upstream, todo, skipped, failed, retried = {}, set(), set(), False, {}
        for plan in plans:
            row = stored.get((post.pk, plan.name))
            counts = progress.stages[plan.name]
            if plan.stage.requires_image and not post.image:
                skipped.add(plan.name)
                counts["skipped"] += 1
            elif row and row["status"] == PARTIAL and retry_failed:
                # "Retry failed" asks again for the slots a partial answer left out.
                upstream[plan.name] = row["parsed"]
                retried[plan.name] = {"parsed": row["parsed"], "raw": raw_of_partial[row["id"]]}
                todo.add(plan.name)
            elif row and row["status"] in DONE_STATUSES:
                upstream[plan.name] = row["parsed"]
                counts["done"] += 1
                if row["status"] == PARTIAL:
                    counts["partial"] += 1
                if row["batch_id"] != batch.pk:
                    counts["cached"] += 1
                specs = plan.stage.items(row["parsed"])
                items.extend(
                    result_items(
                        batch=batch, plan=plan, post_id=post.pk, ids=known_ids, specs=specs
                    )
                )
            elif row and row["batch_id"] == batch.pk and not retry_failed:
                # Failed in an earlier run of this batch: it waits for "retry failed".
                counts["failed"] += 1
                failed = True
            else:
                todo.add(plan.name)
        if failed:
            progress.posts_failed += 1
            for name in todo:  # never asked: an earlier stage failed
                progress.stages[name]["not_reached"] += 1
        elif not todo:
            progress.posts_done += 1
        else:
            work.append(
                PostWork(post=post, upstream=upstream, todo=todo, skipped=skipped, retried=retried)
            )
    return work, progress, known_ids, items


class BatchRun(LeasedRun):
    """One run of a batch in the caller's thread; see the module docstring."""

    def __init__(
        self,
        batch: Batch,
        pipeline: Pipeline,
        *,
        token: str,
        retry_failed: bool,
        on_progress: Callable[[Progress], None] | None = None,
        dispatch_gpu_chunk: DispatchChunk | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(model=Batch, pk=batch.pk, token=token, clock=clock)
        self.batch = batch
        self.pipeline = pipeline
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.dispatch_gpu_chunk = dispatch_gpu_chunk
        self.plan_list = stage_plans(batch, pipeline)
        self.plans = {plan.name: plan for plan in self.plan_list}
        self.pending: list[Outcome] = []

    def run(self) -> None:
        work, self.progress, self.known_ids, cached_items = reconnecting(
            lambda: _prepare(self.batch, self.plan_list, retry_failed=self.retry_failed),
            clock=self.clock,
        )
        self.gpu = GpuChunks(
            batch=self.batch,
            plans=self.plans,
            known_ids=self.known_ids,
            dispatch=self.dispatch_gpu_chunk,
            on_result=lambda outcome: self._count_result(outcome, called=True),
        )
        # Cached answers reuse their items: the batch is linked to them, nothing is copied.
        reconnecting(lambda: self._link_cached(cached_items), clock=self.clock)
        reconnecting(self._flush, clock=self.clock)
        executor = Executor(
            pipeline=self.pipeline, plans=self.plan_list, work=work, events=self.events
        )
        self.execute(executor, name=f"batch-{self.batch.pk}")
        reconnecting(self._finish, clock=self.clock)

    def wake(self, *, done: bool) -> None:
        assert self.executor is not None
        self.gpu.collect(self.executor, stopping=bool(self.stop_reason))
        reconnecting(lambda: self._write(force=done), clock=self.clock)

    def _link_cached(self, items: list[KnowledgeItem]) -> None:
        for start in range(0, len(items), 2000):
            with transaction.atomic():
                items_store(
                    batch_id=self.batch.pk, items=items[start : start + 2000], now=timezone.now()
                )

    def _write(self, *, force: bool) -> None:
        """One wake's database work; safe to run again after a lost connection."""
        self._flush()
        self.gpu.dispatch(force=force)
        assert self.executor is not None
        self.gpu.poll(self.executor)

    def handle(self, event: tuple) -> None:
        progress = self.progress
        if event[0] == "result":
            outcome: Outcome = event[1]
            self.pending.append(outcome)
            self._count_result(outcome, called=True)
        elif event[0] == "retry":
            _, post_id, stage, attempts, next_try, failure = event
            key = (post_id, stage)
            progress.waiting.pop(key, None)  # re-inserted: the latest retry goes last
            progress.waiting[key] = (attempts, next_try, str(failure), failure.status == 429)
            made = attempts - progress.counted.get(key, 0)
            progress.calls += made
            progress.run_calls += made
            progress.counted[key] = attempts
        else:
            _, _, state, not_reached = event
            if state == "done":
                progress.posts_done += 1
            else:
                progress.posts_failed += 1
                for stage in not_reached:
                    progress.stages[stage]["not_reached"] += 1
            progress.run_posts_finished += 1

    def _count_result(self, outcome: Outcome, *, called: bool) -> None:
        progress = self.progress
        counts = progress.stages[outcome.stage]
        counts["done" if outcome.ok else "failed"] += 1
        if outcome.ok and outcome.missing:
            counts["partial"] = counts.get("partial", 0) + 1
        if not outcome.ok:
            progress.last_error = f"{outcome.stage}: {plain_error(outcome.error)}"
        if called:
            key = (outcome.post_id, outcome.stage)
            progress.waiting.pop(key, None)
            attempts = outcome.attempts - progress.counted.pop(key, 0)
            progress.prompt_tokens += outcome.prompt_tokens
            progress.completion_tokens += outcome.completion_tokens
            progress.calls += attempts
            progress.run_calls += attempts

    def _flush(self) -> None:
        # An outcome leaves `pending` once its transaction has committed, so none is lost to a
        # write that fails.
        size = int(settings.DISTILLERY_FLUSH_RESULTS)
        while self.pending:
            persist_outcomes(
                batch=self.batch,
                plans=self.plans,
                outcomes=self.pending[:size],
                known_ids=self.known_ids,
            )
            del self.pending[:size]
        self._heartbeat()

    def _heartbeat(self) -> None:
        if self.on_progress:
            self.on_progress(self.progress)
        why_not = self.renewed(self.progress.fields())
        if not why_not:
            used = self.progress.prompt_tokens + self.progress.completion_tokens
            self.budget_spent(used=used, budget=self.batch.token_budget)
        elif not self.stop_reason:
            # Paused, cancelled, or (rarely) the lease went to another runner: stop starting
            # calls; a pause lets the calls in flight finish.
            paused = why_not not in ("lease", Batch.Status.CANCELLED)
            self.stop("paused" if paused else why_not, cancel=not paused)

    def stop(self, reason: str, *, cancel: bool) -> None:
        super().stop(reason, cancel=cancel)
        if self.executor is not None:
            self.gpu.abandon(self.executor)

    def _finish(self) -> None:
        self.progress.waiting.clear()
        ending = None
        if not self.stop_reason and self.progress.posts_failed and not self.progress.posts_done:
            ending = {"status": Batch.Status.FAILED, "error": self._every_post_failed()}
        elif self.stop_reason == "budget":
            used = self.progress.prompt_tokens + self.progress.completion_tokens
            error = budget_error(used=used, budget=self.batch.token_budget)
            ending = {"status": Batch.Status.FAILED, "error": error}
        elif not self.stop_reason:
            ending = {"status": Batch.Status.DONE}
        self.end(fields=self.progress.fields(), ending=ending)
        if self.on_progress:
            self.on_progress(self.progress)

    def _every_post_failed(self) -> str:
        """The reason a batch whose every post failed gives: the count and the last error."""
        failed = self.progress.posts_failed
        last = self.progress.last_error
        if not last:  # the failures are an earlier run's
            row = (
                StageResult.objects.filter(batch=self.batch, status=StageResult.Status.FAILED)
                .order_by("-updated_at")
                .values_list("stage", "error")
                .first()
            )
            last = f"{row[0]}: {plain_error(row[1])}" if row else ""
        counted = f"every post failed ({failed} of {failed})"
        return f"{counted}; last error: {last}" if last else counted


def batch_execute(
    *,
    batch_id: int,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    dispatch_gpu_chunk: DispatchChunk | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Batch:
    """Run (or resume) a batch to its end, a pause or a cancel. Safe to call twice at once.

    `dispatch_gpu_chunk` sends a GPU stage's chunk to where it runs (the Celery task sends it to
    the `gpu` queue); without one, chunks run in this process. A database connection lost for
    longer than a lease gives the lease up, the batch still running, and raises `ConnectionLost`:
    the Celery task retries it. Any other error fails the batch.
    """

    def run(token: str) -> None:
        batch = Batch.objects.select_related("dataset", "endpoint").get(pk=batch_id)
        BatchRun(
            batch,
            get_pipeline(batch.pipeline),
            token=token,
            retry_failed=retry_failed,
            on_progress=on_progress,
            dispatch_gpu_chunk=dispatch_gpu_chunk,
            clock=clock,
        ).run()

    leased_execute(
        model=Batch,
        pk=batch_id,
        label=f"Batch {batch_id}",
        claim=lambda token: batch_claim(batch_id=batch_id, token=token, clock=clock),
        run=run,
        failed={"retrying": {}},
    )
    return Batch.objects.get(pk=batch_id)
