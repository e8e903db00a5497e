"""Celery tasks of the judges app: thin wrappers that load by id and call one service."""

from celery import shared_task

from judges import runner


@shared_task(acks_late=True, reject_on_worker_lost=True)
def judge_run_execute(*, run_id: int, retry_failed: bool = False) -> None:
    """A run delivered twice, or whose runner is alive, is left to that runner (its lease)."""
    runner.judge_run_execute(run_id=run_id, retry_failed=retry_failed)
