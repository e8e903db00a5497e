"""Evaluation runs in the background: queued by the API, the form or `evaluate --queue`, run by a
worker (the gpu queue for a transformers endpoint), progress written as it goes, the run's page;
broken input refused with nothing stored."""

import io

import pytest
from django.core.management import call_command
from django.db import connections

from config.celery import app
from generation.models import Endpoint
from generation.services.endpoints import endpoint_create
from students import evaluating, tasks
from students.evaluating import evaluation_run_create, evaluation_run_execute
from students.models import EvaluationRun
from tests.factories import fake_endpoint

RUNS = "/api/evaluation-runs/"


@pytest.fixture
def eager(monkeypatch):
    """Celery tasks run in the caller, as a worker would run them."""
    monkeypatch.setattr(app.conf, "task_always_eager", True)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, int]]:
    """What was sent to the queues, without running it: (task name, run id)."""
    sent = []
    for task in (tasks.evaluation_run_execute_task, tasks.gpu_evaluation_run_execute):
        monkeypatch.setattr(
            task, "delay", lambda run_id, name=task.name: sent.append((name, run_id))
        )
    return sent


def body(**change) -> dict:
    return {"dataset": "c-data", "split": "test", "endpoint": "teacher", **change}


def test_the_api_queues_a_run_and_a_worker_runs_it(
    campaign, server, admin_api, admin_client, eager, django_capture_on_commit_callbacks
):
    fake_endpoint(server, name="teacher")
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(RUNS, body(price={"prompt": 2, "completion": 10}), format="json")
    assert answer.status_code == 201, answer.json()
    queued = answer.json()
    assert queued["status"] == "queued" and (queued["done"], queued["total"]) == (0, 5)
    assert queued["campaign"] == "c" and queued["accept"] == {"plausibility": 4.0}
    assert queued["page_url"] == f"/evaluation-runs/{queued['id']}/"
    run = EvaluationRun.objects.get(pk=queued["id"])
    assert run.status == "done" and (run.done, run.total) == (5, 5)
    assert run.cost == pytest.approx((run.prompt_tokens * 2 + run.completion_tokens * 10) / 1e6)
    assert run.started_at and run.finished_at and server.requests == 5
    shown = admin_api.get(f"{RUNS}{run.pk}/").json()
    assert shown["status"] == "done" and shown["price_per_million"] == [2.0, 10.0]

    page = admin_client.get(f"/evaluation-runs/{run.pk}/").content.decode()
    assert "Status: <strong" in page and "done" in page and ">xWant</th>" in page
    assert page.index(">xWant</th>") < page.index(">open</th>") < page.index(">overall</th>")
    assert f'href="/evaluation-runs/{run.pk}/manifest.json"' in page
    partial = admin_client.get(f"/evaluation-runs/{run.pk}/", headers={"HX-Request": "true"})
    assert b"<html" not in partial.content and b"hx-get" not in partial.content  # not live


def test_a_queued_run_polls_its_page_and_is_run_once(campaign, server, admin_client, sent):
    fake_endpoint(server, name="teacher")
    out = io.StringIO()
    call_command(
        "evaluate", "--dataset", "c-data", "--split", "test", "--endpoint", "teacher",
        "--queue", stdout=out,
    )  # fmt: skip
    run = EvaluationRun.objects.get()
    assert out.getvalue().strip() == f"Evaluation run {run.pk} queued on the default queue"
    assert run.status == "queued" and server.requests == 0
    partial = admin_client.get(f"/evaluation-runs/{run.pk}/", headers={"HX-Request": "true"})
    assert b'hx-trigger="every 2s"' in partial.content and b"0 of 5 answers" in partial.content
    assert evaluation_run_execute(run_id=run.pk).status == "done"
    assert evaluation_run_execute(run_id=run.pk).status == "done"  # claimed once
    assert server.requests == 5


def test_a_transformers_endpoint_goes_to_the_gpu_queue(
    campaign, server, sent, tmp_path, django_capture_on_commit_callbacks
):
    (tmp_path / "config.json").write_text("{}")
    local = endpoint_create(
        name="local", backend=Endpoint.Backend.TRANSFORMERS, model="tiny", model_path=str(tmp_path)
    )
    api = fake_endpoint(server, name="teacher")
    with django_capture_on_commit_callbacks(execute=True):
        first = evaluation_run_create(campaign=campaign, split="test", endpoint=local)
        second = evaluation_run_create(campaign=campaign, split="test", endpoint=api)
    assert sent == [
        ("students.tasks.gpu_evaluation_run_execute", first.pk),
        ("students.tasks.evaluation_run_execute", second.pk),
    ]
    route = app.amqp.router.route({}, "students.tasks.gpu_evaluation_run_execute")
    assert route["queue"].name == "gpu"


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_as_the_answers_come(campaign, server, monkeypatch):
    """Read by the fake server while it answers: the row moves before the run is done (written
    from a thread of its own, as the answers come inside an event loop)."""
    monkeypatch.setattr(evaluating, "PROGRESS_SECONDS", 0.0)
    seen = []

    def answer(stage, request_body):
        seen.append(EvaluationRun.objects.values_list("status", "done").get())
        connections.close_all()
        return "an answer"

    server.answers = answer
    server.latency = 0.05
    endpoint = fake_endpoint(server, name="teacher", concurrency=1)
    run = evaluation_run_create(campaign=campaign, split="test", endpoint=endpoint, enqueue=False)
    run = evaluation_run_execute(run_id=run.pk)
    assert run.status == "done" and run.done == 5
    assert {status for status, _ in seen} == {"running"}
    done = [d for _, d in seen]
    assert done == sorted(done) and 0 < done[-1] < 5


def test_a_run_whose_endpoint_went_away_fails_with_the_reason(campaign, server):
    endpoint = fake_endpoint(server, name="teacher")
    run = evaluation_run_create(campaign=campaign, split="test", endpoint=endpoint, enqueue=False)
    endpoint.delete()
    run = evaluation_run_execute(run_id=run.pk)
    assert run.status == "failed" and run.error == "its endpoint was deleted before it ran"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"dataset": "nope"}, "dataset", "does not exist"),
        ({"endpoint": "nope"}, "endpoint", "does not exist"),
        ({"split": "valid"}, "split", "has no split 'valid'"),
        ({"campaign": "x"}, "campaign", "has no campaign 'x'"),
        ({"pipeline": "cotpd"}, "pipeline", "is not a valid choice"),
        ({"accept": {"fun": 3}}, "accept", "has no question fun"),
        ({"accept": {"plausibility": "high"}}, "accept", "A valid number is required"),
        ({"accept": {"plausibility": 6}}, "split", "no accepted items"),
        ({"price": {"prompt": -1, "completion": 1}}, "price", "greater than or equal to 0"),
        ({"price": {"prompt": 1}}, "price", "This field is required"),
        ({"split": None}, "split", "may not be null"),
    ],
)
def test_the_api_refuses_broken_input_and_stores_nothing(
    campaign, server, admin_api, change, field, message
):
    fake_endpoint(server, name="teacher")
    answer = admin_api.post(RUNS, body(**change), format="json")
    assert answer.status_code == 400
    assert message in str(answer.json()[field])
    assert not EvaluationRun.objects.exists() and server.requests == 0


def test_annotators_may_not_launch_runs(campaign, server, annotator_api, annotator_client):
    fake_endpoint(server, name="teacher")
    assert annotator_api.post(RUNS, body(), format="json").status_code == 403
    dataset = campaign.dataset_id
    assert annotator_client.get(f"/datasets/{dataset}/evaluation-runs/new/").status_code == 403
    form = {"split": "test", "endpoint": "teacher", "pipeline": "direct"}
    response = annotator_client.post(f"/datasets/{dataset}/evaluation-runs/new/", form)
    assert response.status_code == 403
    assert not EvaluationRun.objects.exists()


def test_the_form_queues_a_run_and_shows_its_page(
    campaign, server, admin_client, sent, django_capture_on_commit_callbacks
):
    fake_endpoint(server, name="teacher")
    url = f"/datasets/{campaign.dataset_id}/evaluation-runs/new/"
    board = admin_client.get(f"/datasets/{campaign.dataset_id}/leaderboard/").content.decode()
    assert f'action="{url}"' in board and 'id="new-evaluation"' in board
    page = admin_client.get(url).content.decode()
    assert '<option value="test">test</option>' in page and '<option value="miko">' in page
    form = {
        "split": "test", "endpoint": "teacher", "pipeline": "miko", "campaign": "c",
        "accept": "plausibility=4.5, ", "price_prompt": "1", "price_completion": "2",
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(url, form)
    run = EvaluationRun.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/evaluation-runs/{run.pk}/"
    assert run.pipeline == "miko" and run.status == "queued" and run.total == 2  # posts
    assert run.accept == {"plausibility": 4.5}
    assert run.price_per_million == [1.0, 2.0]
    assert sent == [("students.tasks.evaluation_run_execute", run.pk)]
    page = admin_client.get(answer["Location"]).content.decode()
    assert "0 of 2 posts" in page and "Waiting for a worker (the default queue)" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": "valid"}, "Select a valid choice"),
        ({"endpoint": "nope"}, "Select a valid choice"),
        ({"accept": "plausibility"}, "acceptance bounds are QUESTION=NUMBER"),
        ({"accept": "fun=3"}, "has no question fun"),
        ({"accept": "plausibility=6"}, "no accepted items"),
        ({"price_prompt": "1"}, "Give both prices, or neither."),
        ({"price_prompt": "-1", "price_completion": "1"}, "greater than or equal to 0"),
    ],
)
def test_the_form_refuses_broken_input_and_stores_nothing(
    campaign, server, admin_client, sent, change, message
):
    fake_endpoint(server, name="teacher")
    form = {"split": "test", "endpoint": "teacher", "pipeline": "direct", **change}
    answer = admin_client.post(f"/datasets/{campaign.dataset_id}/evaluation-runs/new/", form)
    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not EvaluationRun.objects.exists() and not sent
