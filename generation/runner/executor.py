"""The loop thread's half of a run: a rolling window of model calls on asyncio, with retries.

Each post walks its pipeline's waves; a call waits on its endpoint's semaphore (concurrency) and
requests-per-minute limiter, and a post goes on to its next stage as soon as its previous one
answers. Failed calls are retried with exponential backoff and jitter; a 429 is waited out for
`DISTILLERY_RATE_LIMIT_PATIENCE_SECONDS`. Nothing here touches the database: results go to the
caller's thread through a queue, and GPU stages are handed over to it the same way.
"""

import asyncio
import base64
import logging
import mimetypes
import queue
import random
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from generation.backends.base import Backend, BackendError, ChatRequest
from generation.models import Endpoint, Post
from generation.pipelines.base import Pipeline, StageInput
from generation.runner.keys import StagePlan
from generation.runner.outcomes import (
    Outcome,
    merge_retry,
    outcome_from_answer,
    outcome_from_error,
)

logger = logging.getLogger(__name__)


def backend_for(endpoint: Endpoint) -> Backend:
    # Imported here: the backends pull in their client libraries, which only a run needs.
    from generation.backends import backend_for

    return backend_for(endpoint)


def image_data_url(post: Post) -> str | None:
    if not post.image:
        return None
    mime = mimetypes.guess_type(post.image.name)[0] or "image/jpeg"
    with post.image.open("rb") as handle:
        encoded = base64.b64encode(handle.read()).decode("ascii")
    return f"data:{mime};base64,{encoded}"


class RateLimiter:
    """Spaces calls 60/rpm seconds apart (no bursts); shared by the stages of an endpoint."""

    def __init__(self, requests_per_minute: int | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass
class PostWork:
    """A post with work left: the parsed outputs it already has and the stages it must call."""

    post: Post
    upstream: dict[str, dict[str, Any]]
    todo: set[str]
    skipped: set[str]
    # Partial results asked again: {stage: {"parsed": ..., "raw": ...}} of the earlier answer.
    retried: dict[str, dict[str, Any]] = field(default_factory=dict)


class Executor:
    """Reports through `events` (a thread-safe queue), never the database.

    Events: ("result", Outcome) for every call; ("retry", post_id, stage, attempts made, next
    try as a Unix time, the BackendError) when a call will be tried again; ("post", post_id,
    "done" | "failed", [stages a failed post did not reach]). A GPU stage
    puts (stage, post_id, future) on `gpu_requests`; the caller's thread resolves the future with
    the Outcome once the chunk's result is stored (or with None when the run stops).
    """

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        plans: list[StagePlan],
        work: list[PostWork],
        events: "queue.SimpleQueue[tuple]",
    ) -> None:
        self.pipeline = pipeline
        self.plans = {plan.name: plan for plan in plans}
        self.waves = [[self.plans[stage.name] for stage in wave] for wave in pipeline.waves()]
        self.work = work
        self.events = events
        self.stopping = False
        self.stopped: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.backends: dict[int, Backend] = {}
        self.semaphores: dict[int, asyncio.Semaphore] = {}
        self.limiters: dict[int, RateLimiter] = {}
        self.gpu_requests: queue.SimpleQueue = queue.SimpleQueue()
        self.tasks: set[asyncio.Task] = set()
        self.retry_base = settings.DISTILLERY_RETRY_BASE_SECONDS
        self.retry_max = settings.DISTILLERY_RETRY_MAX_SECONDS
        self.max_attempts = int(settings.DISTILLERY_RETRY_MAX_ATTEMPTS)
        self.rate_limit_patience = settings.DISTILLERY_RATE_LIMIT_PATIENCE_SECONDS

    # Called from the caller's thread.
    def stop(self, *, cancel: bool) -> None:
        """Start no new call; with `cancel`, abandon calls in flight too (they are not stored)."""
        if self.loop is None:
            return

        def _stop() -> None:
            self.stopping = True
            assert self.stopped is not None
            self.stopped.set()
            if cancel:
                for task in self.tasks:
                    task.cancel()

        self.loop.call_soon_threadsafe(_stop)

    def resolve(self, future: asyncio.Future, value: Any) -> None:
        def _set() -> None:
            if not future.done():
                future.set_result(value)

        assert self.loop is not None
        self.loop.call_soon_threadsafe(_set)

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        if self.stopping:
            self.stopped.set()
        for plan in self.plans.values():
            endpoint = plan.endpoint
            if endpoint.pk in self.semaphores:
                continue
            self.semaphores[endpoint.pk] = asyncio.Semaphore(endpoint.concurrency)
            self.limiters[endpoint.pk] = RateLimiter(endpoint.requests_per_minute)
            if not plan.batched:
                self.backends[endpoint.pk] = backend_for(endpoint)
        # Enough posts in flight to keep every endpoint's window full while posts change stage.
        window = 4 * sum(
            plan.endpoint.concurrency
            for plan in {p.endpoint.pk: p for p in self.plans.values()}.values()
        )
        if any(p.batched for p in self.plans.values()):
            window = max(window, 4 * int(settings.DISTILLERY_GPU_CHUNK_SIZE))
        admitted = asyncio.Semaphore(window)
        try:
            for work in self.work:
                await admitted.acquire()
                if self.stopping:
                    admitted.release()
                    break
                task = asyncio.create_task(self._run_post(work))
                self.tasks.add(task)
                task.add_done_callback(lambda t: (self.tasks.discard(t), admitted.release()))
            while self.tasks:
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
        finally:
            for backend in self.backends.values():
                try:
                    await backend.aclose()
                except Exception:  # closing must not hide the run's own outcome
                    logger.exception("closing a backend failed")

    async def _run_post(self, work: PostWork) -> None:
        upstream = dict(work.upstream)
        image_url: str | None = None
        for position, wave in enumerate(self.waves):
            calls = [plan for plan in wave if plan.name in work.todo]
            if not calls:
                continue
            if image_url is None and any(p.stage.uses_image for p in calls) and work.post.image:
                image_url = image_data_url(work.post)
            stage_input = StageInput(
                text=work.post.text,
                image_data_url=image_url,
                metadata=work.post.metadata,
                upstream=upstream,
            )
            outcomes = await asyncio.gather(
                *(
                    self._run_stage(work.post.pk, plan, stage_input, work.retried.get(plan.name))
                    for plan in calls
                )
            )
            if any(outcome is None for outcome in outcomes):
                return  # stopped: the post stays pending
            if not all(outcome.ok for outcome in outcomes):
                later = self.waves[position + 1 :]
                not_reached = [p.name for w in later for p in w if p.name in work.todo]
                self.events.put(("post", work.post.pk, "failed", not_reached))
                return
            upstream = {**upstream, **{o.stage: o.parsed for o in outcomes}}
        self.events.put(("post", work.post.pk, "done", []))

    async def _run_stage(
        self,
        post_id: int,
        plan: StagePlan,
        stage_input: StageInput,
        earlier: dict[str, Any] | None = None,
    ) -> Outcome | None:
        if self.stopping:
            return None
        if plan.batched:
            future = asyncio.get_running_loop().create_future()
            self.gpu_requests.put((plan.name, post_id, future))
            return await future
        try:
            request = self.pipeline.build_request(
                plan.stage, stage_input, plan.parameters, plan.variant
            )
            outcome = await self._call(post_id, plan, request)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A bug or an untranslated client error: stored like any failure, never lost.
            logger.exception("stage %s of post %s failed", plan.name, post_id)
            outcome = Outcome(
                post_id=post_id, stage=plan.name, ok=False, error=f"{type(error).__name__}: {error}"
            )
        if outcome is not None and earlier is not None:
            outcome = merge_retry(plan.stage, earlier, outcome)
        if outcome is not None:
            self.events.put(("result", outcome))
        return outcome

    async def _call(self, post_id: int, plan: StagePlan, request: ChatRequest) -> Outcome | None:
        endpoint_id = plan.endpoint.pk
        backend = self.backends[endpoint_id]
        semaphore = self.semaphores[endpoint_id]
        limiter = self.limiters[endpoint_id]
        attempts = 0
        first_attempt = time.monotonic()
        while True:
            async with semaphore:
                if self.stopping:
                    return None
                await limiter.wait()
                attempts += 1
                try:
                    completion = await backend.acomplete(request)
                except BackendError as error:
                    failure = error
                else:
                    return outcome_from_answer(post_id, plan.stage, request, completion, attempts)
            # A rate limit is the server asking us to wait, not a failure of this call: it is
            # bounded by time (RATE_LIMIT_PATIENCE), not by the number of attempts.
            waiting_out_limit = (
                failure.status == 429
                and time.monotonic() - first_attempt < self.rate_limit_patience
            )
            if not failure.retryable or (attempts >= self.max_attempts and not waiting_out_limit):
                return outcome_from_error(post_id, plan.stage, request, failure, attempts)
            # Exponential backoff with full jitter; a server's Retry-After is a floor.
            delay = random.uniform(0, min(self.retry_max, self.retry_base * 2 ** (attempts - 1)))
            if failure.retry_after:
                delay = max(delay, min(self.retry_max, failure.retry_after))
            self.events.put(("retry", post_id, plan.name, attempts, time.time() + delay, failure))
            assert self.stopped is not None
            try:
                await asyncio.wait_for(self.stopped.wait(), timeout=delay)
            except TimeoutError:
                pass
