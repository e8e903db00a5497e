"""Batches through the API, the pages and the `generate` command; permissions; transitions."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.models import Batch, KnowledgeItem
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch
from tests.factories import fake_endpoint, make_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def test_api_launches_a_batch_and_enqueues_it_after_commit(
    admin_api, fake_server, django_capture_on_commit_callbacks
) -> None:
    make_posts("miko", 3)
    fake_endpoint(fake_server)
    fake_endpoint(fake_server, name="vision")
    payload = {
        "dataset": "miko",
        "pipeline": "miko",
        "endpoint": "fake",
        "stage_endpoints": {"describe_image": "vision"},
        "limit": 2,
        "parameters": {"temperature": 0.3, "max_tokens": 300},
        "token_budget": 100000,
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_api.post("/api/batches/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["progress"]["posts_total"] == 2
    assert len(callbacks) == 1  # the task is sent once the batch is committed
    batch = Batch.objects.get(pk=body["id"])
    assert batch.stage_endpoints == {"describe_image": batch.stage_endpoints["describe_image"]}
    assert batch.launched_by.username == "ada"

    batch_execute(batch_id=batch.pk)
    body = admin_api.get(f"/api/batches/{batch.pk}/").json()
    assert body["status"] == "done"
    progress = body["progress"]
    assert (progress["posts_done"], progress["posts_failed"], progress["posts_pending"]) == (
        2,
        0,
        0,
    )
    stages = {stage["stage"]: stage for stage in progress["stages"]}
    assert stages["describe_image"]["endpoint"] == "vision" and stages["key_info"]["done"] == 2
    assert progress["prompt_tokens"] > 0 and progress["calls"] == 6
    assert admin_api.get("/api/batches/").json()["results"][0]["id"] == batch.pk


@pytest.mark.parametrize(
    "change, field",
    [
        ({"pipeline": "nope"}, "pipeline"),
        ({"stage_endpoints": {"nope": "fake"}}, "stage_endpoints"),
        ({"parameters": {"temperature": "hot"}}, "parameters"),
        ({"parameters": {"timeout": 3}}, "parameters"),
        ({"limit": 0}, "limit"),
        ({"endpoint": "missing"}, "endpoint"),
        ({"dataset": "empty"}, "dataset"),
    ],
)
def test_api_refuses_bad_launches(admin_api, fake_server, change, field) -> None:
    make_posts("miko", 2)
    make_posts("empty", 0)
    fake_endpoint(fake_server)
    payload = {"dataset": "miko", "pipeline": "miko", "endpoint": "fake", **change}
    response = admin_api.post("/api/batches/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Batch.objects.exists()


def test_api_pauses_resumes_cancels_and_retries_with_guarded_transitions(
    admin_api, fake_server, django_capture_on_commit_callbacks
) -> None:
    dataset = make_posts("miko", 3)
    batch = batch_launch(
        dataset=dataset, pipeline="miko", endpoint=fake_endpoint(fake_server), enqueue=False
    )
    url = f"/api/batches/{batch.pk}"
    assert admin_api.post(f"{url}/pause/").json()["status"] == "paused"
    assert admin_api.post(f"{url}/pause/").status_code == 409
    with django_capture_on_commit_callbacks() as callbacks:
        assert admin_api.post(f"{url}/resume/").json()["status"] == "queued"
    assert len(callbacks) == 1
    assert admin_api.post(f"{url}/retry-failed/").status_code == 409  # nothing failed
    fake_server.fail_next("bad_request", 1)
    batch_execute(batch_id=batch.pk)
    assert admin_api.get(f"{url}/").json()["progress"]["posts_failed"] == 1
    assert admin_api.post(f"{url}/cancel/").status_code == 409  # done: nothing to cancel
    response = admin_api.post(f"{url}/retry-failed/")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    batch_execute(batch_id=batch.pk)  # as a re-sent task would: the retry is in the database
    assert admin_api.get(f"{url}/").json()["progress"]["posts_done"] == 3
    other = batch_launch(
        dataset=dataset, pipeline="miko", endpoint=batch.endpoint, limit=1, enqueue=False
    )
    assert admin_api.post(f"/api/batches/{other.pk}/cancel/").json()["status"] == "cancelled"
    assert admin_api.post(f"/api/batches/{other.pk}/resume/").status_code == 409
    assert admin_api.post("/api/batches/999999/pause/").status_code == 404


def test_pages_launch_watch_and_control_a_batch(admin_client, fake_server) -> None:
    make_posts("miko", 3)
    fake_endpoint(fake_server)
    fake_endpoint(fake_server, name="vision")
    form = admin_client.get(reverse("generation:batch-new"))
    assert form.status_code == 200 and "stage_miko_describe_image" in form.content.decode()
    response = admin_client.post(
        reverse("generation:batch-new"),
        {
            "dataset": "miko",
            "pipeline": "miko",
            "endpoint": "fake",
            "stage_miko_describe_image": "vision",
            "temperature": "0.2",
            "max_tokens": "256",
            "token_budget": "50000",
        },
    )
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert response["Location"] == reverse("generation:batch-detail", args=[batch.pk])
    assert batch.parameters == {"temperature": 0.2, "max_tokens": 256}
    assert batch.token_budget == 50000 and "describe_image" in batch.stage_endpoints

    page = admin_client.get(response["Location"]).content.decode()
    assert "hx-get" in page and "Pause" in page  # queued: the page polls
    pause_url = reverse("generation:batch-action", args=[batch.pk, "pause"])
    partial = admin_client.post(pause_url, headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "paused" in partial.content.decode()
    assert "<html" not in partial.content.decode()
    again = admin_client.post(pause_url, headers={"HX-Request": "true"})
    # Refused, and said in the partial htmx swaps in (it swaps 2xx answers only).
    assert again.status_code == 200 and "cannot be paused" in again.content.decode()
    assert 'role="alert"' in again.content.decode()
    resume = admin_client.post(reverse("generation:batch-action", args=[batch.pk, "resume"]))
    assert resume.status_code == 302
    batch_execute(batch_id=batch.pk)
    progress = admin_client.get(reverse("generation:batch-progress", args=[batch.pk]))
    text = progress.content.decode()
    assert 'id="batch-status">done' in text and "hx-get" not in text  # finished: polling stops
    assert 'id="posts-done">3' in text
    listing = admin_client.get(reverse("generation:batch-list")).content.decode()
    assert f'href="/batches/{batch.pk}/"' in listing


def test_launch_page_shows_errors(admin_client, fake_server) -> None:
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    response = admin_client.post(
        reverse("generation:batch-new"),
        {"dataset": "miko", "pipeline": "miko", "endpoint": "fake", "limit": "0"},
    )
    assert response.status_code == 400 and not Batch.objects.exists()


def test_annotators_can_neither_launch_nor_see_batches(
    annotator_client, annotator_api, fake_server
) -> None:
    dataset = make_posts("miko", 1)
    batch = batch_launch(
        dataset=dataset, pipeline="miko", endpoint=fake_endpoint(fake_server), enqueue=False
    )
    for url in (
        reverse("generation:batch-list"),
        reverse("generation:batch-new"),
        reverse("generation:batch-detail", args=[batch.pk]),
        reverse("generation:batch-progress", args=[batch.pk]),
    ):
        assert annotator_client.get(url).status_code == 403
    launch = {"dataset": "miko", "pipeline": "miko", "endpoint": "fake"}
    assert annotator_client.post(reverse("generation:batch-new"), launch).status_code == 403
    cancel = reverse("generation:batch-action", args=[batch.pk, "cancel"])
    assert annotator_client.post(cancel).status_code == 403
    assert annotator_api.get("/api/batches/").status_code == 403
    assert annotator_api.get(f"/api/batches/{batch.pk}/").status_code == 403
    assert annotator_api.post("/api/batches/", launch, format="json").status_code == 403
    assert annotator_api.post(f"/api/batches/{batch.pk}/cancel/").status_code == 403
    batch.refresh_from_db()
    assert batch.status == "queued" and Batch.objects.count() == 1


def test_generate_command_queues_or_runs_with_a_progress_bar(fake_server, capsys) -> None:
    make_posts("miko", 4)
    fake_endpoint(fake_server)
    fake_endpoint(fake_server, name="vision")
    call_command("generate", "--dataset", "miko", "--pipeline", "miko", "--endpoint", "fake")
    queued = Batch.objects.get()
    assert queued.status == "queued" and f"Batch {queued.pk} queued" in capsys.readouterr().out
    call_command(
        "generate",
        "--dataset",
        "miko",
        "--pipeline",
        "miko",
        "--endpoint",
        "fake",
        "--stage-endpoint",
        "describe_image=vision",
        "--limit",
        "3",
        "--wait",
    )
    out, err = capsys.readouterr()
    batch = Batch.objects.exclude(pk=queued.pk).get()
    assert batch.status == "done" and batch.posts_done == 3
    assert f"Batch {batch.pk} done: 3 posts done" in out
    assert "3/3" in err  # the tqdm bar
    assert KnowledgeItem.objects.filter(batch=batch).count() == 30


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "nope", "--pipeline", "miko", "--endpoint", "fake"], "No dataset"),
        (["--dataset", "miko", "--pipeline", "miko", "--endpoint", "nope"], "No endpoint"),
        (["--dataset", "miko", "--pipeline", "nope", "--endpoint", "fake"], "Unknown pipeline"),
        (
            [
                "--dataset",
                "miko",
                "--pipeline",
                "miko",
                "--endpoint",
                "fake",
                "--stage-endpoint",
                "x",
            ],
            "STAGE=NAME",
        ),
        (
            [
                "--dataset",
                "miko",
                "--pipeline",
                "miko",
                "--endpoint",
                "fake",
                "--stage-endpoint",
                "x=fake",
            ],
            "no stage x",
        ),
        (
            ["--dataset", "miko", "--pipeline", "miko", "--endpoint", "fake", "--limit", "0"],
            "limit",
        ),
    ],
)
def test_generate_command_refuses_bad_input(fake_server, args, message) -> None:
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    with pytest.raises(CommandError, match=message):
        call_command("generate", *args)
    assert not Batch.objects.exists()


# --- issue 13, point 4: numbers too big for the database are a clear error, never a 500 ---------

HUGE = 10**30


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("limit", HUGE, "less than or equal to 1000000000"),
        ("token_budget", HUGE, "less than or equal to 1000000000000000"),
        ("limit", str(HUGE), "less than or equal to"),
        ("token_budget", -HUGE, "greater than or equal to 1"),
    ],
)
def test_api_refuses_numbers_out_of_bounds(admin_api, fake_server, field, value, message) -> None:
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    payload = {"dataset": "miko", "pipeline": "miko", "endpoint": "fake", field: value}
    response = admin_api.post("/api/batches/", payload, format="json")
    assert response.status_code == 400
    assert message in response.json()[field][0]
    assert not Batch.objects.exists()


@pytest.mark.parametrize("field", ["limit", "token_budget"])
def test_launch_page_refuses_numbers_out_of_bounds(admin_client, fake_server, field) -> None:
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    response = admin_client.post(
        reverse("generation:batch-new"),
        {"dataset": "miko", "pipeline": "miko", "endpoint": "fake", field: str(HUGE)},
    )
    assert response.status_code == 400 and not Batch.objects.exists()
    assert "less than or equal to" in response.context["form"].errors[field][0]


@pytest.mark.parametrize("option, message", [("--limit", "limit"), ("--token-budget", "budget")])
def test_generate_command_refuses_numbers_out_of_bounds(fake_server, option, message) -> None:
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    with pytest.raises(CommandError, match=f"{message}.*at most"):
        call_command(
            "generate", "--dataset=miko", "--pipeline=miko", "--endpoint=fake", option, str(HUGE)
        )
    assert not Batch.objects.exists()


def test_the_service_refuses_numbers_out_of_bounds(fake_server) -> None:
    dataset = make_posts("miko", 1)
    endpoint = fake_endpoint(fake_server)
    with pytest.raises(ValidationError) as error:
        batch_launch(
            dataset=dataset,
            pipeline="miko",
            endpoint=endpoint,
            limit=HUGE,
            token_budget=HUGE,
            enqueue=False,
        )
    assert set(error.value.message_dict) == {"limit", "token_budget"}


def test_ids_too_big_for_the_database_are_404(admin_api, admin_client) -> None:
    for url in (f"/api/batches/{HUGE}/", f"/api/batches/{HUGE}/pause/", f"/api/endpoints/{HUGE}/"):
        assert admin_api.get(url).status_code == 404
        assert admin_api.post(url).status_code in (404, 405)
    for url in (f"/batches/{HUGE}/", f"/batches/{HUGE}/progress/", f"/endpoints/{HUGE}/edit/"):
        assert admin_client.get(url).status_code == 404
    assert admin_client.get(f"/batches/{2**63 - 1}/").status_code == 404  # the largest id: a miss
