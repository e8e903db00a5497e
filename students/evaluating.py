"""`evaluate`: an endpoint answers a split's posts, scored against the human-accepted references.

References are the items of a campaign whose ratings pass the acceptance bounds (mean
plausibility ≥ 4 by default), on the split's posts. Each (post, kind) with references is asked
once, with the student's single prompt: exactly the system and user messages of the `sft-chat`
export (`evaluation.exports.training.chat_prompt`), so a model trained on that export is evaluated
as it was trained. The post reads with the image description its references were made with.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign
from config.errors import ApplicationError
from evaluation.exports.export import post_prompt
from evaluation.exports.manifest import distillery_version
from evaluation.exports.training import chat_prompt
from evaluation.selectors.campaigns import campaign_questions, item_details
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.scores import item_scores
from generation.backends import BackendError, ChatRequest, Completion, backend_for
from generation.models import Endpoint
from generation.selectors.items import result_descriptions
from students.models import EvaluationRun
from students.scoring import BertScoreModel, ScoredAnswer, scores_of
from students.selectors import posts_in_split

Progress = Callable[[int, int], None]  # (answers done, answers to ask)

DEFAULT_ACCEPT = {"plausibility": 4.0}
# Sampling of the answers: deterministic and one sentence long, unless the run says otherwise.
DEFAULT_PARAMETERS = {"temperature": 0.0, "max_tokens": 96}
GPU_CHUNK = 16


@dataclass(frozen=True)
class Prompt:
    """One (post, kind) to answer, with its prompt and references."""

    post: str  # external id
    kind: str
    messages: list[dict]
    references: tuple[str, ...]


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
    posts_in_split(dataset=campaign.dataset, split=split)  # refuses an unknown split
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
            kind=kind,
            messages=chat_prompt(entry["prompt"], kind),
            references=tuple(entry["references"]),
        )
        for (post, kind), entry in grouped.items()
    ]


def answers_generate(
    *, endpoint: Endpoint, questions: list[Prompt], parameters: dict, progress: Progress | None
) -> list[Completion | BackendError]:
    """One answer (or the error) per question: in chunks on a local model, concurrently (at most
    the endpoint's concurrency at once) on an API."""
    backend = backend_for(endpoint)
    requests = [ChatRequest(messages=q.messages, parameters=dict(parameters)) for q in questions]
    if backend.batched:
        answers: list[Completion | BackendError] = []
        for start in range(0, len(requests), GPU_CHUNK):
            answers += backend.complete_batch(requests[start : start + GPU_CHUNK])
            if progress:
                progress(len(answers), len(requests))
        return answers
    return asyncio.run(_ask_all(backend, requests, endpoint.concurrency, progress))


async def _ask_all(backend, requests, concurrency: int, progress) -> list:
    gate = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def ask(request: ChatRequest) -> Completion | BackendError:
        nonlocal done
        async with gate:
            try:
                return await backend.acomplete(request)
            except BackendError as error:
                return error
            finally:
                done += 1
                if progress:
                    progress(done, len(requests))

    try:
        return await asyncio.gather(*(ask(r) for r in requests))
    finally:
        await backend.aclose()


def evaluation_run(
    *,
    campaign: Campaign,
    split: str,
    endpoint: Endpoint,
    pipeline: str = EvaluationRun.Pipeline.DIRECT,
    accept: dict[str, float] | None = None,
    parameters: dict | None = None,
    bertscore: BertScoreModel | None = None,
    price_per_million: tuple[float, float] | None = None,
    created_by=None,
    progress: Progress | None = None,
) -> EvaluationRun:
    """Ask, score and store one evaluation run (see the module docstring); returns it done.

    `price_per_million` is (prompt, completion) in any currency per million tokens, for the cost.
    A run that fails after it started is stored as failed with the error, and the error raised.
    """
    if pipeline not in EvaluationRun.Pipeline.values:
        raise ApplicationError(
            f"unknown pipeline {pipeline!r}; pipelines: {', '.join(EvaluationRun.Pipeline.values)}",
            field="pipeline",
        )
    accept = dict(DEFAULT_ACCEPT if accept is None else accept)
    parameters = {**DEFAULT_PARAMETERS, **(parameters or {})}
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
        created_by=created_by,
    )
    try:
        answers = answers_generate(
            endpoint=endpoint, questions=questions, parameters=parameters, progress=progress
        )
        scored, stored = [], []
        prompt_tokens = completion_tokens = 0
        for question, answer in zip(questions, answers, strict=True):
            failed = isinstance(answer, BackendError) or not answer.text.strip()
            text = "" if isinstance(answer, BackendError) else answer.text.strip()
            if not isinstance(answer, BackendError):
                prompt_tokens += answer.prompt_tokens
                completion_tokens += answer.completion_tokens
            scored.append(ScoredAnswer(question.kind, text, question.references, failed))
            stored.append(
                {
                    "post": question.post,
                    "kind": question.kind,
                    "text": text,
                    "error": str(answer) if isinstance(answer, BackendError) else "",
                }
            )
        scores = scores_of(scored, bertscore=bertscore)
    except Exception as error:  # recorded on the run for its page, then raised
        EvaluationRun.objects.filter(pk=run.pk).update(
            status=EvaluationRun.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        raise
    cost = None
    if price_per_million is not None:
        cost = (
            prompt_tokens * price_per_million[0] + completion_tokens * price_per_million[1]
        ) / 1e6
    with transaction.atomic():
        EvaluationRun.objects.filter(pk=run.pk).update(
            status=EvaluationRun.Status.DONE,
            scores=scores,
            answers=stored,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            manifest=_manifest(
                campaign, split, endpoint, pipeline, accept, parameters, bertscore, questions
            ),
            finished_at=timezone.now(),
        )
    run.refresh_from_db()
    return run


def _manifest(campaign, split, endpoint, pipeline, accept, parameters, bertscore, questions):
    return {
        "dataset": {"id": campaign.dataset_id, "name": campaign.dataset.name},
        "split": split,
        "references": {
            "campaign": campaign.name,
            "accept_min_mean": accept,
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
        "pipeline": pipeline,
        "prompt": "sft-chat: evaluation.exports.training.chat_prompt",
        "parameters": parameters,
        "metrics": {
            "rouge_l": "rouge-score rougeL F-measure, stemmed, closest reference",
            "bleu": "sacrebleu corpus BLEU, references as streams",
            "bertscore": None
            if bertscore is None
            else {"model_path": bertscore.path, "num_layers": bertscore.num_layers},
        },
        "distillery": distillery_version(),
    }
