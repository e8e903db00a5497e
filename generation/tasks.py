"""Celery tasks of the generation app: thin wrappers that load by id and call one service."""

import logging

from celery import bootsteps, shared_task

from generation.runner import gpu, run
from generation.runner.lease import REDELIVERED_TASK_OPTIONS, RUNNER_TASK_OPTIONS
from generation.services.import_jobs import import_job_run, import_jobs_recover

logger = logging.getLogger(__name__)


@shared_task(**RUNNER_TASK_OPTIONS)
def batch_execute(*, batch_id: int, retry_failed: bool = False) -> None:
    """Retried when the database is out of reach longer than a lease: the runner has given the
    lease up with the batch still running, and the retry takes it over at once."""
    run.batch_execute(
        batch_id=batch_id, retry_failed=retry_failed, dispatch_gpu_chunk=gpu_chunk_send
    )


def gpu_chunk_send(*, batch_id: int, stage: str, post_ids: list[int]) -> None:
    """How the runner sends a GPU stage's chunk: to the `gpu` queue."""
    gpu_batch_chunk_execute.delay(batch_id=batch_id, stage=stage, post_ids=post_ids)


class OrphanedWorkRecover(bootsteps.StartStopStep):
    """Whenever the worker connects to the broker, at start and again after losing it, re-send
    the batches whose worker died or whose message the broker lost (`batches_resume_orphaned`),
    fail the import jobs whose worker died (`import_jobs_recover`), and run what the apps above
    generation registered for their own runs (`generation.runner.recovery`: judge runs).

    A consumer step rather than `worker_ready`, which Celery sends once per start: a Redis that
    restarts without persistence loses the queued messages while the worker only reconnects.
    Registered on the consumer blueprint in config/celery.py.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, consumer) -> None:
        from django.db import connections

        from generation.runner.recovery import recoveries
        from generation.services.batches import batches_resume_orphaned

        # The worker must go on consuming whatever fails here; the next connection tries again.
        try:
            for recover in (batches_resume_orphaned, import_jobs_recover, *recoveries()):
                try:
                    recover()
                except Exception:
                    logger.exception("%s failed", recover.__name__)
        finally:
            connections.close_all()  # never hand a connection down to forked pool processes


@shared_task(**REDELIVERED_TASK_OPTIONS)
def gpu_batch_chunk_execute(*, batch_id: int, stage: str, post_ids: list[int]) -> None:
    """Routed to the `gpu` queue by CELERY_TASK_ROUTES (`generation.tasks.gpu_*`)."""
    gpu.batch_execute_gpu_chunk(batch_id=batch_id, stage=stage, post_ids=post_ids)


@shared_task(**REDELIVERED_TASK_OPTIONS)
def import_job_run_task(*, job_id: int) -> None:
    """An uploaded file's import; a job that already ran is left alone (see import_job_run)."""
    import_job_run(job_id=job_id)
