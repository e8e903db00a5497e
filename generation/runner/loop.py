"""The caller's thread of a run on the executor: a batch's (`run`) and a judge run's (`judges`).

A run's row holds a lease (`lease`: the runner's token, its heartbeat, its status). `LeasedRun`
starts the executor (`executor`) in a loop thread and, every `DISTILLERY_FLUSH_SECONDS`, drains
what the loop reported (`handle`) and does the run's database work (`wake`), where it renews the
lease with the run's counters (`renewed`), stops the executor on a cancel, a pause or a spent
token budget, and finally ends the run (`end`). `leased_execute` claims a run for a new runner,
runs it, and fails it on an error, or, where the database connection was lost for longer than a
lease, gives the lease up for a retry of the task (`ConnectionLost`).
"""

import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from generation.runner.executor import Executor
from generation.runner.lease import (
    SYSTEM_CLOCK,
    Clock,
    ConnectionLost,
    connection_lost,
    lease_release_after_loss,
)


class LeasedRun:
    """One run of `model`'s row `pk` by the runner `token`, in the caller's thread.

    Subclasses say what an event of the loop means (`handle`) and what a wake writes (`wake`);
    `stop_reason` says why the run stopped early: "" (it did not), "budget", "lease" (another
    runner holds it), or what the run's status became ("cancelled", "paused").
    """

    def __init__(
        self, *, model: type[models.Model], pk: int, token: str, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.model = model
        self.pk = pk
        self.token = token
        self.clock = clock
        self.events: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self.executor: Executor | None = None
        self.stop_reason = ""

    def handle(self, event: tuple) -> None:
        """Take one event the loop thread reported (see `Executor`)."""
        raise NotImplementedError

    def wake(self, *, done: bool) -> None:
        """One wake's database work, after the events are taken; `done`: the loop has ended."""
        raise NotImplementedError

    def execute(self, executor: Executor, *, name: str) -> None:
        """Run `executor` in a loop thread named `name` to its end, waking a few times a second;
        what the loop raised is raised here, in the caller's thread."""
        self.executor = executor
        flush_seconds = settings.DISTILLERY_FLUSH_SECONDS
        finished = threading.Event()
        loop_errors: list[BaseException] = []

        def run_loop() -> None:
            try:
                executor.run()
            except BaseException as error:  # re-raised below, in the caller's thread
                loop_errors.append(error)
            finally:
                finished.set()

        thread = threading.Thread(target=run_loop, name=name)
        thread.start()
        try:
            # Wake a few times a second, not once a result: each wake takes the GIL from the
            # loop thread, and thousands a second would slow the window down.
            while True:
                done = finished.wait(flush_seconds)
                self._drain_events()
                self.wake(done=done)
                if done and self.events.empty():
                    break
        except BaseException:
            executor.stop(cancel=True)
            thread.join(timeout=30)
            raise
        thread.join()
        if loop_errors:
            raise loop_errors[0]

    def _drain_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self.handle(event)

    def stop(self, reason: str, *, cancel: bool) -> None:
        """Start no new call (with `cancel`, abandon the calls in flight too), for `reason`."""
        self.stop_reason = reason
        if self.executor is not None:
            self.executor.stop(cancel=cancel)

    def renewed(self, fields: dict[str, Any]) -> str:
        """Renew the lease with `fields` (the counters) while the run is running and this
        runner's: "" when it was, else why not, "lease" (another runner holds it, or the row is
        gone) or the run's status. The counters are written while the lease is this runner's."""
        fields = {**fields, "heartbeat_at": timezone.now()}
        mine = self.model.objects.filter(pk=self.pk, runner=self.token)
        if mine.filter(status="running").update(**fields):
            return ""
        mine.update(**fields)
        row = self.model.objects.filter(pk=self.pk).values_list("status", "runner").first()
        return "lease" if row is None or row[1] != self.token else row[0]

    def budget_spent(self, *, used: int, budget: int | None) -> bool:
        """Stop starting calls once `used` tokens reach the run's `budget` (None: no budget)."""
        if budget and used >= budget and not self.stop_reason:
            self.stop("budget", cancel=False)
            return True
        return False

    def end(self, *, fields: dict[str, Any], ending: dict[str, Any] | None) -> None:
        """Write the counters and give the lease up; a run still running this runner's ends as
        `ending` says (its status and error) at the same time. None: its status stays."""
        now = timezone.now()
        mine = self.model.objects.filter(pk=self.pk, runner=self.token)
        if ending:
            mine.filter(status="running").update(finished_at=now, **ending)
        mine.update(**fields, heartbeat_at=now, runner="")


def budget_error(*, used: int, budget: int) -> str:
    """The error of a run stopped by its token budget."""
    return f"Token budget exceeded: {used} of {budget} tokens used."


def leased_execute(
    *,
    model: type[models.Model],
    pk: int,
    label: str,
    claim: Callable[[str], bool],
    run: Callable[[str], None],
    failed: dict[str, Any] | None = None,
) -> bool:
    """Claim the run for a new runner (`claim(token)`) and `run(token)` it; False if the claim
    failed (the run is finished, or a live runner holds it).

    A database connection lost for longer than a lease gives the lease up, the run still
    running, and raises `ConnectionLost` (`label` names the run): the Celery task retries it. Any
    other error fails the run with its message (and `failed`'s fields) and is raised again.
    """
    token = uuid.uuid4().hex
    try:
        if not claim(token):
            return False
        run(token)
        return True
    except Exception as error:
        if connection_lost(error):
            lease_release_after_loss(model=model, pk=pk, token=token)
            raise ConnectionLost(f"{label}: the database was out of reach.") from error
        model.objects.filter(pk=pk, runner=token).update(
            status="failed",
            error=f"{type(error).__name__}: {error}",
            finished_at=timezone.now(),
            runner="",
            **(failed or {}),
        )
        raise
