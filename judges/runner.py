"""A judge run on the generation runner: its executor, its lease and its caller's loop.

`judges.prompt.JudgePipeline` makes each question a stage and each item a unit of work, so the
executor (`generation.runner.executor.Executor`, the loop thread of every batch) asks the calls
with the endpoint's concurrency, backoff and Retry-After, and reports outcomes through a queue.
`JudgeRunner` is the caller's thread, a `generation.runner.loop.LeasedRun` as a batch's is: it
claims the run (`generation.runner.lease`), reads what is already answered (this run's ratings,
and other runs' under the same call key, copied as `cached`), then wakes every
`DISTILLERY_FLUSH_SECONDS` to store ratings, write the counters and act on a cancel or the token
budget, riding out a lost database connection (`reconnecting`). Nothing is asked twice.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.scales import get_scale
from annotation.selectors import campaign_items
from generation.pipelines.base import StageInput
from generation.runner.executor import Executor, PostWork
from generation.runner.keys import StagePlan, params_hash
from generation.runner.lease import SYSTEM_CLOCK, Clock, lease_claim, reconnecting
from generation.runner.loop import LeasedRun, budget_error, leased_execute
from generation.runner.outcomes import CALL_FIELDS, Outcome
from generation.selectors.items import result_descriptions
from judges.models import JudgeRating, JudgeRun
from judges.prompt import JudgePipeline, QuestionPrompt, call_key, judge_pipeline

S = JudgeRun.Status
# Ratings written per transaction at most.
WRITE_CHUNK = 500
# What a rating asked again updates: the call's fields and its own.
RATING_FIELDS = ["call_key", "status", "value", "cached", *CALL_FIELDS, "updated_at"]


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


class JudgeRunner(LeasedRun):
    """One run of a judge run in the caller's thread; see the module docstring. It stops early
    (`stop_reason`) on "cancelled", "budget" or "lease"."""

    def __init__(
        self,
        run: JudgeRun,
        *,
        token: str,
        retry_failed: bool,
        on_progress: Callable[[JudgeRun], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(model=JudgeRun, pk=run.pk, token=token, clock=clock)
        self.run_row = run
        self.retry_failed = retry_failed
        self.on_progress = on_progress
        self.pipeline = run_pipeline(run)
        self.plans = run_plans(run, self.pipeline)
        self.question_ids = {q.name: q.pk for q in run.questions.all()}
        self.pending: list[Outcome] = []
        self.keys: dict[tuple[int, str], str] = {}

    def _prepare(self) -> list[PostWork]:
        """What is left to ask; copies other runs' answers to the same calls. Safe to run again
        after a lost connection: the counters start afresh and the copies commit together."""
        run = self.run_row
        self.counters = Counters(
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            calls=run.calls,
        )
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
        with transaction.atomic():
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
        work = reconnecting(self._prepare, clock=self.clock)
        reconnecting(self._heartbeat, clock=self.clock)
        executor = Executor(pipeline=self.pipeline, plans=self.plans, work=work, events=self.events)
        self.execute(executor, name=f"judge-run-{self.run_row.pk}")
        reconnecting(self._finish, clock=self.clock)

    def handle(self, event: tuple) -> None:
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

    def wake(self, *, done: bool) -> None:
        reconnecting(self._flush, clock=self.clock)

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
            **outcome.call_fields(),
            created_at=now,
            updated_at=now,
        )

    def _heartbeat(self) -> None:
        why_not = self.renewed(self.counters.fields())
        if self.on_progress:
            self.on_progress(JudgeRun.objects.get(pk=self.run_row.pk))
        if self.stop_reason:
            return
        if why_not:
            # Cancelled, or (rarely) the lease went to another runner: abandon the calls.
            self.stop("lease" if why_not == "lease" else "cancelled", cancel=True)
            return
        used = self.counters.prompt_tokens + self.counters.completion_tokens
        self.budget_spent(used=used, budget=self.run_row.token_budget)

    def _finish(self) -> None:
        ending = None
        if self.stop_reason == "budget":
            used = self.counters.prompt_tokens + self.counters.completion_tokens
            error = budget_error(used=used, budget=self.run_row.token_budget)
            ending = {"status": S.FAILED, "error": error}
        elif not self.stop_reason:
            ending = {"status": S.DONE}
        self.end(fields=self.counters.fields(), ending=ending)
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


def judge_run_claim(
    *, run_id: int, token: str, wait: bool = False, clock: Clock = SYSTEM_CLOCK
) -> bool:
    """Take the run: queued, or running with no runner or a heartbeat older than a lease; with
    `wait`, a live-looking runner's lease is waited out, as a batch's (`lease_claim`)."""
    return lease_claim(
        model=JudgeRun,
        pk=run_id,
        token=token,
        wait=wait,
        clock=clock,
        fields=lambda now: {"started_at": Coalesce("started_at", now), "error": ""},
    )


def judge_run_execute(
    *,
    run_id: int,
    retry_failed: bool = False,
    on_progress: Callable[[JudgeRun], None] | None = None,
    wait_for_lease: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> JudgeRun | None:
    """Run (or resume) a judge run to its end or a cancel; a run with a live runner is left to it
    (and a run deleted since it was queued is None).

    `wait_for_lease` (the Celery task, which may be a dead worker's run sent again) first waits
    out a lease that looks live, as a batch's claim does. A database connection lost for longer
    than a lease gives the lease up and raises `ConnectionLost` (the task retries it); any other
    error fails the run with its message and is raised again.
    """

    def run(token: str) -> None:
        row = JudgeRun.objects.select_related("campaign", "endpoint").get(pk=run_id)
        JudgeRunner(
            row, token=token, retry_failed=retry_failed, on_progress=on_progress, clock=clock
        ).run()

    leased_execute(
        model=JudgeRun,
        pk=run_id,
        label=f"Judge run {run_id}",
        claim=lambda token: judge_run_claim(
            run_id=run_id, token=token, wait=wait_for_lease, clock=clock
        ),
        run=run,
    )
    # Finished, cancelled, held by a live runner, or deleted since it was queued (None).
    return JudgeRun.objects.filter(pk=run_id).first()
