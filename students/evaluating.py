"""`evaluate`: an endpoint answers a split's posts, scored against the human-accepted references.

References are the items of a campaign whose ratings pass the acceptance bounds (mean
plausibility ≥ 4 by default), on the split's posts. The answers come from one of two pipelines
(`students.answering`): `direct` asks each (post, kind) with references once, with the student's
single prompt: exactly the system and user messages of the `sft-chat` export
(`evaluation.exports.training.chat_prompt`), so a model trained on that export is evaluated as it
was trained; the post reads with the image description its references were made with. `miko` runs
the teacher's staged pipeline on those posts as a batch and takes the items it produced.

A run is recorded queued (`evaluation_run_create`, which refuses broken input before anything is
stored), then runs on a worker (`students.tasks`: the `gpu` queue for a `transformers` endpoint,
the default queue otherwise) or in the caller (`evaluation_run_execute`): queued → running (its
progress written as it goes) → done with its scores, or failed with the error. While it runs, its
worker holds its lease (`students.leases`); a run a dead worker left is run again from the start
(`evaluation_runs_resume_orphaned`), and a failed one may be started again
(`evaluation_run_restart`).
"""

import asyncio
import logging
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.db import connections, transaction

from annotation.models import Campaign
from config.errors import ApplicationError, Conflict, NotFound
from evaluation.exports.export import post_prompt
from evaluation.exports.manifest import distillery_version
from evaluation.exports.training import chat_prompt
from evaluation.selectors.campaigns import campaign_questions, item_details
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.scores import item_scores
from generation.models import COMPARISON_PIPELINE, Dataset, Endpoint
from generation.runner.lease import SYSTEM_CLOCK, Clock, lease_claim
from generation.selectors.items import result_descriptions
from generation.services.batches import batch_cancel
from students.answering import Answers, Progress, Prompt, direct_answers, miko_answers
from students.leases import Heartbeat, job_restart
from students.models import EvaluationRun
from students.scoring import BertScoreModel, ScoredAnswer, scores_of
from students.selectors import posts_in_split

logger = logging.getLogger(__name__)

P = EvaluationRun.Pipeline
DEFAULT_ACCEPT = {"plausibility": 4.0}
# Sampling of the answers. direct: deterministic and one sentence long. miko: the pipeline's own
# (each stage's defaults, then the endpoint's), as the teacher ran.
DEFAULT_PARAMETERS = {P.DIRECT: {"temperature": 0.0, "max_tokens": 96}, P.MIKO: {}}
PROGRESS_SECONDS = 0.5


def accept_parse(specs: list[str]) -> dict[str, float]:
    """Acceptance bounds from `QUESTION=X` texts; none gives the default (plausibility ≥ 4)."""
    if not specs:
        return dict(DEFAULT_ACCEPT)
    accept = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            number = float(value)
            if not sep or not name.strip() or not math.isfinite(number):
                raise ValueError(spec)
        except ValueError:
            raise ApplicationError(
                f"acceptance bounds are QUESTION=NUMBER, not {spec!r}", field="accept"
            ) from None
        accept[name.strip()] = number
    return accept


def evaluation_campaign(*, dataset: Dataset, name: str | None) -> Campaign:
    """The campaign named (of the dataset), or the dataset's only campaign when none is named
    (blind comparisons' campaigns rate other models' answers, not references: they count only
    when named)."""
    campaigns = Campaign.objects.filter(dataset=dataset)
    if name:
        found = campaigns.filter(name=name).first()
        if found is None:
            raise ApplicationError(
                f"dataset {dataset.name!r} has no campaign {name!r}", field="campaign"
            )
        return found
    found = list(campaigns.exclude(batches__pipeline=COMPARISON_PIPELINE).distinct()[:2])
    if len(found) != 1:
        raise ApplicationError(
            f"dataset {dataset.name!r} has {'no' if not found else 'several'} campaigns: name "
            "the one whose ratings accept the references",
            field="campaign",
        )
    return found[0]


def evaluation_questions(
    *, campaign: Campaign, split: str, accept: dict[str, float]
) -> list[Prompt]:
    """Every (post, kind) of the split's posts with at least one accepted item of `campaign`."""
    names = [q.name for q in campaign_questions(campaign=campaign)]
    unknown = sorted(set(accept) - set(names))
    if unknown:
        raise ApplicationError(
            f"campaign {campaign.name!r} has no question {', '.join(unknown)}; "
            f"its questions: {', '.join(names) or 'none'}",
            field="accept",
        )
    try:
        posts_in_split(dataset=campaign.dataset, split=split)  # refuses an unknown split
    except NotFound as error:
        raise ApplicationError(error.message, field="split") from None
    # Only the accepting questions must be rated (min_ratings=0: no bound on the others).
    filters = ItemFilters(min_mean=dict(accept), min_ratings=0, splits=(split,))
    item_ids = [row["item_id"] for row in item_scores(campaign=campaign, filters=filters)]
    items = item_details(item_ids=item_ids) if item_ids else {}
    descriptions = result_descriptions(
        result_ids={i["description_result_id"] for i in items.values()} - {None}
    )
    grouped: dict[tuple[str, str], dict] = {}
    for item in sorted(items.values(), key=lambda i: (i["post_id"], i["position"], i["id"])):
        key = (item["external_id"], item["kind"])
        entry = grouped.setdefault(
            key,
            {
                "post_id": item["post_id"],
                "prompt": post_prompt(
                    item["post_text"], descriptions.get(item["description_result_id"], "")
                ),
                "references": [],
            },
        )
        if item["text"] not in entry["references"]:
            entry["references"].append(item["text"])
    return [
        Prompt(
            post=post,
            post_id=entry["post_id"],
            kind=kind,
            messages=chat_prompt(entry["prompt"], kind),
            references=tuple(entry["references"]),
        )
        for (post, kind), entry in grouped.items()
    ]


def evaluation_run_create(
    *,
    campaign: Campaign,
    split: str,
    endpoint: Endpoint,
    pipeline: str = P.DIRECT,
    accept: dict[str, float] | None = None,
    parameters: dict | None = None,
    bertscore: BertScoreModel | None = None,
    price_per_million: tuple[float, float] | None = None,
    created_by=None,
    enqueue: bool = True,
) -> EvaluationRun:
    """Check the request and record the run, queued; with `enqueue`, send it to a worker once
    the transaction commits. `price_per_million` is (prompt, completion), in any currency per
    million tokens, for the cost."""
    if pipeline not in P.values:
        raise ApplicationError(
            f"unknown pipeline {pipeline!r}; pipelines: {', '.join(P.values)}", field="pipeline"
        )
    accept = dict(DEFAULT_ACCEPT if accept is None else accept)
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in accept.values()):
        raise ApplicationError("acceptance bounds are numbers", field="accept")
    if price_per_million is not None:
        price_per_million = tuple(price_per_million)
        if len(price_per_million) != 2 or not all(
            isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in price_per_million
        ):
            raise ApplicationError(
                "a price is two numbers ≥ 0: per million prompt and completion tokens",
                field="price",
            )
    questions = evaluation_questions(campaign=campaign, split=split, accept=accept)
    if not questions:
        raise ApplicationError(
            f"no accepted items of campaign {campaign.name!r} on the {split!r} posts: "
            f"nothing to compare answers with",
            field="split",
        )
    run = EvaluationRun.objects.create(
        dataset=campaign.dataset,
        split=split,
        endpoint=endpoint,
        endpoint_name=endpoint.name,
        pipeline=pipeline,
        campaign=campaign,
        accept=accept,
        parameters={**DEFAULT_PARAMETERS[pipeline], **(parameters or {})},
        price_per_million=list(price_per_million) if price_per_million else None,
        bertscore=None
        if bertscore is None
        else {"model_path": bertscore.path, "num_layers": bertscore.num_layers},
        total=len({q.post for q in questions}) if pipeline == P.MIKO else len(questions),
        created_by=created_by,
    )
    if enqueue:
        evaluation_run_enqueue(run)
    return run


def evaluation_run_enqueue(run: EvaluationRun) -> None:
    """Send the run to a worker once the transaction commits: the `gpu` queue for a
    `transformers` endpoint, the default queue otherwise."""
    from students import tasks

    task = (
        tasks.gpu_evaluation_run_execute
        if run.endpoint is not None and run.endpoint.backend == Endpoint.Backend.TRANSFORMERS
        else tasks.evaluation_run_execute_task
    )
    transaction.on_commit(lambda: task.delay(run.pk))


def evaluation_run_restart(*, run: EvaluationRun) -> EvaluationRun:
    """A failed run queued again and sent to a worker: it runs from the start, its answers asked
    again; 409 unless it failed."""
    job_restart(
        run,
        what="evaluation run",
        done=0,
        scores={},
        answers=[],
        manifest={},
        prompt_tokens=0,
        completion_tokens=0,
        cost=None,
    )
    evaluation_run_enqueue(run)
    return run


def evaluation_runs_resume_orphaned() -> list[int]:
    """Send every queued or running evaluation run to the workers again; returns their ids.

    Registered with `generation.runner.recovery` (`StudentsConfig.ready`): called when a worker
    (re)connects to the broker. A run whose worker died is taken over once its lease has run out
    and runs again from the start: its answers are cheap to ask again (a `direct` run asks its
    questions again; a `miko` run cancels its dead batch and launches another, whose stages the
    cache answers where the first had got, at no cost). A run whose worker is alive keeps it:
    the task waits its lease out, finds it renewed and ends.
    """
    runs = list(
        EvaluationRun.objects.filter(
            status__in=[EvaluationRun.Status.QUEUED, EvaluationRun.Status.RUNNING]
        ).select_related("endpoint")
    )
    for run in runs:
        evaluation_run_enqueue(run)
    return [run.pk for run in runs]


def evaluation_run(**request) -> EvaluationRun:
    """Record a run and run it here (`evaluate` without `--queue`); `progress` hears of it."""
    progress = request.pop("progress", None)
    run = evaluation_run_create(**request, enqueue=False)
    return evaluation_run_execute(run_id=run.pk, progress=progress)


def evaluation_run_execute(
    *,
    run_id: int,
    progress: Progress | None = None,
    wait_for_lease: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> EvaluationRun:
    """Run a run once: queued → running → done, or failed with the error (never raised, so a
    worker goes on). It holds the run's lease while it runs (`students.leases`); a run another
    live worker holds is left alone, one a dead worker left running is taken over (with
    `wait_for_lease`, once the dead worker's lease has run out) and run again from the start."""
    token = uuid.uuid4().hex
    claimed = lease_claim(
        model=EvaluationRun,
        pk=run_id,
        token=token,
        wait=wait_for_lease,
        clock=clock,
        fields=lambda now: {"started_at": now, "finished_at": None, "error": "", "done": 0},
    )
    run = EvaluationRun.objects.select_related("campaign", "endpoint", "dataset").get(pk=run_id)
    if not claimed:
        return run
    writer = _ProgressWriter(run.pk, progress)
    with Heartbeat(model=EvaluationRun, pk=run.pk, token=token) as heartbeat:
        try:
            ending = _answered_and_scored(run, writer)
        except Exception as error:  # recorded on the run for its page; the worker must not crash
            if not isinstance(error, ApplicationError):
                logger.exception("evaluation run %s failed", run_id)
            message = error.message if isinstance(error, ApplicationError) else str(error)
            ending = {
                "status": EvaluationRun.Status.FAILED,
                "error": (message or type(error).__name__)[:2000],
            }
        finally:
            writer.close()
    heartbeat.end(**ending)
    run.refresh_from_db()
    return run


def _answered_and_scored(run: EvaluationRun, progress: Progress) -> dict:
    """The run's answers, scored: the fields of a done run."""
    questions, answers = _answers(run, progress)
    scored = [
        ScoredAnswer(a.question.kind, a.text, a.question.references, a.failed)
        for a in answers.answers
    ]
    bertscore = BertScoreModel(
        path=run.bertscore["model_path"], num_layers=run.bertscore["num_layers"]
    ) if run.bertscore else None  # fmt: skip
    scores = scores_of(scored, bertscore=bertscore)
    cost = None
    if run.price_per_million:
        prompt_price, completion_price = run.price_per_million
        cost = (
            answers.prompt_tokens * prompt_price + answers.completion_tokens * completion_price
        ) / 1e6
    return {
        "status": EvaluationRun.Status.DONE,
        "scores": scores,
        "answers": [
            {"post": a.question.post, "kind": a.question.kind, "text": a.text, "error": a.error}
            for a in answers.answers
        ],
        "prompt_tokens": answers.prompt_tokens,
        "completion_tokens": answers.completion_tokens,
        "cost": cost,
        "done": run.total,
        "manifest": _manifest(run, questions, answers),
    }


def _answers(run: EvaluationRun, progress: Progress) -> tuple[list[Prompt], Answers]:
    if run.campaign is None or run.endpoint is None:
        missing = "campaign" if run.campaign is None else "endpoint"
        raise ApplicationError(f"its {missing} was deleted before it ran")
    questions = evaluation_questions(campaign=run.campaign, split=run.split, accept=run.accept)
    if not questions:
        raise ApplicationError(
            f"no accepted items of campaign {run.campaign.name!r} on the {run.split!r} posts "
            "any more: nothing to compare answers with"
        )
    if run.pipeline == P.MIKO:
        if run.batch is not None and not run.batch.is_finished:
            # A dead worker's batch (this run is run again): another answers, from the cache
            # where this one had got.
            try:
                batch_cancel(batch=run.batch)
            except Conflict:
                pass  # it finished meanwhile
        return questions, miko_answers(
            dataset=run.dataset,
            endpoint=run.endpoint,
            questions=questions,
            parameters=run.parameters,
            launched_by=run.created_by,
            progress=progress,
            on_batch=lambda batch: EvaluationRun.objects.filter(pk=run.pk).update(batch=batch),
        )
    return questions, direct_answers(
        endpoint=run.endpoint, questions=questions, parameters=run.parameters, progress=progress
    )


class _ProgressWriter:
    """Writes a run's progress (done, to do) as it goes, at most every PROGRESS_SECONDS, and
    passes it on to `progress`. From inside an event loop (an API endpoint's answers come in one)
    the write goes to a thread of its own: Django's ORM does not run inside a loop."""

    def __init__(self, run_id: int, progress: Progress | None) -> None:
        self.run_id = run_id
        self.progress = progress
        self.written = 0.0
        self.pool: ThreadPoolExecutor | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress:
            self.progress(done, total)
        now = time.monotonic()
        if done < total and now - self.written < PROGRESS_SECONDS:
            return
        self.written = now
        try:
            asyncio_loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio_loop = None
        if asyncio_loop is None:
            self._write(done, total)
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-progress")
        self.pool.submit(self._write, done, total)

    def _write(self, done: int, total: int) -> None:
        # Progress is for the page: a write that fails is not worth failing the run for.
        try:
            EvaluationRun.objects.filter(pk=self.run_id).update(done=done, total=total)
        except Exception:
            logger.warning("evaluation run %s: progress not written", self.run_id, exc_info=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.submit(connections.close_all)  # the thread's own connection
            self.pool.shutdown(wait=True)


def _manifest(run: EvaluationRun, questions: list[Prompt], answers: Answers) -> dict:
    endpoint = run.endpoint
    if run.pipeline == P.MIKO:
        prompt = "the miko pipeline's stages (generation/prompts/miko), as the batch records them"
    else:
        prompt = "sft-chat: evaluation.exports.training.chat_prompt"
    return {
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "split": run.split,
        "references": {
            "campaign": run.campaign.name,
            "accept_min_mean": run.accept,
            "posts": len({q.post for q in questions}),
            "questions": len(questions),
            "items": sum(len(q.references) for q in questions),
        },
        "endpoint": {
            "name": endpoint.name,
            "backend": endpoint.backend,
            "model": endpoint.model,
            "base_url": endpoint.base_url or None,
            "model_path": endpoint.model_path or None,
            "adapter": endpoint.parameters.get("adapter") or None,
        },
        "pipeline": run.pipeline,
        "batch": answers.batch.pk if answers.batch else None,
        "prompt": prompt,
        "parameters": run.parameters,
        "answers": len(answers.answers),
        "metrics": {
            "rouge_l": "rouge-score rougeL F-measure, stemmed, closest reference",
            "bleu": "sacrebleu corpus BLEU, references as streams",
            "bertscore": run.bertscore,
        },
        "distillery": distillery_version(),
    }
