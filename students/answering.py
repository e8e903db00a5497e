"""The answers of an evaluation run, from either pipeline.

`direct`: each (post, kind) is asked once with the student's single prompt (the `sft-chat`
record's system and user messages): in chunks of `GPU_CHUNK` on a local model, concurrently (the
endpoint's concurrency) on an API. `miko`: the teacher's staged pipeline runs as a batch of the
generation app on only the posts asked about (`batch_launch(post_ids=...)`), and the knowledge
items it produced for a (post, kind) are its answers: every one of them is scored against that
(post, kind)'s references. A (post, kind) without an item (its post failed, or the pipeline gave
no item of that kind) is one failed answer.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from config.errors import ApplicationError
from generation.backends import BackendError, ChatRequest, Completion, backend_for
from generation.models import Batch, Endpoint, KnowledgeItem, StageResult
from generation.runner.outcomes import plain_error
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch

Progress = Callable[[int, int], None]  # (done, to do): answers, or posts for a staged pipeline

GPU_CHUNK = 16


@dataclass(frozen=True)
class Prompt:
    """One (post, kind) to answer, with its prompt and references."""

    post: str  # external id
    post_id: int
    kind: str
    messages: list[dict]
    references: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    question: Prompt
    text: str  # "" when it failed
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error) or not self.text


@dataclass
class Answers:
    answers: list[Answer]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    batch: Batch | None = None


def direct_answers(
    *, endpoint: Endpoint, questions: list[Prompt], parameters: dict, progress: Progress | None
) -> Answers:
    """One answer a question, with the student's prompt."""
    replies = answers_generate(
        endpoint=endpoint, questions=questions, parameters=parameters, progress=progress
    )
    answers = Answers([])
    for question, reply in zip(questions, replies, strict=True):
        if isinstance(reply, BackendError):
            answers.answers.append(Answer(question, "", str(reply) or "the model call failed"))
            continue
        answers.prompt_tokens += reply.prompt_tokens
        answers.completion_tokens += reply.completion_tokens
        answers.answers.append(Answer(question, reply.text.strip()))
    return answers


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


def miko_answers(
    *,
    dataset,
    endpoint: Endpoint,
    questions: list[Prompt],
    parameters: dict,
    launched_by,
    progress: Progress | None,
    on_batch: Callable[[Batch], None] | None = None,
) -> Answers:
    """The teacher's staged pipeline on the questions' posts, run here to its end; its items are
    the answers (see the module docstring). `on_batch` hears of the batch once it exists."""
    post_ids = sorted({q.post_id for q in questions})
    try:
        batch = batch_launch(
            dataset=dataset,
            pipeline="miko",
            endpoint=endpoint,
            parameters=parameters or None,
            post_ids=post_ids,
            launched_by=launched_by,
            enqueue=False,
        )
    except ValidationError as error:
        raise ApplicationError("; ".join(error.messages)) from None
    if on_batch:
        on_batch(batch)
    total = batch.posts_total

    def posts_finished(counters) -> None:
        if progress:
            progress(counters.posts_done + counters.posts_failed, total)

    batch = batch_execute(batch_id=batch.pk, on_progress=posts_finished)
    if batch.status not in (Batch.Status.DONE, Batch.Status.FAILED):
        raise ApplicationError(f"its batch {batch.pk} was {batch.status} before it finished")
    items: dict[tuple[int, str], list[str]] = defaultdict(list)
    rows = (
        KnowledgeItem.objects.filter(batch_links__batch=batch, post_id__in=post_ids)
        .order_by("post_id", "position", "id")
        .values_list("post_id", "kind", "text")
    )
    for post_id, kind, text in rows:
        items[(post_id, kind)].append(text.strip())
    failures = {
        post_id: f"{stage}: {plain_error(error)}"
        for post_id, stage, error in StageResult.objects.filter(
            batch=batch, status=StageResult.Status.FAILED
        )
        .order_by("id")
        .values_list("post_id", "stage", "error")
    }
    answers = Answers(
        [],
        prompt_tokens=batch.prompt_tokens,
        completion_tokens=batch.completion_tokens,
        batch=batch,
    )
    for question in questions:
        texts = items.get((question.post_id, question.kind))
        if texts:
            answers.answers += [Answer(question, text) for text in texts]
        else:
            error = failures.get(question.post_id) or f"the pipeline gave no {question.kind} item"
            answers.answers.append(Answer(question, "", error))
    return answers
