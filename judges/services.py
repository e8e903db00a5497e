"""Judge runs: create (and hand to a worker), cancel, retry the failed ratings, send again the
runs a dead worker left.

Bad input is an `ApplicationError` naming its field (400 in the API, a message on the page, a
CommandError in `judge`); a transition the run's status refuses is a `Conflict` (409). Status
changes are conditional UPDATEs, so two clicks never take a run through a refused transition.
"""

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign
from annotation.selectors import campaign_items
from config.errors import ApplicationError, Conflict
from generation.backends.base import sampling_parameters
from generation.limits import number_check
from generation.models import Batch, Endpoint
from generation.services.endpoints import sampling_parameters_clean
from judges.models import JudgeRun
from judges.prompt import DEFAULT_VERSION, UnknownTemplateVersion, template_text, text_hash

S = JudgeRun.Status
#: Sampling defaults of a judge, over the endpoint's and under the run's: the same answer to
#: the same question.
JUDGE_DEFAULTS: dict[str, Any] = {"temperature": 0.0}


def _enqueue(run_id: int, *, retry_failed: bool = False) -> None:
    from judges.tasks import judge_run_execute

    transaction.on_commit(lambda: judge_run_execute.delay(run_id=run_id, retry_failed=retry_failed))


def _refuse(error: ValidationError, field: str) -> ApplicationError:
    messages = error.message_dict if hasattr(error, "error_dict") else {field: error.messages}
    name, texts = next(iter(messages.items()))
    return ApplicationError("; ".join(texts), field=name)


@transaction.atomic
def judge_run_create(
    *,
    campaign: Campaign,
    endpoint: Endpoint,
    questions: Sequence[str] | None = None,
    template_version: str = DEFAULT_VERSION,
    batch: Batch | None = None,
    parameters: dict[str, Any] | None = None,
    token_budget: int | None = None,
    launched_by: Any = None,
    enqueue: bool = True,
) -> JudgeRun:
    """A queued judge run of `campaign`'s items (or those of one of its batches) on `questions`
    (default: all of the campaign's), sent to a worker once the transaction commits.

    With `enqueue=False` the caller runs it itself (`judge`).
    """
    if endpoint.backend != Endpoint.Backend.OPENAI:
        raise ApplicationError(
            f"Endpoint {endpoint.name} is a {endpoint.backend} endpoint: judges ask "
            "OpenAI-compatible endpoints (serve a local model with vLLM to judge with it).",
            field="endpoint",
        )
    known = {q.name: q for q in campaign.questions.all()}
    names = list(questions or known)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ApplicationError(
            f"Campaign {campaign.name} has no question {', '.join(map(repr, unknown))} "
            f"(its questions: {', '.join(known) or 'none'}).",
            field="questions",
        )
    try:
        text = template_text(template_version)
    except UnknownTemplateVersion as error:
        raise ApplicationError(str(error), field="template_version") from None
    if batch is not None and not campaign.batches.filter(pk=batch.pk).exists():
        raise ApplicationError(
            f"Batch {batch.pk} is not one of campaign {campaign.name}'s batches.", field="batch"
        )
    try:
        number_check(token_budget=token_budget)
        run_parameters = sampling_parameters_clean(parameters)
    except ValidationError as error:
        raise _refuse(error, "parameters") from None
    items = campaign_items(campaign=campaign)
    if batch is not None:
        items = items.filter(batch_links__batch=batch)
    if not items.exists():
        raise ApplicationError(f"Campaign {campaign.name} has no items to judge.", field="campaign")
    run = JudgeRun.objects.create(
        campaign=campaign,
        endpoint=endpoint,
        batch=batch,
        template_version=template_version,
        template_text=text,
        template_hash=text_hash(text),
        parameters={
            **sampling_parameters(endpoint.parameters),
            **JUDGE_DEFAULTS,
            **run_parameters,
        },
        structured_output=bool(endpoint.parameters.get("structured_output")),
        token_budget=token_budget,
        launched_by=launched_by,
    )
    run.questions.set([known[name] for name in names])
    if enqueue:
        _enqueue(run.pk)
    return run


def judge_run_cancel(*, run: JudgeRun) -> JudgeRun:
    """Calls in flight are abandoned at the runner's next heartbeat; stored ratings stay."""
    changed = JudgeRun.objects.filter(pk=run.pk, status__in=[S.QUEUED, S.RUNNING]).update(
        status=S.CANCELLED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    if not changed:
        raise Conflict(f"A {run.status} judge run cannot be cancelled.")
    return run


@transaction.atomic
def judge_run_retry(*, run: JudgeRun) -> JudgeRun:
    """Ask again what failed (their raw answers and errors are kept until the new answer), and
    what a cancel or a failure left unasked; what was answered is never asked again."""
    changed = JudgeRun.objects.filter(pk=run.pk, status__in=[S.DONE, S.FAILED, S.CANCELLED]).update(
        status=S.QUEUED, finished_at=None, error=""
    )
    run.refresh_from_db()
    if not changed:
        raise Conflict(f"A {run.status} judge run cannot be retried.")
    _enqueue(run.pk, retry_failed=True)
    return run


def judge_runs_resume_orphaned() -> list[int]:
    """Send every queued or running judge run to the workers again; returns their ids.

    Registered with `generation.runner.recovery` (`JudgesConfig.ready`): called when a worker
    (re)connects to the broker, so a run whose worker was killed or whose message the broker lost
    finishes without anyone pressing retry. A run whose runner is alive keeps it: the extra task
    waits its lease out, finds it renewed and ends.
    """
    ids = list(
        JudgeRun.objects.filter(status__in=[S.QUEUED, S.RUNNING]).values_list("pk", flat=True)
    )
    for run_id in ids:
        _enqueue(run_id)
    return ids
