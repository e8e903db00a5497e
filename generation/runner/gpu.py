"""GPU stages: requests gathered into chunks for the `gpu` queue, and a chunk answered there.

Stages on a local model (`Backend.complete_batch`) are not called one by one: the runner's thread
collects their requests into chunks of `DISTILLERY_GPU_CHUNK_SIZE` posts, hands each to a
dispatcher (the Celery task sends it to the `gpu` queue; without one, the chunk runs here), and
reads their results back from the database. `batch_execute_gpu_chunk` is what the GPU worker
runs for a chunk; it keeps one loaded model per endpoint configuration.
"""

import asyncio
import json
import logging
import queue
import time
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings
from django.utils import timezone

from generation.backends.base import Backend, BackendError
from generation.models import Batch, Endpoint, Post, StageResult
from generation.pipelines.base import StageInput, get_pipeline
from generation.runner.executor import Executor, backend_for, image_data_url
from generation.runner.keys import StagePlan, stage_plans
from generation.runner.outcomes import (
    DONE_STATUSES,
    OK,
    PARTIAL,
    Outcome,
    merge_retry,
    outcome_from_answer,
    outcome_from_error,
)
from generation.runner.writer import ResultIds, persist_outcomes

logger = logging.getLogger(__name__)


class DispatchChunk(Protocol):
    """Sends one chunk of a GPU stage to where it runs (the Celery task sends it to the queue)."""

    def __call__(self, *, batch_id: int, stage: str, post_ids: list[int]) -> None: ...


def run_chunk_here(*, batch_id: int, stage: str, post_ids: list[int]) -> None:
    """The dispatcher when none is given: the chunk runs in this process, as it returns."""
    batch_execute_gpu_chunk(batch_id=batch_id, stage=stage, post_ids=post_ids)


class GpuChunks:
    """The runner's side of its GPU stages, in the caller's thread."""

    def __init__(
        self,
        *,
        batch: Batch,
        plans: dict[str, StagePlan],
        known_ids: ResultIds,
        dispatch: DispatchChunk | None,
        on_result: Callable[[Outcome], None],
    ) -> None:
        self.batch = batch
        self.plans = plans
        self.known_ids = known_ids
        self.dispatcher = dispatch or run_chunk_here
        self.on_result = on_result
        self.waiting: dict[tuple[int, str], asyncio.Future] = {}
        self.unsent: list[tuple[str, int]] = []
        self.first_unsent = 0.0

    def collect(self, executor: Executor, *, stopping: bool) -> None:
        """Take the requests the loop thread made; a stopping run answers them with None."""
        while True:
            try:
                stage, post_id, future = executor.gpu_requests.get_nowait()
            except queue.Empty:
                return
            if stopping:
                executor.resolve(future, None)
                continue
            if not self.unsent:
                self.first_unsent = time.monotonic()
            self.waiting[(post_id, stage)] = future
            self.unsent.append((stage, post_id))

    def dispatch(self, *, force: bool) -> None:
        """Send full chunks, and the rest once it has waited a second (or with `force`)."""
        chunk_size = int(settings.DISTILLERY_GPU_CHUNK_SIZE)
        if not self.unsent:
            return
        waited = time.monotonic() - self.first_unsent
        if len(self.unsent) < chunk_size and waited < 1.0 and not force:
            return
        by_stage: dict[str, list[int]] = {}
        for stage, post_id in self.unsent:
            by_stage.setdefault(stage, []).append(post_id)
        self.unsent = []
        for stage, post_ids in by_stage.items():
            for start in range(0, len(post_ids), chunk_size):
                self.dispatcher(
                    batch_id=self.batch.pk,
                    stage=stage,
                    post_ids=post_ids[start : start + chunk_size],
                )

    def poll(self, executor: Executor) -> None:
        """Hand the loop thread the results the chunks have stored in this run."""
        if not self.waiting:
            return
        by_stage: dict[str, list[int]] = {}
        for post_id, stage in self.waiting:
            by_stage.setdefault(stage, []).append(post_id)
        for stage, post_ids in by_stage.items():
            plan = self.plans[stage]
            rows = StageResult.objects.filter(
                post_id__in=post_ids, batch_id=self.batch.pk, **plan.key()
            ).values_list(
                "id",
                "post_id",
                "status",
                "parsed",
                "error",
                "updated_at",
                "prompt_tokens",
                "completion_tokens",
            )
            for pk, post_id, status, parsed, error, updated_at, prompt, completion in rows:
                if updated_at < self.batch.run_started_at:
                    continue  # a failure of an earlier run, not yet redone
                future = self.waiting.pop((post_id, stage))
                outcome = Outcome(
                    post_id=post_id,
                    stage=stage,
                    ok=status in DONE_STATUSES,
                    missing=plan.stage.missing_slots(parsed) if status == PARTIAL else [],
                    parsed=parsed,
                    error=error,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                )
                self.known_ids[(post_id, stage)] = pk
                self.on_result(outcome)
                executor.resolve(future, outcome)

    def abandon(self, executor: Executor) -> None:
        """The run stops: the posts waiting on a chunk stay pending."""
        for future in self.waiting.values():
            executor.resolve(future, None)
        self.waiting.clear()


# ---------------------------------------------------------------------------------------------
# On the GPU worker


def batch_execute_gpu_chunk(*, batch_id: int, stage: str, post_ids: list[int]) -> None:
    """Answer one stage for a chunk of posts on a local model, in one `complete_batch` call."""
    batch = Batch.objects.select_related("endpoint").get(pk=batch_id)
    pipeline = get_pipeline(batch.pipeline)
    plans = {plan.name: plan for plan in stage_plans(batch, pipeline)}
    plan = plans[stage]
    needed = [plans[name] for name in plan.stage.needs if name in plans]
    posts = list(Post.objects.filter(pk__in=post_ids).order_by("id"))
    existing: dict[int, tuple[int, str]] = {}
    earlier: dict[int, dict[str, Any]] = {}
    rows = StageResult.objects.filter(post_id__in=post_ids, **plan.key()).values_list(
        "id", "post_id", "status", "parsed", "raw_answer"
    )
    for pk, post_id, status, parsed, raw in rows:
        existing[post_id] = (pk, status)
        if status == PARTIAL:
            earlier[post_id] = {"parsed": parsed, "raw": raw}
    upstream: dict[int, dict[str, Any]] = {post.pk: {} for post in posts}
    known_ids = {(post_id, stage): pk for post_id, (pk, _) in existing.items()}
    for need in needed:
        rows = StageResult.objects.filter(
            post_id__in=post_ids, status__in=DONE_STATUSES, **need.key()
        ).values_list("id", "post_id", "parsed")
        for pk, post_id, parsed in rows:
            upstream[post_id][need.name] = parsed
            known_ids[(post_id, need.name)] = pk
    todo, requests = [], []
    for post in posts:
        if existing.get(post.pk, (None, ""))[1] == OK:
            continue  # answered by an earlier delivery of this chunk
        stage_input = StageInput(
            text=post.text,
            image_data_url=image_data_url(post) if plan.stage.uses_image else None,
            metadata=post.metadata,
            upstream=upstream[post.pk],
        )
        todo.append(post)
        requests.append(
            pipeline.build_request(plan.stage, stage_input, plan.parameters, plan.variant)
        )
    outcomes: list[Outcome] = []
    if requests:
        answers = gpu_backend(plan.endpoint).complete_batch(requests)
        for post, request, answer in zip(todo, requests, answers, strict=True):
            if isinstance(answer, BackendError):
                outcome = outcome_from_error(post.pk, plan.stage, request, answer, 1)
            else:
                outcome = outcome_from_answer(post.pk, plan.stage, request, answer, 1)
            if post.pk in earlier:
                outcome = merge_retry(plan.stage, earlier[post.pk], outcome)
            outcomes.append(outcome)
    persist_outcomes(batch=batch, plans=plans, outcomes=outcomes, known_ids=known_ids)
    # Results that were already OK are re-touched so the waiting runner sees them in this run.
    done_before = [pk for pk, status in existing.values() if status == OK]
    if done_before:
        StageResult.objects.filter(pk__in=done_before).update(
            batch_id=batch.pk, updated_at=timezone.now()
        )
    tokens = sum(o.prompt_tokens + o.completion_tokens for o in outcomes)
    if tokens:
        logger.info("gpu chunk of batch %s, stage %s: %s tokens", batch_id, stage, tokens)


_GPU_BACKENDS: dict[tuple, Backend] = {}


def gpu_backend(endpoint: Endpoint) -> Backend:
    """One loaded model per worker process and endpoint configuration."""
    key = (endpoint.pk, endpoint.model_path, endpoint.model, json.dumps(endpoint.parameters))
    if key not in _GPU_BACKENDS:
        _GPU_BACKENDS[key] = backend_for(endpoint)
    return _GPU_BACKENDS[key]
