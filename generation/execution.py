"""Runs a batch: the rolling window of model calls, pipelined per post, persisted in small bulks.

Two threads share the work. The *caller's* thread owns the database connection: it claims the
batch (a lease with a heartbeat, so one runner at a time), reads what is already done, writes
results every `FLUSH_SECONDS` in transactions of `FLUSH_RESULTS` at most, keeps the counters
and acts on pause, cancel and the token budget. The *loop* thread runs asyncio: each post walks
its pipeline's waves, a call waits on its endpoint's semaphore (concurrency) and requests-per-minute
limiter, and a post goes on to its next stage as soon as its previous one answers. Nothing in the
loop thread touches the database, so the writes never stall the window.

GPU stages (`Backend.batched`) are not called here: their requests are collected into chunks and
sent to the `gpu` queue; this runner then reads their results back from the database.

Idempotence comes from StageResult's unique key (which includes the server that answers): a key
with an OK result is never called again. Knowledge items are stored once per (post, kind, text)
and linked to every batch that produced or reused them (`generation.services.items`); each names
the stage results it was built from.
"""

import asyncio
import base64
import hashlib
import json
import logging
import mimetypes
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation.backends.base import (
    Backend,
    BackendError,
    ChatRequest,
    Completion,
)
from generation.models import Batch, Endpoint, KnowledgeItem, Post, StageResult
from generation.pipelines.base import (
    ItemSpec,
    ParseError,
    Pipeline,
    Stage,
    StageInput,
    get_pipeline,
    merge_partial,
    stage_parameters,
    without_last_slot,
)
from generation.services.items import (
    DESCRIPTION_STAGES,
    columns,
    copy_into_temp,
    items_store,
)

logger = logging.getLogger(__name__)

STAGE_RESULT_KEY = ["post", "stage", "template_hash", "model", "params_hash", "endpoint_key"]
RESULT_FIELDS = [
    "status",
    "request",
    "raw_answer",
    "parsed",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "attempts",
    "batch",
    "endpoint",
    "parameters",
    "updated_at",
]
# What a stage result's status is in the database, for each way an outcome can end.
OK, PARTIAL, FAILED = (StageResult.Status.OK, StageResult.Status.PARTIAL, StageResult.Status.FAILED)
DONE_STATUSES = (OK, PARTIAL)


def _setting(name: str, default: float) -> float:
    return getattr(settings, name, default)


# ---------------------------------------------------------------------------------------------
# What each stage of a batch is keyed on


@dataclass
class StagePlan:
    stage: Stage
    endpoint: Endpoint
    template_hash: str
    parameters: dict[str, Any]
    params_hash: str
    endpoint_key: str
    variant: str

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def model(self) -> str:
        return self.endpoint.model

    def key(self) -> dict[str, Any]:
        """The stage result key's fields besides the post, for `StageResult.objects.filter`."""
        return {
            "stage": self.name,
            "template_hash": self.template_hash,
            "model": self.model,
            "params_hash": self.params_hash,
            "endpoint_key": self.endpoint_key,
        }


def params_hash(parameters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


def stage_plans(batch: Batch, pipeline: Pipeline) -> list[StagePlan]:
    """Each stage's endpoint, effective sampling parameters and result key, in pipeline order."""
    endpoint_ids = {int(pk) for pk in batch.stage_endpoints.values()}
    endpoints = {e.pk: e for e in Endpoint.objects.filter(pk__in=endpoint_ids)}
    plans = []
    for stage in pipeline.stages:
        endpoint_id = batch.stage_endpoints.get(stage.name)
        endpoint = endpoints[int(endpoint_id)] if endpoint_id else batch.endpoint
        # Backend options (timeout, device...) are not part of the key; the effective sampling
        # parameters are (the stage's defaults, the endpoint's and the batch's, see
        # `stage_parameters`), and so is the template variant through its hash.
        parameters = stage_parameters(
            stage, endpoint_parameters=endpoint.parameters, batch_parameters=batch.parameters
        )
        variant = pipeline.stage_variant(stage, batch.parameters.get("template_variant"))
        plans.append(
            StagePlan(
                stage=stage,
                endpoint=endpoint,
                template_hash=pipeline.template_hash(stage, variant),
                variant=variant,
                parameters=parameters,
                params_hash=params_hash(parameters),
                endpoint_key=endpoint.cache_key,
            )
        )
    return plans


def _backend_for(endpoint: Endpoint) -> Backend:
    from generation.backends import backend_for

    return backend_for(endpoint)


def _is_batched(endpoint: Endpoint) -> bool:
    return endpoint.backend == Endpoint.Backend.TRANSFORMERS


# ---------------------------------------------------------------------------------------------
# One call's outcome, as the writer stores it


@dataclass
class Outcome:
    post_id: int
    stage: str
    ok: bool
    raw: str = ""
    parsed: dict[str, Any] | None = None
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    attempts: int = 1
    request: dict[str, Any] = field(default_factory=dict)
    items: list[ItemSpec] = field(default_factory=list)
    # Slots the answer left out: a partial result keeps the ones it has.
    missing: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.ok:
            return FAILED
        return PARTIAL if self.missing else OK


def merge_retry(stage: Stage, earlier: dict[str, Any], outcome: Outcome) -> Outcome:
    """A retried partial result: the slots it had, plus what the new answer gives of the missing.

    The earlier answer is never lost: both raw answers are kept, one after the other, and a new
    answer that fails leaves the partial result (and its items) as they were, with its error.
    """
    missing = stage.missing_slots(earlier["parsed"])
    if not missing:
        return outcome
    outcome.raw = (
        f"{earlier['raw']}\n\n--- retry of missing {', '.join(missing)} ---\n\n{outcome.raw}"
    )
    merged = (
        merge_partial(stage, earlier["parsed"], outcome.parsed or {})
        if outcome.ok
        else earlier["parsed"]
    )
    outcome.ok, outcome.parsed = True, merged
    outcome.items = stage.items(merged)
    outcome.missing = stage.missing_slots(merged)
    return outcome


def _request_for_storage(request: ChatRequest) -> dict[str, Any]:
    """The request as sent, with image data URLs shortened: the image is the post's own file."""
    messages = []
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                url = part.get("image_url", {}).get("url", "") if isinstance(part, dict) else ""
                if url.startswith("data:"):
                    part = {
                        "type": "image_url",
                        "image_url": {"url": f"{url[: url.find(',')]},<{len(url)} chars>"},
                    }
                parts.append(part)
            message = {**message, "content": parts}
        messages.append(message)
    stored: dict[str, Any] = {"messages": messages, "parameters": request.parameters}
    if request.json_schema is not None:
        stored["json_schema"] = True
    return stored


def storable(value: Any) -> Any:
    """A model's text as a database takes it: NUL characters and lone surrogates, which
    PostgreSQL refuses (in text and in jsonb), become U+FFFD. Dicts and lists recursively."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def _outcome_from_answer(
    post_id: int, stage: Stage, request: ChatRequest, completion: Completion, attempts: int
) -> Outcome:
    # Answers are untrusted input: they may carry characters no database stores, as such or
    # escaped inside a JSON answer, so the text is cleaned before the parse and the parse after.
    text = storable(completion.text)
    outcome = Outcome(
        post_id=post_id,
        stage=stage.name,
        ok=True,
        raw=text,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        latency_ms=completion.latency_ms,
        attempts=attempts,
        request=_request_for_storage(request),
    )
    try:
        parsed = stage.parse(text)
        if completion.finish_reason == "length":
            # Cut off: the last slot it reached may be cut mid-sentence; a retry asks for it.
            parsed = without_last_slot(stage, parsed)
        outcome.parsed = storable(parsed)
        outcome.items = stage.items(outcome.parsed)
        outcome.missing = stage.missing_slots(outcome.parsed)
    except ParseError as error:
        outcome.ok = False
        outcome.parsed = None
        outcome.error = f"ParseError: {error}"
    return outcome


def _outcome_from_error(
    post_id: int, stage: Stage, request: ChatRequest, error: BackendError, attempts: int
) -> Outcome:
    status = f" (HTTP {error.status})" if error.status else ""
    return Outcome(
        post_id=post_id,
        stage=stage.name,
        ok=False,
        raw=storable(error.raw),
        error=storable(f"{type(error).__name__}{status}: {error}"),
        attempts=attempts,
        request=_request_for_storage(request),
    )


def persist_outcomes(
    *,
    batch: Batch,
    plans: dict[str, StagePlan],
    outcomes: list[Outcome],
    known_ids: dict[tuple[int, str], int],
) -> None:
    """Write results and their items in one transaction.

    New keys are inserted (a conflicting row, written meanwhile by another batch, wins and lends
    its id); keys in `known_ids` (earlier failures being retried) are updated in place. On
    PostgreSQL new rows go through COPY, which keeps the writer's CPU per call small.
    """
    if not outcomes:
        return
    now = timezone.now()
    fresh = [o for o in outcomes if (o.post_id, o.stage) not in known_ids]
    retried = [o for o in outcomes if (o.post_id, o.stage) in known_ids]
    with transaction.atomic():
        if retried:
            updates = [_result(batch, plans[o.stage], o, now) for o in retried]
            for result in updates:
                result.pk = known_ids[(result.post_id, result.stage)]
            StageResult.objects.bulk_update(updates, RESULT_FIELDS)
        if fresh and connection.vendor == "postgresql":
            known_ids.update(_insert_results_by_copy(batch, plans, fresh, now))
        elif fresh:
            inserts = [_result(batch, plans[o.stage], o, now) for o in fresh]
            StageResult.objects.bulk_create(
                inserts,
                update_conflicts=True,
                unique_fields=STAGE_RESULT_KEY,
                update_fields=["updated_at"],
            )
            known_ids.update({(r.post_id, r.stage): r.pk for r in inserts})
        items = [
            item
            for o in outcomes
            if o.ok and o.items
            for item in _items(batch, plans[o.stage], o.post_id, known_ids, o)
        ]
        items_store(batch_id=batch.pk, items=items, now=now)


def _result(batch: Batch, plan: StagePlan, outcome: Outcome, now: Any) -> StageResult:
    return StageResult(
        post_id=outcome.post_id,
        stage=outcome.stage,
        template_hash=plan.template_hash,
        model=plan.model,
        params_hash=plan.params_hash,
        endpoint_key=plan.endpoint_key,
        parameters=plan.parameters,
        batch_id=batch.pk,
        endpoint_id=plan.endpoint.pk,
        status=outcome.status,
        request=outcome.request,
        raw_answer=outcome.raw,
        parsed=outcome.parsed,
        error=outcome.error,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        latency_ms=outcome.latency_ms,
        attempts=outcome.attempts,
        created_at=now,
        updated_at=now,
    )


_RESULT_COPY_FIELDS = [
    "post",
    "stage",
    "template_hash",
    "model",
    "params_hash",
    "endpoint_key",
    "parameters",
    "batch",
    "endpoint",
    "status",
    "request",
    "raw_answer",
    "parsed",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "attempts",
    "created_at",
    "updated_at",
]


def _insert_results_by_copy(
    batch: Batch, plans: dict[str, StagePlan], outcomes: list[Outcome], now: Any
) -> dict[tuple[int, str], int]:
    rows = []
    for o in outcomes:
        plan = plans[o.stage]
        rows.append(
            (
                o.post_id,
                o.stage,
                plan.template_hash,
                plan.model,
                plan.params_hash,
                plan.endpoint_key,
                json.dumps(plan.parameters),
                batch.pk,
                plan.endpoint.pk,
                o.status,
                json.dumps(o.request),
                o.raw,
                None if o.parsed is None else json.dumps(o.parsed),
                o.error,
                o.prompt_tokens,
                o.completion_tokens,
                o.latency_ms,
                o.attempts,
                now,
                now,
            )
        )
    result_columns = columns(StageResult, _RESULT_COPY_FIELDS)
    key = columns(StageResult, STAGE_RESULT_KEY)
    with connection.cursor() as cursor:
        temp = copy_into_temp(cursor, StageResult, _RESULT_COPY_FIELDS, rows)
        # A key another batch stored meanwhile keeps its row; its id is returned all the same.
        cursor.execute(
            f"INSERT INTO {StageResult._meta.db_table} ({result_columns}) "
            f"SELECT {result_columns} FROM {temp} "
            f"ON CONFLICT ({key}) DO UPDATE SET updated_at = EXCLUDED.updated_at "
            "RETURNING id, post_id, stage"
        )
        return {(post_id, stage): pk for pk, post_id, stage in cursor.fetchall()}


def _items(
    batch: Batch,
    plan: StagePlan,
    post_id: int,
    known_ids: dict[tuple[int, str], int],
    outcome_or_parsed: Any,
) -> list[KnowledgeItem]:
    """The items of one stage result, naming the results they were built from.

    `known_ids` maps (post, stage) to stored result ids: the result itself and the stages it read
    (the image description or caption, the key information).
    """
    specs = (
        outcome_or_parsed.items
        if isinstance(outcome_or_parsed, Outcome)
        else plan.stage.items(outcome_or_parsed)
    )
    if not specs:
        return []
    sources = {
        name: known_ids[(post_id, name)]
        for name in plan.stage.needs
        if (post_id, name) in known_ids
    }
    description = next((sources[name] for name in DESCRIPTION_STAGES if name in sources), None)
    result_id = known_ids.get((post_id, plan.name))
    provenance = {
        "stage": plan.name,
        "model": plan.model,
        "endpoint": plan.endpoint.name,
        "template_hash": plan.template_hash,
        "stage_results": {plan.name: result_id, **sources},
    }
    return [
        KnowledgeItem(
            post_id=post_id,
            batch_id=batch.pk,
            kind=spec.kind,
            position=spec.position,
            text=spec.text,
            stage_result_id=result_id,
            description_result_id=description,
            provenance={**provenance, **spec.provenance} if spec.provenance else provenance,
        )
        for spec in specs
    ]


# ---------------------------------------------------------------------------------------------
# The asyncio side: a rolling window of calls per endpoint


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


def image_data_url(post: Post) -> str | None:
    if not post.image:
        return None
    mime = mimetypes.guess_type(post.image.name)[0] or "image/jpeg"
    with post.image.open("rb") as handle:
        encoded = base64.b64encode(handle.read()).decode("ascii")
    return f"data:{mime};base64,{encoded}"


class Executor:
    """The loop thread's half. Reports through `events` (a thread-safe queue), never the database.

    Events: ("result", Outcome) for every call, ("post", post_id, "done" | "failed").
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
        self.retry_base = _setting("DISTILLERY_RETRY_BASE_SECONDS", 1.0)
        self.retry_max = _setting("DISTILLERY_RETRY_MAX_SECONDS", 60.0)
        self.max_attempts = int(_setting("DISTILLERY_RETRY_MAX_ATTEMPTS", 6))
        self.rate_limit_patience = _setting("DISTILLERY_RATE_LIMIT_PATIENCE_SECONDS", 600.0)

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
            if not _is_batched(endpoint):
                self.backends[endpoint.pk] = _backend_for(endpoint)
        # Enough posts in flight to keep every endpoint's window full while posts change stage.
        window = 4 * sum(
            plan.endpoint.concurrency
            for plan in {p.endpoint.pk: p for p in self.plans.values()}.values()
        )
        if any(_is_batched(p.endpoint) for p in self.plans.values()):
            window = max(window, 4 * int(_setting("DISTILLERY_GPU_CHUNK_SIZE", 16)))
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
        for wave in self.waves:
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
                self.events.put(("post", work.post.pk, "failed"))
                return
            upstream = {**upstream, **{o.stage: o.parsed for o in outcomes}}
        self.events.put(("post", work.post.pk, "done"))

    async def _run_stage(
        self,
        post_id: int,
        plan: StagePlan,
        stage_input: StageInput,
        earlier: dict[str, Any] | None = None,
    ) -> Outcome | None:
        if self.stopping:
            return None
        if _is_batched(plan.endpoint):
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
                    return _outcome_from_answer(post_id, plan.stage, request, completion, attempts)
            # A rate limit is the server asking us to wait, not a failure of this call: it is
            # bounded by time (RATE_LIMIT_PATIENCE), not by the number of attempts.
            waiting_out_limit = (
                failure.status == 429
                and time.monotonic() - first_attempt < self.rate_limit_patience
            )
            if not failure.retryable or (attempts >= self.max_attempts and not waiting_out_limit):
                return _outcome_from_error(post_id, plan.stage, request, failure, attempts)
            # Exponential backoff with full jitter; a server's Retry-After is a floor.
            delay = random.uniform(0, min(self.retry_max, self.retry_base * 2 ** (attempts - 1)))
            if failure.retry_after:
                delay = max(delay, min(self.retry_max, failure.retry_after))
            assert self.stopped is not None
            try:
                await asyncio.wait_for(self.stopped.wait(), timeout=delay)
            except TimeoutError:
                pass


# ---------------------------------------------------------------------------------------------
# The caller's side: lease, preparation, writes, counters


def _lease_seconds() -> float:
    return float(_setting("DISTILLERY_BATCH_LEASE_SECONDS", 10.0))


def batch_claim(*, batch_id: int, token: str) -> bool:
    """Take the batch's lease, waiting out a dead runner's; False if it is live or not runnable."""
    lease = _lease_seconds()
    deadline = time.monotonic() + lease + 2
    while True:
        now = timezone.now()
        claimed = (
            Batch.objects.filter(
                pk=batch_id, status__in=[Batch.Status.QUEUED, Batch.Status.RUNNING]
            )
            .filter(
                Q(runner="")
                | Q(heartbeat_at__isnull=True)
                | Q(heartbeat_at__lt=now - timedelta(seconds=lease))
            )
            .update(
                runner=token,
                heartbeat_at=now,
                status=Batch.Status.RUNNING,
                started_at=Coalesce("started_at", now),
                finished_at=None,
                run_started_at=now,
                run_calls=0,
                run_posts_finished=0,
                error="",
            )
        )
        if claimed:
            return True
        status = Batch.objects.filter(pk=batch_id).values_list("status", flat=True).first()
        if status not in (Batch.Status.QUEUED, Batch.Status.RUNNING):
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)


@dataclass
class Progress:
    """The counters the runner keeps and writes, absolute, at every flush."""

    stages: dict[str, dict[str, int]]
    posts_done: int = 0
    posts_failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    run_calls: int = 0
    run_posts_finished: int = 0

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
        }


def _prepare(
    batch: Batch, plans: list[StagePlan], *, retry_failed: bool
) -> tuple[list[PostWork], Progress, dict[tuple[int, str], int], list[KnowledgeItem]]:
    """What is left to do, from the results already stored under this batch's keys."""
    posts = list(
        Post.objects.filter(dataset_id=batch.dataset_id)
        .only("id", "text", "image", "metadata")
        .order_by("id")[: batch.limit]
        if batch.limit
        else Post.objects.filter(dataset_id=batch.dataset_id)
        .only("id", "text", "image", "metadata")
        .order_by("id")
    )
    post_ids = {post.pk for post in posts}
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
        stages={
            p.name: {"done": 0, "failed": 0, "skipped": 0, "cached": 0, "partial": 0} for p in plans
        },
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
                items.extend(_items(batch, plan, post.pk, known_ids, row["parsed"]))
            elif row and row["batch_id"] == batch.pk and not retry_failed:
                # Failed in an earlier run of this batch: it waits for "retry failed".
                counts["failed"] += 1
                failed = True
            else:
                todo.add(plan.name)
        if failed:
            progress.posts_failed += 1
        elif not todo:
            progress.posts_done += 1
        else:
            work.append(
                PostWork(post=post, upstream=upstream, todo=todo, skipped=skipped, retried=retried)
            )
    return work, progress, known_ids, items


class BatchRun:
    """One run of a batch in the caller's thread; see the module docstring."""

    def __init__(
        self,
        batch: Batch,
        pipeline: Pipeline,
        *,
        token: str,
        retry_failed: bool,
        on_progress: Callable[["Progress"], None] | None = None,
    ) -> None:
        self.batch = batch
        self.pipeline = pipeline
        self.token = token
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.plan_list = stage_plans(batch, pipeline)
        self.plans = {plan.name: plan for plan in self.plan_list}
        self.events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self.pending: list[Outcome] = []
        self.stop_reason = ""  # "", "paused", "cancelled", "budget", "lease"
        self.gpu_waiting: dict[tuple[int, str], asyncio.Future] = {}
        self.gpu_unsent: list[tuple[str, int]] = []
        self.gpu_first_unsent = 0.0

    def run(self) -> None:
        flush_seconds = _setting("DISTILLERY_FLUSH_SECONDS", 0.2)
        work, self.progress, self.known_ids, cached_items = _prepare(
            self.batch, self.plan_list, retry_failed=self.retry_failed
        )
        # Cached answers reuse their items: the batch is linked to them, nothing is copied.
        for start in range(0, len(cached_items), 2000):
            with transaction.atomic():
                items_store(
                    batch_id=self.batch.pk,
                    items=cached_items[start : start + 2000],
                    now=timezone.now(),
                )
        self._flush()
        self.executor = Executor(
            pipeline=self.pipeline, plans=self.plan_list, work=work, events=self.events
        )
        finished = threading.Event()
        loop_errors: list[BaseException] = []

        def run_loop() -> None:
            try:
                self.executor.run()
            except BaseException as error:  # re-raised below, in the caller's thread
                loop_errors.append(error)
            finally:
                finished.set()

        thread = threading.Thread(target=run_loop, name=f"batch-{self.batch.pk}")
        thread.start()
        try:
            # Wake a few times a second, not once a result: each wake takes the GIL from the
            # loop thread, and thousands a second would slow the window down.
            while True:
                done = finished.wait(flush_seconds)
                self._drain_events()
                self._collect_gpu_requests()
                self._flush()
                self._dispatch_gpu(force=done)
                self._poll_gpu()
                if done and self.events.empty():
                    break
        except BaseException:
            self.executor.stop(cancel=True)
            thread.join(timeout=30)
            raise
        thread.join()
        if loop_errors:
            raise loop_errors[0]
        self._finish()

    def _drain_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle(event)

    def _handle(self, event: tuple) -> None:
        if event[0] == "result":
            outcome: Outcome = event[1]
            self.pending.append(outcome)
            self._count_result(outcome, called=True)
        else:
            _, _, state = event
            if state == "done":
                self.progress.posts_done += 1
            else:
                self.progress.posts_failed += 1
            self.progress.run_posts_finished += 1

    def _count_result(self, outcome: Outcome, *, called: bool) -> None:
        counts = self.progress.stages[outcome.stage]
        counts["done" if outcome.ok else "failed"] += 1
        if outcome.ok and outcome.missing:
            counts["partial"] = counts.get("partial", 0) + 1
        if called:
            self.progress.prompt_tokens += outcome.prompt_tokens
            self.progress.completion_tokens += outcome.completion_tokens
            self.progress.calls += outcome.attempts
            self.progress.run_calls += outcome.attempts

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        size = int(_setting("DISTILLERY_FLUSH_RESULTS", 200))
        for start in range(0, len(pending), size):
            persist_outcomes(
                batch=self.batch,
                plans=self.plans,
                outcomes=pending[start : start + size],
                known_ids=self.known_ids,
            )
        self._heartbeat()

    def _heartbeat(self) -> None:
        fields = {**self.progress.fields(), "heartbeat_at": timezone.now()}
        if self.on_progress:
            self.on_progress(self.progress)
        mine = Batch.objects.filter(pk=self.batch.pk, runner=self.token)
        if mine.filter(status=Batch.Status.RUNNING).update(**fields):
            budget = self.batch.token_budget
            used = self.progress.prompt_tokens + self.progress.completion_tokens
            if budget and used >= budget and not self.stop_reason:
                self.stop_reason = "budget"
                self.executor_stop(cancel=False)
            return
        # Paused, cancelled, or (rarely) the lease went to another runner: stop starting calls.
        mine.update(**fields)
        status = Batch.objects.filter(pk=self.batch.pk).values_list("status", "runner").get()
        if self.stop_reason:
            return
        if status[1] != self.token:
            self.stop_reason = "lease"
            self.executor_stop(cancel=True)
        elif status[0] == Batch.Status.CANCELLED:
            self.stop_reason = "cancelled"
            self.executor_stop(cancel=True)
        else:
            self.stop_reason = "paused"
            self.executor_stop(cancel=False)

    def executor_stop(self, *, cancel: bool) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.stop(cancel=cancel)
            for future in self.gpu_waiting.values():
                executor.resolve(future, None)
            self.gpu_waiting.clear()

    def _finish(self) -> None:
        now = timezone.now()
        fields = {**self.progress.fields(), "heartbeat_at": now, "runner": ""}
        mine = Batch.objects.filter(pk=self.batch.pk, runner=self.token)
        if self.stop_reason == "budget":
            used = self.progress.prompt_tokens + self.progress.completion_tokens
            mine.filter(status=Batch.Status.RUNNING).update(
                status=Batch.Status.FAILED,
                finished_at=now,
                error=f"Token budget exceeded: {used} of {self.batch.token_budget} tokens used.",
            )
        elif not self.stop_reason:
            mine.filter(status=Batch.Status.RUNNING).update(
                status=Batch.Status.DONE, finished_at=now
            )
        mine.update(**fields)
        if self.on_progress:
            self.on_progress(self.progress)

    # GPU stages: chunks to the gpu queue, results read back from the database.

    def _collect_gpu_requests(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is None:
            return
        while True:
            try:
                stage, post_id, future = executor.gpu_requests.get_nowait()
            except queue.Empty:
                return
            if self.stop_reason:
                executor.resolve(future, None)
                continue
            if not self.gpu_unsent:
                self.gpu_first_unsent = time.monotonic()
            self.gpu_waiting[(post_id, stage)] = future
            self.gpu_unsent.append((stage, post_id))

    def _dispatch_gpu(self, *, force: bool) -> None:
        from generation.tasks import gpu_batch_chunk_execute

        chunk_size = int(_setting("DISTILLERY_GPU_CHUNK_SIZE", 16))
        if not self.gpu_unsent:
            return
        waited = time.monotonic() - self.gpu_first_unsent
        if len(self.gpu_unsent) < chunk_size and waited < 1.0 and not force:
            return
        by_stage: dict[str, list[int]] = {}
        for stage, post_id in self.gpu_unsent:
            by_stage.setdefault(stage, []).append(post_id)
        self.gpu_unsent = []
        for stage, post_ids in by_stage.items():
            for start in range(0, len(post_ids), chunk_size):
                gpu_batch_chunk_execute.delay(
                    batch_id=self.batch.pk,
                    stage=stage,
                    post_ids=post_ids[start : start + chunk_size],
                )

    def _poll_gpu(self) -> None:
        if not self.gpu_waiting:
            return
        by_stage: dict[str, list[int]] = {}
        for post_id, stage in self.gpu_waiting:
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
                if updated_at < self.batch_claimed_at:
                    continue  # a failure of an earlier run, not yet redone
                future = self.gpu_waiting.pop((post_id, stage))
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
                self._count_result(outcome, called=True)
                self.executor.resolve(future, outcome)

    @property
    def batch_claimed_at(self):
        return self.batch.run_started_at


def batch_execute(
    *,
    batch_id: int,
    retry_failed: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Batch:
    """Run (or resume) a batch to its end, a pause or a cancel. Safe to call twice at once."""
    token = uuid.uuid4().hex
    if not batch_claim(batch_id=batch_id, token=token):
        return Batch.objects.get(pk=batch_id)
    batch = Batch.objects.select_related("dataset", "endpoint").get(pk=batch_id)
    try:
        BatchRun(
            batch,
            get_pipeline(batch.pipeline),
            token=token,
            retry_failed=retry_failed,
            on_progress=on_progress,
        ).run()
    except Exception as error:
        Batch.objects.filter(pk=batch_id, runner=token).update(
            status=Batch.Status.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
            runner="",
        )
        raise
    return Batch.objects.get(pk=batch_id)


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
                outcome = _outcome_from_error(post.pk, plan.stage, request, answer, 1)
            else:
                outcome = _outcome_from_answer(post.pk, plan.stage, request, answer, 1)
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
        _GPU_BACKENDS[key] = _backend_for(endpoint)
    return _GPU_BACKENDS[key]
