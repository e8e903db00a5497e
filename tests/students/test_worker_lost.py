"""A worker that dies mid-run: evaluation runs and student trainings hold a lease (a heartbeat
from a thread of their own), and the recoveries registered in StudentsConfig.ready run a dead
worker's evaluation run again and fail its training, while a live one is left alone; a failed run
or training is started again from the API and its page."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app
from generation.models import Batch, Endpoint
from generation.runner.recovery import recoveries
from generation.services.batches import batch_launch
from students import tasks
from students.evaluating import (
    evaluation_run_create,
    evaluation_run_execute,
    evaluation_runs_resume_orphaned,
)
from students.leases import Heartbeat, worker_stopped_error
from students.models import EvaluationRun, StudentTraining
from students.training import student_training_fail_orphaned, student_trainings_recover_orphaned
from tests.factories import fake_endpoint

pytestmark = pytest.mark.usefixtures("fast_retries")

LONG_AGO = timedelta(hours=1)


@pytest.fixture
def eager(monkeypatch):
    """Celery tasks run in the caller, as a worker would run them."""
    monkeypatch.setattr(app.conf, "task_always_eager", True)


@pytest.fixture
def trained(monkeypatch) -> list[int]:
    """The trainings sent to the gpu queue (nothing trains here)."""
    sent: list[int] = []
    monkeypatch.setattr(tasks.gpu_student_train, "delay", sent.append)
    return sent


@pytest.fixture
def short_lease(settings):
    settings.DISTILLERY_BATCH_LEASE_SECONDS = 0.4


def left_running(model, pk: int, *, runner: str = "dead", ago: timedelta = LONG_AGO) -> None:
    """As a worker leaves a row it was running when it died (or one alive, with `ago` 0)."""
    beat = timezone.now() - ago
    model.objects.filter(pk=pk).update(
        status="running", runner=runner, heartbeat_at=beat, started_at=beat - timedelta(minutes=5)
    )


def direct_run(campaign, server, **extra) -> EvaluationRun:
    endpoint = Endpoint.objects.filter(name="teacher").first() or fake_endpoint(
        server, name="teacher"
    )
    return evaluation_run_create(
        campaign=campaign, split="test", endpoint=endpoint, enqueue=False, **extra
    )


def test_a_dead_workers_evaluation_run_is_run_again_from_the_start(
    campaign, server, eager, django_capture_on_commit_callbacks
):
    assert evaluation_runs_resume_orphaned in recoveries()  # registered by StudentsConfig.ready
    dead = direct_run(campaign, server)
    left_running(EvaluationRun, dead.pk)
    EvaluationRun.objects.filter(pk=dead.pk).update(done=3)
    lost = direct_run(campaign, server, price_per_million=(1, 1))  # queued; its message lost
    finished = direct_run(campaign, server)
    EvaluationRun.objects.filter(pk=finished.pk).update(status="failed", error="boom")

    with django_capture_on_commit_callbacks(execute=True):
        sent = evaluation_runs_resume_orphaned()
    assert sorted(sent) == sorted([dead.pk, lost.pk])
    for run in (dead, lost):
        run.refresh_from_db()
        assert run.status == "done" and (run.done, run.total) == (5, 5)
        assert run.runner == "" and run.finished_at and run.started_at > run.created_at
        assert run.scores["overall"]["answers"] == 5
    assert server.requests == 10  # every answer asked again: they are cheap
    finished.refresh_from_db()
    assert finished.status == "failed" and finished.error == "boom"


@pytest.mark.django_db(transaction=True)
def test_a_live_evaluation_run_is_left_to_its_worker(
    campaign, server, short_lease, eager, django_capture_on_commit_callbacks
):
    run = direct_run(campaign, server)
    left_running(EvaluationRun, run.pk, runner="live", ago=timedelta(0))
    # Its worker is alive: its heartbeat is renewed while the task sent again waits a lease out.
    with Heartbeat(model=EvaluationRun, pk=run.pk, token="live"):
        with django_capture_on_commit_callbacks(execute=True):
            assert evaluation_runs_resume_orphaned() == [run.pk]
        assert evaluation_run_execute(run_id=run.pk).runner == "live"  # at once, not waiting
    run.refresh_from_db()
    assert run.status == "running" and run.runner == "live" and server.requests == 0


def test_a_dead_workers_miko_run_cancels_its_batch_and_another_answers(
    campaign, fake_server, eager, django_capture_on_commit_callbacks
):
    endpoint = fake_endpoint(fake_server, name="teacher")
    run = evaluation_run_create(
        campaign=campaign, split="test", endpoint=endpoint, pipeline="miko", enqueue=False
    )
    old = batch_launch(dataset=campaign.dataset, pipeline="miko", endpoint=endpoint, enqueue=False)
    Batch.objects.filter(pk=old.pk).update(status="running")
    EvaluationRun.objects.filter(pk=run.pk).update(batch=old)
    left_running(EvaluationRun, run.pk)

    with django_capture_on_commit_callbacks(execute=True):
        evaluation_runs_resume_orphaned()
    run.refresh_from_db()
    old.refresh_from_db()
    assert run.status == "done", run.error
    assert old.status == "cancelled" and run.batch_id not in (None, old.pk)
    assert run.batch.status == "done" and run.manifest["batch"] == run.batch_id


def test_a_dead_workers_training_fails_saying_when_it_stopped(
    export, base_model, trained, eager, django_capture_on_commit_callbacks
):
    assert student_trainings_recover_orphaned in recoveries()  # registered by StudentsConfig
    dead = StudentTraining.objects.create(export=export, base_model=base_model)
    left_running(StudentTraining, dead.pk)
    stopped_at = StudentTraining.objects.get(pk=dead.pk).heartbeat_at
    lost = StudentTraining.objects.create(export=export, base_model=base_model)  # queued
    done = StudentTraining.objects.create(export=export, base_model=base_model, status="done")

    with django_capture_on_commit_callbacks(execute=True):
        sent = student_trainings_recover_orphaned()
    assert sorted(sent) == sorted([dead.pk, lost.pk])
    assert trained == [lost.pk]  # the queued one to the gpu queue again; the dead one not
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.runner == "" and dead.finished_at == stopped_at
    assert dead.error == worker_stopped_error(stopped_at)
    assert dead.error.startswith("the worker running it stopped at ")
    assert dead.error.endswith("; start it again")
    for training, status in ((lost, "queued"), (done, "done")):
        training.refresh_from_db()
        assert training.status == status and not training.error


def test_a_training_left_running_without_a_heartbeat_fails_from_when_it_started(export, base_model):
    training = StudentTraining.objects.create(export=export, base_model=base_model)
    started = timezone.now() - LONG_AGO
    StudentTraining.objects.filter(pk=training.pk).update(status="running", started_at=started)
    assert student_training_fail_orphaned(training_id=training.pk)
    training.refresh_from_db()
    assert training.status == "failed" and training.finished_at == started


@pytest.mark.django_db(transaction=True)
def test_a_live_training_is_left_to_its_worker(export, base_model, short_lease):
    training = StudentTraining.objects.create(export=export, base_model=base_model)
    left_running(StudentTraining, training.pk, runner="live", ago=timedelta(0))
    with Heartbeat(model=StudentTraining, pk=training.pk, token="live"):
        assert not student_training_fail_orphaned(training_id=training.pk)  # waits a lease out
    training.refresh_from_db()
    assert training.status == "running" and training.runner == "live" and not training.error
    queued = StudentTraining.objects.create(export=export, base_model=base_model)
    assert not student_training_fail_orphaned(training_id=queued.pk)  # never started: not failed
    assert StudentTraining.objects.get(pk=queued.pk).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_through_a_long_step(export, base_model, short_lease):
    training = StudentTraining.objects.create(export=export, base_model=base_model)
    left_running(StudentTraining, training.pk, runner="me", ago=timedelta(0))
    first = StudentTraining.objects.get(pk=training.pk).heartbeat_at
    with Heartbeat(model=StudentTraining, pk=training.pk, token="me") as heartbeat:
        time.sleep(0.5)  # one step longer than a lease
        beat = StudentTraining.objects.get(pk=training.pk).heartbeat_at
        assert beat > first and heartbeat.lost == ""
        StudentTraining.objects.filter(pk=training.pk).update(runner="other")
        time.sleep(0.25)
        assert heartbeat.lost == "lease"  # another runner took it over
    heartbeat.end(status="failed")  # not this runner's any more: nothing written
    assert StudentTraining.objects.get(pk=training.pk).status == "running"


# --- starting again -------------------------------------------------------------------------


def failed_run(campaign, server) -> EvaluationRun:
    run = direct_run(campaign, server)
    EvaluationRun.objects.filter(pk=run.pk).update(
        status="failed",
        error=worker_stopped_error(timezone.now()),
        done=2,
        finished_at=timezone.now(),
    )
    return run


def test_the_api_starts_a_failed_run_again(
    campaign, server, admin_api, eager, django_capture_on_commit_callbacks
):
    run = failed_run(campaign, server)
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(f"/api/evaluation-runs/{run.pk}/restart/")
    assert answer.status_code == 202, answer.json()
    assert answer.json()["status"] == "queued" and answer.json()["error"] == ""
    run.refresh_from_db()
    assert run.status == "done" and run.done == 5 and server.requests == 5
    again = admin_api.post(f"/api/evaluation-runs/{run.pk}/restart/")
    assert again.status_code == 409
    assert again.json() == {
        "detail": "A done evaluation run cannot be started again; only a failed one can."
    }
    assert admin_api.post("/api/evaluation-runs/999999/restart/").status_code == 404
    assert admin_api.get(f"/api/evaluation-runs/{run.pk}/restart/").status_code == 405


def test_the_api_starts_a_failed_training_again(
    export, base_model, admin_api, trained, django_capture_on_commit_callbacks
):
    training = StudentTraining.objects.create(
        export=export, base_model=base_model, status="failed", error="boom", losses=[[1, 2.0]]
    )
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(f"/api/student-trainings/{training.pk}/restart/")
    assert answer.status_code == 202, answer.json()
    assert (answer.json()["status"], answer.json()["losses"]) == ("queued", [])
    assert trained == [training.pk]
    again = admin_api.post(f"/api/student-trainings/{training.pk}/restart/")
    assert again.status_code == 409 and "A queued student training cannot" in again.json()["detail"]
    orphan = StudentTraining.objects.create(export=None, base_model=base_model, status="failed")
    refused = admin_api.post(f"/api/student-trainings/{orphan.pk}/restart/")
    assert refused.status_code == 409 and "its export was deleted" in refused.json()["detail"]
    assert StudentTraining.objects.get(pk=orphan.pk).status == "failed"
    assert trained == [training.pk]  # nothing more sent


def test_annotators_may_not_start_anything_again(campaign, server, annotator_api, annotator_client):
    run = failed_run(campaign, server)
    assert annotator_api.post(f"/api/evaluation-runs/{run.pk}/restart/").status_code == 403
    assert annotator_client.post(f"/evaluation-runs/{run.pk}/restart/").status_code == 403
    assert EvaluationRun.objects.get(pk=run.pk).status == "failed"


def test_the_run_page_says_its_worker_stopped_and_starts_it_again(
    campaign, server, admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    run = direct_run(campaign, server)
    left_running(EvaluationRun, run.pk)
    page = admin_client.get(f"/evaluation-runs/{run.pk}/").content.decode()
    assert "No sign of its worker since" in page and "runs it again from the start" in page

    sent: list[int] = []
    monkeypatch.setattr(tasks.evaluation_run_execute_task, "delay", sent.append)
    EvaluationRun.objects.filter(pk=run.pk).update(status="failed", error="its worker stopped")
    page = admin_client.get(f"/evaluation-runs/{run.pk}/").content.decode()
    assert "No sign of its worker" not in page and "Start again</button>" in page
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(f"/evaluation-runs/{run.pk}/restart/", follow=True)
    assert answer.redirect_chain[-1][0] == f"/evaluation-runs/{run.pk}/"
    assert f"Evaluation run {run.pk} queued again." in answer.content.decode()
    assert EvaluationRun.objects.get(pk=run.pk).status == "queued" and sent == [run.pk]
    answer = admin_client.post(f"/evaluation-runs/{run.pk}/restart/", follow=True)
    assert "A queued evaluation run cannot be started again" in answer.content.decode()


def test_the_training_page_says_its_worker_stopped_and_starts_it_again(
    export, base_model, admin_client, trained, django_capture_on_commit_callbacks
):
    training = StudentTraining.objects.create(export=export, base_model=base_model)
    left_running(StudentTraining, training.pk)
    page = admin_client.get(f"/student-trainings/{training.pk}/").content.decode()
    assert "No sign of its worker since" in page and "marks the training failed" in page
    student_training_fail_orphaned(training_id=training.pk)
    page = admin_client.get(f"/student-trainings/{training.pk}/").content.decode()
    assert "Failed: the worker running it stopped at" in page and "Start again</button>" in page
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(f"/student-trainings/{training.pk}/restart/", follow=True)
    assert f"Student training {training.pk} queued again on the gpu queue." in (
        answer.content.decode()
    )
    assert trained == [training.pk]
    assert admin_client.get(f"/student-trainings/{training.pk}/restart/").status_code == 405
