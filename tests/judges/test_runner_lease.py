"""Judge runs hold the generation runner's lease: a dead worker's run is taken over by the task a
worker sends again, a lost database connection is ridden out, and a worker that (re)connects
sends the runs a dead one left."""

import pytest
from django.db import connection

from generation.runner.lease import ManualClock
from generation.runner.recovery import recoveries
from judges.models import JudgeRating, JudgeRun
from judges.runner import judge_run_execute
from judges.services import judge_run_create, judge_runs_resume_orphaned
from tests.factories import campaign_create, fake_endpoint, posts_with_items
from tests.helpers import backends_terminate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


class Killed(BaseException):
    """Stands in for a worker process dying: nothing after it runs, no status is written."""


@pytest.fixture
def campaign():
    campaign = campaign_create(name="judged")
    posts_with_items(campaign, posts=4, kinds=["xIntent", "xWant", "open"])
    return campaign


def create(campaign, endpoint, **extra) -> JudgeRun:
    return judge_run_create(campaign=campaign, endpoint=endpoint, enqueue=False, **extra)


def test_a_dead_runners_run_is_taken_over_by_the_task_sent_again(
    fake_server, call_log, campaign, settings
) -> None:
    settings.DISTILLERY_BATCH_LEASE_SECONDS = 0.5
    run = create(campaign, fake_endpoint(fake_server, concurrency=2))

    def die(progress: JudgeRun) -> None:
        if progress.ratings_done >= 6:
            raise Killed

    with pytest.raises(Killed):
        judge_run_execute(run_id=run.pk, on_progress=die)
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.RUNNING and run.runner  # its lease is still held
    stored = set(JudgeRating.objects.filter(run=run).values_list("call_key", flat=True))
    assert len(stored) >= 6
    # Called directly, a fresh-looking lease is left to its runner at once.
    assert judge_run_execute(run_id=run.pk).runner == run.runner
    # The task waits the dead runner's lease out (on a clock that does not wait) and finishes.
    clock = ManualClock()
    run = judge_run_execute(run_id=run.pk, wait_for_lease=True, clock=clock)
    assert clock.slept > 0
    assert run.status == JudgeRun.Status.DONE and run.ratings_done == 24 and run.runner == ""
    assert JudgeRating.objects.filter(run=run).count() == 24
    # Nothing stored was asked again; only calls lost in flight were.
    assert sum(n - 1 for n in call_log.calls.values()) <= 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_runner_whose_database_connection_drops_reconnects_and_finishes(
    fake_server, call_log, campaign
) -> None:
    run = create(campaign, fake_endpoint(fake_server, concurrency=2))
    dropped: list[int] = []

    def drop_the_connection(progress: JudgeRun) -> None:
        # Called in the runner's thread after a heartbeat: the next statement finds it gone.
        if progress.ratings_done >= 4 and not dropped:
            dropped.append(connection.connection.info.backend_pid)
            backends_terminate(dropped)

    run = judge_run_execute(run_id=run.pk, on_progress=drop_the_connection)
    assert dropped and connection.connection.info.backend_pid != dropped[0]
    assert run.status == JudgeRun.Status.DONE and (run.ratings_done, run.ratings_failed) == (24, 0)
    assert run.runner == "" and not run.error
    assert JudgeRating.objects.filter(run=run, status="ok").count() == 24
    assert call_log.repeated() == []


def test_a_worker_that_connects_sends_the_queued_and_running_runs_again(
    fake_server, campaign, eager_celery, django_capture_on_commit_callbacks
) -> None:
    assert judge_runs_resume_orphaned in recoveries()  # registered by JudgesConfig.ready
    endpoint = fake_endpoint(fake_server)
    queued = create(campaign, endpoint, questions=["plausibility"])
    # A run whose worker died before its first heartbeat: running, no runner.
    left = create(campaign, endpoint, questions=["typicality"])
    JudgeRun.objects.filter(pk=left.pk).update(status="running")
    cancelled = create(campaign, endpoint)
    JudgeRun.objects.filter(pk=cancelled.pk).update(status="cancelled")

    with django_capture_on_commit_callbacks(execute=True):
        sent = judge_runs_resume_orphaned()
    assert sorted(sent) == sorted([queued.pk, left.pk])
    for run in (queued, left):
        run.refresh_from_db()
        assert run.status == JudgeRun.Status.DONE and run.ratings_done == 12
    cancelled.refresh_from_db()
    assert cancelled.status == JudgeRun.Status.CANCELLED and cancelled.ratings_done == 0
