"""Evaluation runs and student trainings hold the generation runner's lease while they run.

A worker takes the row for its token (`generation.runner.lease.lease_claim` for an evaluation run,
which also takes over a dead worker's; `claim_queued` for a training, which is never run twice),
renews `heartbeat_at` from a thread of its own (`Heartbeat`, with `LeasedRun.renewed`: it beats
through a long model call or training step as long as the process lives) and ends the row while
the lease is still its own (`Heartbeat.end`, with `LeasedRun.end`). A running row whose heartbeat
is older than `DISTILLERY_BATCH_LEASE_SECONDS` is a dead worker's: the recoveries registered in
`StudentsConfig.ready()` run it again (evaluation runs) or fail it (trainings).
"""

import logging
import threading
from datetime import datetime

from django.db import connection, models
from django.utils import timezone

from config.errors import Conflict
from generation.models import JobStatus
from generation.runner.lease import lease_seconds
from generation.runner.loop import LeasedRun

logger = logging.getLogger(__name__)

#: The heartbeats in a lease: a runner that misses a few is still seen alive.
BEATS_PER_LEASE = 4


def claim_queued(*, model: type[models.Model], pk: int, token: str) -> bool:
    """Take a queued row for the runner `token` (running, started now); False if it is not
    queued (another worker has it, or it ran)."""
    now = timezone.now()
    return bool(
        model.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, runner=token, heartbeat_at=now, started_at=now
        )
    )


class Heartbeat:
    """Renews the lease of `model`'s row `pk` held by `token`, `BEATS_PER_LEASE` times a lease,
    from a thread of its own while the `with` block runs. `lost` says why the lease stopped being
    this runner's ("" while it is): "lease" (another runner took the row over) or its status."""

    def __init__(self, *, model: type[models.Model], pk: int, token: str) -> None:
        self.lease = LeasedRun(model=model, pk=pk, token=token)
        self.lost = ""
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{model._meta.model_name}-{pk}", daemon=True
        )

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        interval = lease_seconds() / BEATS_PER_LEASE
        try:
            while not self._stopped.wait(interval):
                # A beat that fails (the database out of reach) is tried again at the next one;
                # the lease runs out only if they keep failing.
                try:
                    self.lost = self.lease.renewed({})
                except Exception:
                    logger.warning("heartbeat of %s not written", self._thread.name, exc_info=True)
                    connection.close()
        finally:
            connection.close()  # the thread's own connection

    def end(self, **ending) -> None:
        """End the row as `ending` says (its status and what goes with it) if it is still running
        this runner's, and give the lease up."""
        self.lease.end(fields={}, ending=ending)


def worker_stopped_error(stopped_at: datetime) -> str:
    """The error of a row whose worker died while it ran."""
    when = timezone.localtime(stopped_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"the worker running it stopped at {when}; start it again"


def worker_lost_at(job: models.Model) -> datetime | None:
    """When a running row's worker was last heard of, if that is longer ago than a lease (its
    worker is likely dead; a worker that connects will take the row over); else None."""
    if job.status != JobStatus.RUNNING or job.heartbeat_at is None:
        return None
    if (timezone.now() - job.heartbeat_at).total_seconds() <= lease_seconds():
        return None
    return job.heartbeat_at


def job_restart(job: models.Model, *, what: str, **reset) -> None:
    """A failed row queued again, with `reset`'s fields; 409 (naming `what`) unless failed."""
    changed = (
        type(job)
        .objects.filter(pk=job.pk, status=JobStatus.FAILED)
        .update(
            status=JobStatus.QUEUED,
            error="",
            runner="",
            heartbeat_at=None,
            started_at=None,
            finished_at=None,
            **reset,
        )
    )
    job.refresh_from_db()
    if not changed:
        raise Conflict(f"A {job.status} {what} cannot be started again; only a failed one can.")
