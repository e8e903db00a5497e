"""A judge run on the generation runner's executor: the rolling window, retries and rate limits.

`judges.prompt.JudgePipeline` makes each question a stage and each item a unit of work, so the
executor (`generation.runner.executor.Executor`, the loop thread of every batch) asks the calls
with the endpoint's concurrency, backoff and Retry-After, and reports outcomes through a queue.
This module is the caller's thread, as `generation.runner.run` is a batch's: it claims the run,
reads what is already answered (this run's ratings, and other runs' under the same call key,
copied as `cached`), then wakes every `DISTILLERY_FLUSH_SECONDS` to store ratings, write the
counters and act on a cancel or the token budget. Nothing is asked twice.
"""

import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.scales import get_scale
from annotation.selectors import campaign_items
from generation.pipelines.base import StageInput
from generation.runner.executor import Executor, PostWork
from generation.runner.keys import StagePlan, params_hash
from generation.runner.outcomes import Outcome
from generation.selectors.items import result_descriptions
from judges.models import JudgeRating, JudgeRun
from judges.prompt import JudgePipeline, QuestionPrompt, call_key, judge_pipeline

S = JudgeRun.Status
# Ratings written per transaction at most.
WRITE_CHUNK = 500
RATING_FIELDS = [
    "call_key",
    "status",
    "value",
    "raw_answer",
    "error",
    "request",
    "cached",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "attempts",
    "updated_at",
]


@dataclass
class ItemSubject:
    """What the executor reads of a unit of work (as of a post): `pk`, `text`, `metadata`.

    Here the unit is an item: its id, its post's text, and the item itself in `metadata`. Judge
    stages send no image, so `image` stays empty.
    """

    pk: int
    text: str
    metadata: dict[str, Any]
    image: str = ""


@dataclass
class Counters:
    done: int = 0
    failed: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    def fields(self) -> dict[str, int]:
        return {
            "ratings_done": self.done,
            "ratings_failed": self.failed,
            "ratings_cached": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "calls": self.calls,
        }


def run_pipeline(run: JudgeRun) -> JudgePipeline:
    questions = [
        QuestionPrompt(name=q.name, prompt=q.prompt, scale=get_scale(q.scale))
        for q in run.questions.order_by("position", "id")
    ]
    return judge_pipeline(
        template=run.template_text,
        instructions=run.campaign.instructions,
        questions=questions,
        structured=run.structured_output,
    )


def run_plans(run: JudgeRun, pipeline: JudgePipeline) -> list[StagePlan]:
    endpoint = run.endpoint
    return [
        StagePlan(
            stage=stage,
            endpoint=endpoint,
            template_hash=run.template_hash,
            parameters=run.parameters,
            params_hash=params_hash(run.parameters),
            endpoint_key=endpoint.cache_key,
            variant="default",
        )
        for stage in pipeline.stages
    ]


def run_subjects(run: JudgeRun) -> list[ItemSubject]:
    """The items the run rates, in post and slot order, with what the prompt shows of them."""
    items = campaign_items(campaign=run.campaign)
    if run.batch_id:
        items = items.filter(batch_links__batch_id=run.batch_id)
    rows = list(
        items.order_by("post_id", "position", "id").values_list(
            "id", "kind", "text", "post__text", "description_result_id"
        )
    )
    descriptions = result_descriptions(result_ids={row[4] for row in rows if row[4]})
    return [
        ItemSubject(
            pk=pk,
            text=post_text,
            metadata={"kind": kind, "text": text, "description": descriptions.get(result_id, "")},
        )
        for pk, kind, text, post_text, result_id in rows
    ]


class JudgeRunner:
    """One run of a judge run in the caller's thread; see the module docstring."""

    def __init__(
        self,
        run: JudgeRun,
        *,
        token: str,
        retry_failed: bool,
        on_progress: Callable[[JudgeRun], None] | None = None,
    ) -> None:
        self.run_row = run
        self.token = token
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.pipeline = run_pipeline(run)
        self.plans = run_plans(run, self.pipeline)
        self.question_ids = {q.name: q.pk for q in run.questions.all()}
        self.events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self.pending: list[Outcome] = []
        self.keys: dict[tuple[int, str], str] = {}
        self.counters = Counters(
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            calls=run.calls,
        )
        self.stop_reason = ""  # "", "cancelled", "budget", "lease"
        self.executor: Executor | None = None

    def _prepare(self) -> list[PostWork]:
        """What is left to ask; copies other runs' answers to the same calls."""
        run = self.run_row
        subjects = run_subjects(run)
        endpoint = run.endpoint
        for subject in subjects:
            for plan in self.plans:
                request = self.pipeline.build_request(
                    plan.stage, _stage_input(subject), plan.parameters
                )
                self.keys[(subject.pk, plan.name)] = call_key(
                    endpoint_key=endpoint.cache_key, model=endpoint.model, request=request
                )
        names = {pk: name for name, pk in self.question_ids.items()}
        mine = {
            (item_id, names[question_id]): status
            for item_id, question_id, status in run.ratings.values_list(
                "item_id", "question_id", "status"
            )
        }
        wanted = [key for pair, key in self.keys.items() if pair not in mine]
        cached = _answers_of_other_runs(run, wanted)
        copies = []
        for (item_id, name), key in self.keys.items():
            if (item_id, name) not in mine and key in cached:
                copies.append(
                    _copy_of(
                        cached[key], run=run, item_id=item_id, question_id=self.question_ids[name]
                    )
                )
                mine[(item_id, name)] = JudgeRating.Status.OK
                self.counters.cached += 1
        for start in range(0, len(copies), WRITE_CHUNK):
            JudgeRating.objects.bulk_create(copies[start : start + WRITE_CHUNK])
        work = []
        for subject in subjects:
            todo = set()
            for plan in self.plans:
                status = mine.get((subject.pk, plan.name))
                if status == JudgeRating.Status.OK:
                    self.counters.done += 1
                elif status == JudgeRating.Status.FAILED and not self.retry_failed:
                    self.counters.failed += 1
                else:
                    todo.add(plan.name)
            if todo:
                work.append(PostWork(post=subject, upstream={}, todo=todo, skipped=set()))
        JudgeRun.objects.filter(pk=run.pk).update(ratings_total=len(self.keys))
        run.ratings_total = len(self.keys)
        return work

    def run(self) -> None:
        work = self._prepare()
        self._heartbeat()
        executor = self.executor = Executor(
            pipeline=self.pipeline, plans=self.plans, work=work, events=self.events
        )
        finished = threading.Event()
        loop_errors: list[BaseException] = []

        def run_loop() -> None:
            try:
                executor.run()
            except BaseException as error:  # re-raised below, in the caller's thread
                loop_errors.append(error)
            finally:
                finished.set()

        thread = threading.Thread(target=run_loop, name=f"judge-run-{self.run_row.pk}")
        thread.start()
        try:
            while True:
                done = finished.wait(settings.DISTILLERY_FLUSH_SECONDS)
                self._drain_events()
                self._flush()
                if done and self.events.empty():
                    break
        except BaseException:
            executor.stop(cancel=True)
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
            if event[0] == "result":
                outcome: Outcome = event[1]
                self.pending.append(outcome)
                if outcome.ok:
                    self.counters.done += 1
                else:
                    self.counters.failed += 1
                self.counters.prompt_tokens += outcome.prompt_tokens
                self.counters.completion_tokens += outcome.completion_tokens
                self.counters.calls += outcome.attempts

    def _flush(self) -> None:
        # An outcome leaves `pending` once its transaction has committed.
        while self.pending:
            chunk = self.pending[:WRITE_CHUNK]
            now = timezone.now()
            rows = [self._rating(outcome, now) for outcome in chunk]
            with transaction.atomic():
                JudgeRating.objects.bulk_create(
                    rows,
                    update_conflicts=True,
                    unique_fields=["run", "item", "question"],
                    update_fields=RATING_FIELDS,
                )
            del self.pending[:WRITE_CHUNK]
        self._heartbeat()

    def _rating(self, outcome: Outcome, now) -> JudgeRating:
        return JudgeRating(
            run_id=self.run_row.pk,
            item_id=outcome.post_id,
            question_id=self.question_ids[outcome.stage],
            call_key=self.keys[(outcome.post_id, outcome.stage)],
            status=JudgeRating.Status.OK if outcome.ok else JudgeRating.Status.FAILED,
            value=outcome.parsed["value"] if outcome.ok and outcome.parsed else None,
            raw_answer=outcome.raw,
            error=outcome.error,
            request=outcome.request,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_ms=outcome.latency_ms,
            attempts=outcome.attempts,
            created_at=now,
            updated_at=now,
        )

    def _heartbeat(self) -> None:
        fields = {**self.counters.fields(), "heartbeat_at": timezone.now()}
        mine = JudgeRun.objects.filter(pk=self.run_row.pk, runner=self.token)
        updated = mine.filter(status=S.RUNNING).update(**fields)
        if self.on_progress:
            self.on_progress(JudgeRun.objects.get(pk=self.run_row.pk))
        if self.stop_reason:
            return
        if not updated:
            # Cancelled, or (rarely) the lease went to another runner: abandon the calls.
            self.stop_reason = "cancelled" if mine.exists() else "lease"
            mine.update(**fields)
            self._stop(cancel=True)
            return
        budget = self.run_row.token_budget
        used = self.counters.prompt_tokens + self.counters.completion_tokens
        if budget and used >= budget:
            self.stop_reason = "budget"
            self._stop(cancel=False)

    def _stop(self, *, cancel: bool) -> None:
        if self.executor is not None:
            self.executor.stop(cancel=cancel)

    def _finish(self) -> None:
        now = timezone.now()
        fields = {**self.counters.fields(), "heartbeat_at": now, "runner": ""}
        mine = JudgeRun.objects.filter(pk=self.run_row.pk, runner=self.token)
        if self.stop_reason == "budget":
            used = self.counters.prompt_tokens + self.counters.completion_tokens
            mine.filter(status=S.RUNNING).update(
                status=S.FAILED,
                finished_at=now,
                error=f"Token budget exceeded: {used} of {self.run_row.token_budget} tokens used.",
            )
        elif not self.stop_reason:
            mine.filter(status=S.RUNNING).update(status=S.DONE, finished_at=now)
        mine.update(**fields)
        if self.on_progress:
            self.on_progress(JudgeRun.objects.get(pk=self.run_row.pk))


def _stage_input(subject: ItemSubject) -> StageInput:
    return StageInput(
        text=subject.text, image_data_url=None, metadata=subject.metadata, upstream={}
    )


def _answers_of_other_runs(run: JudgeRun, keys: list[str]) -> dict[str, JudgeRating]:
    found: dict[str, JudgeRating] = {}
    for start in range(0, len(keys), 2000):
        rows = JudgeRating.objects.filter(
            call_key__in=keys[start : start + 2000], status=JudgeRating.Status.OK
        ).exclude(run=run)
        for rating in rows.only("call_key", "value", "raw_answer", "request"):
            found.setdefault(rating.call_key, rating)
    return found


def _copy_of(rating: JudgeRating, *, run: JudgeRun, item_id: int, question_id: int) -> JudgeRating:
    return JudgeRating(
        run=run,
        item_id=item_id,
        question_id=question_id,
        call_key=rating.call_key,
        status=JudgeRating.Status.OK,
        value=rating.value,
        raw_answer=rating.raw_answer,
        request=rating.request,
        cached=True,
        attempts=0,
    )


def judge_run_claim(*, run_id: int, token: str) -> bool:
    """Take the run: queued, or running with no runner or a heartbeat older than a lease."""
    now = timezone.now()
    stale = now - timedelta(seconds=float(settings.DISTILLERY_BATCH_LEASE_SECONDS))
    return bool(
        JudgeRun.objects.filter(pk=run_id, status__in=[S.QUEUED, S.RUNNING])
        .filter(Q(runner="") | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .update(status=S.RUNNING, runner=token, heartbeat_at=now, error="")
    )


def judge_run_execute(
    *,
    run_id: int,
    retry_failed: bool = False,
    on_progress: Callable[[JudgeRun], None] | None = None,
) -> JudgeRun | None:
    """Run (or resume) a judge run to its end or a cancel; a run with a live runner is left to it
    (and a run deleted since it was queued is None).

    Any error fails the run with its message and is raised again.
    """
    token = uuid.uuid4().hex
    if not judge_run_claim(run_id=run_id, token=token):
        # Finished, cancelled, held by a live runner, or deleted since it was queued.
        return JudgeRun.objects.filter(pk=run_id).first()
    try:
        run = JudgeRun.objects.select_related("campaign", "endpoint").get(pk=run_id)
        if run.started_at is None:
            JudgeRun.objects.filter(pk=run_id).update(started_at=timezone.now())
        JudgeRunner(run, token=token, retry_failed=retry_failed, on_progress=on_progress).run()
    except Exception as error:
        JudgeRun.objects.filter(pk=run_id, runner=token).update(
            status=S.FAILED,
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
            runner="",
        )
        raise
    return JudgeRun.objects.get(pk=run_id)
