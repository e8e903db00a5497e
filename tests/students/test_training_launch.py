"""Launching a student training from the API and from the students page (the training itself is
tested in test_student.py): good input is queued on the gpu queue, broken input refused with
nothing stored; annotators reach neither."""

import pytest

from evaluation.models import ExportJob
from students import tasks
from students.models import StudentTraining
from students.training import MAX_STEPS

TRAININGS = "/api/student-trainings/"


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The trainings sent to the gpu queue (nothing trains here)."""
    sent: list[int] = []
    monkeypatch.setattr(tasks.gpu_student_train, "delay", sent.append)
    return sent


def test_the_api_queues_a_training_and_shows_it(
    export, base_model, admin_api, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(
            TRAININGS, {"export": export.pk, "base_model": base_model, "max_steps": 3}, "json"
        )
    assert answer.status_code == 201, answer.json()
    queued = answer.json()
    training = StudentTraining.objects.get()
    assert sent == [training.pk]
    assert queued["status"] == "queued" and queued["export"] == export.pk
    assert (queued["method"], queued["max_steps"], queued["endpoint"]) == ("lora", 3, None)
    assert queued["page_url"] == f"/student-trainings/{training.pk}/"
    # A trained one, as the worker leaves it: status, losses and its endpoint.
    StudentTraining.objects.filter(pk=training.pk).update(status="done", losses=[[1, 2.5]])
    shown = admin_api.get(f"{TRAININGS}{training.pk}/").json()
    assert shown["status"] == "done" and shown["losses"] == [[1.0, 2.5]]
    listed = admin_api.get(TRAININGS).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == training.pk
    assert admin_api.get(f"{TRAININGS}{training.pk + 1}/").status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "field", "message"),
    [
        ({"export": 10**9}, 400, "export", "does not exist"),
        ({"export": "x"}, 400, "export", "Incorrect type"),
        ({"format": "jsonl"}, 400, "export", "a student trains on an sft-chat export"),
        ({"running": True}, 409, "export", "is running, not done"),
        ({"base_model": "/no/such/model"}, 400, "base_model", "not a model folder"),
        ({"max_steps": 0}, 400, "max_steps", "greater than or equal to 1"),
        ({"max_steps": MAX_STEPS + 1}, 400, "max_steps", "less than or equal to"),
        ({"max_steps": "many"}, 400, "max_steps", "A valid integer is required"),
        ({"method": "full"}, 400, "method", "is not a valid choice"),
    ],
)
def test_the_api_refuses_broken_input_and_stores_nothing(
    export, base_model, admin_api, sent, change, status, field, message
):
    if "format" in change:
        ExportJob.objects.filter(pk=export.pk).update(format=change.pop("format"))
    if change.pop("running", False):
        ExportJob.objects.filter(pk=export.pk).update(status="running")
    answer = admin_api.post(
        TRAININGS, {"export": export.pk, "base_model": base_model, **change}, "json"
    )
    assert answer.status_code == status
    assert message in str(answer.json()[field])
    assert not StudentTraining.objects.exists() and not sent


def test_annotators_may_not_train_students(export, base_model, annotator_api, annotator_client):
    body = {"export": export.pk, "base_model": base_model}
    assert annotator_api.post(TRAININGS, body, "json").status_code == 403
    assert annotator_api.get(TRAININGS).status_code == 403
    assert annotator_client.get("/student-trainings/").status_code == 403
    assert annotator_client.post("/student-trainings/", body).status_code == 403
    assert not StudentTraining.objects.exists()


def test_the_page_trains_a_student_from_a_done_sft_chat_export(
    export, base_model, admin_client, sent, django_capture_on_commit_callbacks
):
    detail = admin_client.get(f"/exports/{export.pk}/").content.decode()
    assert f'href="/student-trainings/?export={export.pk}"' in detail
    page = admin_client.get(f"/student-trainings/?export={export.pk}").content.decode()
    assert f'<option value="{export.pk}" selected>#{export.pk}: c, 2 records</option>' in page
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            "/student-trainings/",
            {"export": export.pk, "base_model": base_model, "method": "lora", "max_steps": "5"},
        )
    training = StudentTraining.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == f"/student-trainings/{training.pk}/"
    assert (training.max_steps, training.base_model, sent) == (5, base_model, [training.pk])
    listed = admin_client.get("/student-trainings/").content.decode()
    assert f'href="/student-trainings/{training.pk}/"' in listed and "queued" in listed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"export": "999999"}, "Select a valid choice"),
        ({"jsonl": True}, "Select a valid choice"),  # only done sft-chat exports are offered
        ({"base_model": "/no/such/model"}, "not a model folder"),
        ({"base_model": ""}, "This field is required"),
        ({"max_steps": "0"}, "greater than or equal to 1"),
        ({"max_steps": "ten"}, "Enter a whole number"),
        ({"method": "full"}, "Select a valid choice"),
    ],
)
def test_the_page_refuses_broken_input_and_stores_nothing(
    export, base_model, admin_client, sent, change, message
):
    if change.pop("jsonl", False):
        ExportJob.objects.filter(pk=export.pk).update(format="jsonl")
    form = {"export": export.pk, "base_model": base_model, "method": "lora", "max_steps": "5"}
    answer = admin_client.post("/student-trainings/", {**form, **change})
    assert answer.status_code == 400
    assert message in answer.content.decode()
    assert not StudentTraining.objects.exists() and not sent
