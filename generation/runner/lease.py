"""One runner per run: the lease, its heartbeat's clock, and riding out a lost connection.

A runner holds a run's row (a batch, or a judge run in `judges`: any model with `status`,
`runner` and `heartbeat_at`) by writing its token in `runner` and renewing `heartbeat_at` at every
flush. A heartbeat older than `DISTILLERY_BATCH_LEASE_SECONDS` is a dead runner's: another may
take the run over. Time is read from a `Clock`, so tests drive it (`ManualClock`) instead of
waiting for it.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from generation.models import Batch

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How often a claim looks again whether a held lease has run out.
CLAIM_POLL_SECONDS = 0.25
#: How far the clocks of two workers may disagree: a claim waits this much past the lease before
#: it takes a runner that stopped renewing for a live one.
CLOCK_SKEW_SECONDS = 2.0


class Clock:
    """The time a runner reads and waits on."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return timezone.now()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ManualClock(Clock):
    """A clock whose `sleep` moves time forward at once instead of waiting (for tests)."""

    def __init__(self) -> None:
        self.slept = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.slept

    def now(self) -> datetime:
        return timezone.now() + timedelta(seconds=self.slept)

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


SYSTEM_CLOCK = Clock()


def lease_seconds() -> float:
    return float(settings.DISTILLERY_BATCH_LEASE_SECONDS)


#: The statuses a runner may claim a run in (a batch's and a judge run's alike).
RUNNABLE = ("queued", "running")


def lease_claim(
    *,
    model: type[models.Model],
    pk: int,
    token: str,
    fields: Callable[[datetime], dict[str, Any]],
    wait: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> bool:
    """Take the lease of `model`'s row `pk`, queued or running, for the runner `token`: the row
    becomes running and takes `fields(now)` too. False if its lease is live or it is not runnable.

    With `wait`, a live-looking lease is waited out: a dead runner's last heartbeat is at most one
    lease old when the wait starts, so it has run out before the wait ends (one lease, the clocks'
    skew and a poll).
    """
    lease = lease_seconds()
    deadline = clock.monotonic() + lease + CLOCK_SKEW_SECONDS + CLAIM_POLL_SECONDS
    while True:
        now = clock.now()
        claimed = (
            model.objects.filter(pk=pk, status__in=RUNNABLE)
            .filter(
                Q(runner="")
                | Q(heartbeat_at__isnull=True)
                | Q(heartbeat_at__lt=now - timedelta(seconds=lease))
            )
            .update(runner=token, heartbeat_at=now, status="running", **fields(now))
        )
        if claimed:
            return True
        if not wait:
            return False
        status = model.objects.filter(pk=pk).values_list("status", flat=True).first()
        if status not in RUNNABLE:
            return False
        if clock.monotonic() > deadline:
            return False
        clock.sleep(CLAIM_POLL_SECONDS)


def batch_claim(*, batch_id: int, token: str, clock: Clock = SYSTEM_CLOCK) -> bool:
    """Take the batch's lease, waiting out a dead runner's; False if it is live or not runnable.
    A claim starts a new run of the batch (its calls per second and time left start again)."""
    return lease_claim(
        model=Batch,
        pk=batch_id,
        token=token,
        clock=clock,
        fields=lambda now: {
            "started_at": Coalesce("started_at", now),
            "finished_at": None,
            "run_started_at": now,
            "run_calls": 0,
            "run_posts_finished": 0,
            "error": "",
            "retrying": {},
        },
    )


def lease_release_after_loss(*, model: type[models.Model], pk: int, token: str) -> None:
    """After a lost connection: give the lease up, the run still running, for the next runner
    to take at once. Where the database is still out of reach, the lease runs out by itself."""
    connection.close()
    try:
        model.objects.filter(pk=pk, runner=token).update(runner="")
    except Exception as error:
        if not connection_lost(error):
            raise
        connection.close()


class ConnectionLost(Exception):
    """The database was out of reach for longer than a lease: the runner gave the run's lease
    up, the run still running, for a retry of the task to take it over."""


#: The Celery options of a task delivered again when its worker dies (acknowledged once it has
#: run): GPU chunks, upload imports, trainings. The settings make them every task's default; a
#: task whose recovery relies on them says so itself.
REDELIVERED_TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True}

#: The Celery options of a task that runs a leased run (`generation.tasks.batch_execute`,
#: `judges.tasks.judge_run_execute`, students' evaluation runs): delivered again when its worker
#: dies, and retried, with backoff, when the database stayed out of reach longer than a lease.
RUNNER_TASK_OPTIONS = {
    **REDELIVERED_TASK_OPTIONS,
    "autoretry_for": (ConnectionLost,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 10,
}

#: SQLSTATEs of a connection the server ended: class 08 (connection exception), and the server
#: shutting down or terminating the backend (57P01-57P03).
_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def connection_lost(error: BaseException, *, used: Any = None) -> bool:
    """Whether `error` means this thread's database connection was lost, not that a statement
    was refused (a lost connection fails every later statement until it is closed).

    `used` is the driver connection the failed work ran on, where known: a transaction that
    cannot roll back on a dead connection makes Django drop it and open another at once. The
    driver's own errors count too: a COPY goes to the driver's cursor, past Django's wrapper.
    """
    driver = connection.Database
    kinds = (OperationalError, InterfaceError, driver.OperationalError, driver.InterfaceError)
    if not isinstance(error, kinds) or connection.in_atomic_block:
        return False
    driver_error = error if isinstance(error, driver.Error) else error.__cause__
    if (getattr(driver_error, "sqlstate", None) or "").startswith(_LOST_STATES):
        return True
    current = connection.connection
    replaced = used is not None and current is not used
    return current is None or replaced or not connection.is_usable()


def reconnecting(action: Callable[[], T], *, clock: Clock = SYSTEM_CLOCK) -> T:
    """Run `action`, again on a new connection each time the database connection is lost, for
    up to a lease; then the error goes up. `action` must be safe to run twice."""
    deadline = clock.monotonic() + lease_seconds()
    delay = 0.05
    while True:
        used = connection.connection
        try:
            return action()
        except Exception as error:
            if not connection_lost(error, used=used):
                raise
            connection.close()  # the next statement opens a new connection
            if clock.monotonic() >= deadline:
                raise
            logger.warning("the runner lost its database connection (%s); reconnecting", error)
            clock.sleep(delay)
            delay = min(2 * delay, 1.0)
