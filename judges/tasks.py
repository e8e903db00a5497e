"""Celery tasks of the judges app: thin wrappers that load by id and call one service."""

from celery import shared_task

from generation.runner.lease import RUNNER_TASK_OPTIONS
from judges import runner


@shared_task(**RUNNER_TASK_OPTIONS)
def judge_run_execute(*, run_id: int, retry_failed: bool = False) -> None:
    """A run delivered twice, or whose runner is alive, is left to that runner (its lease); a
    dead runner's lease is waited out first. Retried when the database is out of reach longer
    than a lease: the runner has given the lease up with the run still running."""
    runner.judge_run_execute(run_id=run_id, retry_failed=retry_failed, wait_for_lease=True)
