"""Batches: launch, pause, resume, cancel and retry the failed posts.

`batch_actions` says which actions a batch allows now; pages and the API offer only those, and the
services refuse the others with a `Conflict` (409) that says why. Every status change is one
conditional UPDATE (`WHERE status IN (...)`), so two clicks, a click and a runner, or two API calls
can never take a batch through a transition that is not allowed. Bad launch input is a Django
`ValidationError` (400). The runner (`generation.runner`) notices a pause or a cancel at its next
heartbeat.
"""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.errors import Conflict
from generation.limits import number_check
from generation.models import Batch, Dataset, Endpoint, StageResult
from generation.pipelines.base import UnknownTemplateVariant, all_pipelines, get_pipeline
from generation.runner.lease import CLOCK_SKEW_SECONDS, lease_seconds
from generation.runner.run import stage_counters
from generation.services.endpoints import sampling_parameters_clean

S = Batch.Status
ACTIONS = ("pause", "resume", "cancel", "retry-failed")


def batch_runner_alive(batch: Batch) -> bool:
    """Whether a runner reported within a lease (and the clocks' skew): a live one is working."""
    if not batch.runner or batch.heartbeat_at is None:
        return False
    stale = timezone.now() - timedelta(seconds=lease_seconds() + CLOCK_SKEW_SECONDS)
    return batch.heartbeat_at >= stale


def _has_work_left() -> Q:
    return Q(posts_total__gt=F("posts_done") + F("posts_failed"))


def _has_partial(batch: Batch) -> bool:
    return any(counts.get("partial", 0) for counts in batch.stage_progress.values())


def batch_actions(batch: Batch) -> list[str]:
    """The actions this batch allows now, in the order pages show them.

    pause: queued or running. resume: paused; failed with posts left to do (a token budget, an
    error); running with no live runner (its worker died). cancel: queued, running or paused.
    retry-failed: done, failed or paused, with failed posts or partial answers. An imported batch
    allows none.
    """
    if batch.imported:
        return []
    allowed = set()
    if batch.status in (S.QUEUED, S.RUNNING):
        allowed |= {"pause", "cancel"}
    if batch.status == S.PAUSED:
        allowed |= {"resume", "cancel"}
    if batch.status == S.FAILED and batch.posts_pending:
        allowed.add("resume")
    if batch.status == S.RUNNING and not batch_runner_alive(batch):
        allowed.add("resume")
    if batch.status in (S.DONE, S.FAILED, S.PAUSED) and (batch.posts_failed or _has_partial(batch)):
        allowed.add("retry-failed")
    return [action for action in ACTIONS if action in allowed]


def _enqueue(batch_id: int, *, retry_failed: bool = False) -> None:
    from generation.tasks import batch_execute

    transaction.on_commit(lambda: batch_execute.delay(batch_id=batch_id, retry_failed=retry_failed))


def pipeline_stage_names(pipeline: str) -> list[str]:
    if pipeline not in all_pipelines():
        raise ValidationError({"pipeline": f"Unknown pipeline {pipeline!r}."})
    return [stage.name for stage in get_pipeline(pipeline).stages]


@transaction.atomic
def batch_launch(
    *,
    dataset: Dataset,
    pipeline: str,
    endpoint: Endpoint,
    launched_by: Any = None,
    stage_endpoints: dict[str, Endpoint] | None = None,
    limit: int | None = None,
    parameters: dict[str, Any] | None = None,
    token_budget: int | None = None,
    post_ids: list[int] | None = None,
    enqueue: bool = True,
) -> Batch:
    """Create a queued batch and hand it to a worker once the transaction commits.

    `post_ids` restricts it to those posts of the dataset (an evaluation run's split), None to
    every post. With `enqueue=False` the caller runs it itself (`generate --wait`).
    """
    stages = pipeline_stage_names(pipeline)
    stage_endpoints = stage_endpoints or {}
    unknown = set(stage_endpoints) - set(stages)
    if unknown:
        raise ValidationError(
            {
                "stage_endpoints": f"Pipeline {pipeline} has no stage "
                f"{', '.join(sorted(unknown))} (stages: {', '.join(stages)})."
            }
        )
    number_check(limit=limit, token_budget=token_budget)
    parameters = batch_parameters_clean(pipeline=pipeline, parameters=parameters)
    posts = dataset.posts.all()
    if post_ids is not None:
        post_ids = sorted(set(post_ids))
        posts = posts.filter(pk__in=post_ids)
    total = posts.count()
    if post_ids is not None and total != len(post_ids):
        raise ValidationError(
            {"post_ids": f"{len(post_ids) - total} of the posts are not in dataset {dataset.name}."}
        )
    if limit is not None:
        total = min(total, limit)
    if total == 0:
        if post_ids is not None:
            raise ValidationError(
                {"post_ids": "No posts chosen: a batch runs on one post or more."}
            )
        raise ValidationError({"dataset": f"Dataset {dataset.name} has no posts."})
    batch = Batch.objects.create(
        dataset=dataset,
        pipeline=pipeline,
        endpoint=endpoint,
        stage_endpoints={
            stage: ep.pk for stage, ep in stage_endpoints.items() if ep.pk != endpoint.pk
        },
        parameters=parameters,
        limit=limit,
        post_ids=post_ids,
        token_budget=token_budget,
        launched_by=launched_by,
        posts_total=total,
        stage_progress={stage: stage_counters() for stage in stages},
    )
    if enqueue:
        _enqueue(batch.pk)
    return batch


def batch_parameters_clean(*, pipeline: str, parameters: Any) -> dict[str, Any]:
    """A batch's parameters: sampling parameters for every stage, overrides per stage under
    `stages` ({stage: {...}}), and the prompt `template_variant` (a name, or {stage: name})."""
    if parameters in (None, ""):
        return {}
    if not isinstance(parameters, dict):
        raise ValidationError({"parameters": "Sampling parameters must be a JSON object."})
    parameters = dict(parameters)
    overrides = parameters.pop("stages", None)
    variant = parameters.pop("template_variant", None)
    cleaned = sampling_parameters_clean(parameters)
    definition = get_pipeline(pipeline)
    if overrides not in (None, {}):
        names = [stage.name for stage in definition.stages]
        if not isinstance(overrides, dict) or set(overrides) - set(names):
            raise ValidationError(
                {
                    "parameters": f"'stages' must map stages of {pipeline} ({', '.join(names)}) "
                    "to their sampling parameters."
                }  # fmt: skip
            )
        cleaned["stages"] = {
            stage: sampling_parameters_clean(values) for stage, values in overrides.items()
        }
    if variant not in (None, ""):
        try:
            for stage in definition.stages:
                definition.stage_variant(stage, variant)
        except UnknownTemplateVariant as error:
            raise ValidationError({"parameters": str(error)}) from None
        cleaned["template_variant"] = variant
    return cleaned


def _transition(
    batch: Batch, *, allowed: set[str], action: str, condition: Q | None = None, **fields: Any
) -> Batch:
    rows = Batch.objects.filter(pk=batch.pk, status__in=allowed)
    changed = rows.filter(condition or Q()).update(**fields)
    batch.refresh_from_db()
    if not changed:
        raise Conflict(_refusal(batch, action))
    return batch


def _refusal(batch: Batch, action: str) -> str:
    """Why `action` is not allowed now, in words a person can act on."""
    status = batch.status
    if action == "resumed":
        if status == S.RUNNING:
            return (
                f"Batch {batch.pk} is running: its worker reported less than "
                f"{lease_seconds() + CLOCK_SKEW_SECONDS:g} s ago. Resume is for a batch whose "
                "worker stopped reporting."
            )
        if status == S.QUEUED:
            return f"Batch {batch.pk} is queued: it starts as soon as a worker is free."
        if status in (S.DONE, S.FAILED):
            return (
                f"Batch {batch.pk} is {status} with no posts left to do; "
                "retry its failed posts instead."
            )
    return f"A {status} batch cannot be {action}."


def batch_pause(*, batch: Batch) -> Batch:
    """Running calls finish and are stored; no new call starts until the batch is resumed."""
    return _transition(batch, allowed={S.QUEUED, S.RUNNING}, action="paused", status=S.PAUSED)


@transaction.atomic
def batch_resume(*, batch: Batch) -> Batch:
    """Run the missing work of a paused batch, of a failed one with posts left to do, or of a
    running one whose worker died (no heartbeat for a lease). A running batch whose runner is
    alive is refused; should it die in between, the new task waits its lease out (see
    `generation.runner.lease.batch_claim`)."""
    batch.refresh_from_db()
    if batch.status == S.RUNNING:
        if "resume" not in batch_actions(batch):
            raise Conflict(_refusal(batch, "resumed"))
    else:
        batch = _transition(
            batch,
            allowed={S.PAUSED, S.FAILED},
            action="resumed",
            condition=Q(status=S.PAUSED) | _has_work_left(),
            status=S.QUEUED,
            finished_at=None,
        )
    _enqueue(batch.pk)
    return batch


def batch_cancel(*, batch: Batch) -> Batch:
    return _transition(
        batch,
        allowed={S.QUEUED, S.RUNNING, S.PAUSED},
        action="cancelled",
        status=S.CANCELLED,
        finished_at=timezone.now(),
    )


@transaction.atomic
def batch_retry_failed(*, batch: Batch) -> Batch:
    """Call the models again for the failed stages of the failed posts, and only those; and ask
    again for the slots that partial answers left out (their other slots are kept)."""
    if batch.imported:
        raise Conflict("An imported batch has nothing to retry.")
    failed = Batch.objects.filter(pk=batch.pk, posts_failed__gt=0).exists()
    partial = StageResult.objects.filter(batch=batch, status=StageResult.Status.PARTIAL).exists()
    if not failed and not partial:
        raise Conflict("This batch has no failed posts.")
    batch = _transition(
        batch,
        allowed={S.DONE, S.FAILED, S.PAUSED},
        action="retried",
        status=S.QUEUED,
        finished_at=None,
        error="",
    )
    # Released from the batch, the failures are due again in any run of it (kept until then:
    # a retry updates them in place), so a lost or re-sent task still retries them.
    StageResult.objects.filter(batch=batch, status=StageResult.Status.FAILED).update(batch=None)
    _enqueue(batch.pk, retry_failed=True)
    return batch


def batches_resume_orphaned() -> list[int]:
    """Send every queued or running batch to the workers again; returns their ids.

    Called when a worker starts: a batch whose worker was killed (its task unacknowledged) or
    whose message the broker lost then finishes without anyone pressing resume. A batch whose
    runner is alive keeps it: the extra task finds the lease held and ends.
    """
    ids = list(
        Batch.objects.filter(status__in=[S.QUEUED, S.RUNNING], imported=False).values_list(
            "pk", flat=True
        )
    )
    for batch_id in ids:
        _enqueue(batch_id)
    return ids
