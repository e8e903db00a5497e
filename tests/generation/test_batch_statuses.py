"""Batch statuses that say what happened, the retrying state, and the actions each status allows:
through the runner, the services, the API, the pages' partial and `generate` (issue 14)."""

import socket
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from config.errors import Conflict
from generation.models import Batch, Endpoint
from generation.runner.run import Progress, batch_execute
from generation.services.batches import (
    batch_actions,
    batch_cancel,
    batch_launch,
    batch_pause,
    batch_resume,
    batch_retry_failed,
)
from tests.factories import fake_endpoint, make_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def closed_port_endpoint(server) -> Endpoint:
    """An endpoint on a port of 127.0.0.1 where nothing listens: every call is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = fake_endpoint(server, name="closed")
    Endpoint.objects.filter(pk=endpoint.pk).update(base_url=f"http://127.0.0.1:{port}/v1")
    endpoint.refresh_from_db()
    return endpoint


def launch(dataset, endpoint, **extra) -> Batch:
    return batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False, **extra)


def test_a_batch_whose_every_call_fails_ends_failed_with_the_last_error(
    fake_server, admin_api, admin_client
) -> None:
    dataset = make_posts("miko", 2)
    batch = batch_execute(batch_id=launch(dataset, closed_port_endpoint(fake_server)).pk)
    assert batch.status == Batch.Status.FAILED and (batch.posts_done, batch.posts_failed) == (0, 2)
    assert batch.error.startswith("every post failed (2 of 2); last error: describe_image: ")
    assert "connection to http://127.0.0.1:" in batch.error
    assert batch.status_text == f"failed: {batch.error}" and batch.retrying == {}
    # The later stages were never asked: not reached, not pending for good.
    assert batch.stage_progress["key_info"]["not_reached"] == 2

    body = admin_api.get(f"/api/batches/{batch.pk}/").json()
    assert body["status"] == "failed" and body["status_text"] == batch.status_text
    assert body["actions"] == ["retry-failed"]
    stages = {stage["stage"]: stage for stage in body["progress"]["stages"]}
    assert stages["describe_image"]["failed"] == 2
    assert (stages["key_info"]["not_reached"], stages["key_info"]["pending"]) == (2, 0)
    assert body["progress"]["percent_failed"] == 100 and body["progress"]["retrying"] is None
    assert admin_api.get("/api/batches/").json()["results"][0]["status_text"] == batch.status_text

    partial = admin_client.get(reverse("generation:batch-progress", args=[batch.pk]))
    text = partial.content.decode()
    assert "every post failed (2 of 2)" in text and "No failures" not in text
    assert text.count('class="error">BackendError: connection to') == 2  # the failures list
    assert "Create a campaign" not in text and "Resume" not in text
    listing = admin_client.get(reverse("generation:batch-list")).content.decode()
    assert "failed: every post failed (2 of 2)" in listing


def test_a_batch_with_some_failed_posts_is_done_with_failures(
    fake_server, admin_api, admin_client
) -> None:
    dataset = make_posts("miko", 3)
    fake_server.fail_next("bad_request", 1)
    batch = batch_execute(batch_id=launch(dataset, fake_endpoint(fake_server)).pk)
    assert batch.status == Batch.Status.DONE and (batch.posts_done, batch.posts_failed) == (2, 1)
    assert batch.status_text == "done with 1 failed post"
    body = admin_api.get(f"/api/batches/{batch.pk}/").json()
    assert body["status_text"] == "done with 1 failed post"
    assert body["progress"]["status_text"] == "done with 1 failed post"
    assert body["actions"] == ["retry-failed"]
    assert (body["progress"]["percent_done"], body["progress"]["percent_failed"]) == (67, 33)
    assert (
        "done with 1 failed post" in admin_client.get("/admin/generation/batch/").content.decode()
    )

    batch_retry_failed(batch=batch)
    batch = batch_execute(batch_id=batch.pk, retry_failed=True)
    assert batch.status_text == "done" and batch_actions(batch) == []
    assert all(counts["not_reached"] == 0 for counts in batch.stage_progress.values())


def test_generate_says_what_happened_in_the_same_words(fake_server, capsys) -> None:
    make_posts("miko", 3)
    fake_endpoint(fake_server)
    closed_port_endpoint(fake_server)
    fake_server.fail_next("bad_request", 1)
    call_command("generate", "--dataset=miko", "--pipeline=miko", "--endpoint=fake", "--wait")
    batch = Batch.objects.get()
    out = capsys.readouterr().out
    assert f"Batch {batch.pk} done with 1 failed post: 2 posts done, 1 failed" in out

    with pytest.raises(CommandError) as error:
        call_command("generate", "--dataset=miko", "--pipeline=miko", "--endpoint=closed", "--wait")
    failed = Batch.objects.exclude(pk=batch.pk).get()
    assert str(error.value) == (
        f"Batch {failed.pk} failed: {failed.error} (0 posts done, 3 failed)."
    )
    assert "every post failed (3 of 3); last error: describe_image: connection to" in failed.error


def test_calls_waiting_to_be_retried_are_written_with_their_attempt_and_error(
    fake_server, settings
) -> None:
    # Retry-After is a floor for the wait: the call waits long enough for heartbeats to see it.
    settings.DISTILLERY_RETRY_MAX_SECONDS = 1.0
    fake_server.retry_after = 0.4
    fake_server.fail_next("rate_limit", 1)
    dataset = make_posts("miko", 1)
    batch = launch(dataset, fake_endpoint(fake_server))
    seen: list[tuple[dict, int, str]] = []

    def watch(progress: Progress) -> None:
        stored = Batch.objects.get(pk=batch.pk)
        seen.append((progress.retrying(), progress.calls, stored.status_text))

    batch = batch_execute(batch_id=batch.pk, on_progress=watch)
    waiting = [(state, calls, text) for state, calls, text in seen if state]
    assert waiting, "no heartbeat saw the call waiting"
    state, calls, _ = waiting[0]
    assert state["calls"] == 1 and state["attempt"] == 1 and state["rate_limited"] is True
    assert state["max_attempts"] == settings.DISTILLERY_RETRY_MAX_ATTEMPTS
    assert state["error"].startswith("HTTP 429")
    assert datetime.fromisoformat(state["next_try_at"]) > batch.started_at
    assert calls >= 1  # the failed attempt counts as a call at once, not when the call ends
    # What the pages read meanwhile (on_progress runs just before each heartbeat's write).
    assert "running, retrying 1 call" in [text for _, _, text in seen]
    assert batch.status == Batch.Status.DONE and batch.retrying == {}
    assert batch.calls == 4  # three stages, one of them asked twice: no attempt counted twice


def _set(batch: Batch, **fields) -> Batch:
    Batch.objects.filter(pk=batch.pk).update(**fields)
    batch.refresh_from_db()
    return batch


@pytest.fixture
def batch(fake_server) -> Batch:
    return launch(make_posts("miko", 3), fake_endpoint(fake_server))


@pytest.mark.parametrize(
    "fields, actions",
    [
        ({}, ["pause", "cancel"]),
        ({"status": "running", "runner": "r", "heartbeat_at": "now"}, ["pause", "cancel"]),
        (
            {"status": "running", "runner": "r", "heartbeat_at": "stale"},
            ["pause", "resume", "cancel"],
        ),
        ({"status": "paused"}, ["resume", "cancel"]),
        ({"status": "paused", "posts_failed": 1}, ["resume", "cancel", "retry-failed"]),
        ({"status": "done", "posts_done": 3}, []),
        ({"status": "done", "posts_done": 2, "posts_failed": 1}, ["retry-failed"]),
        ({"status": "failed", "posts_failed": 3}, ["retry-failed"]),
        ({"status": "failed", "posts_done": 1}, ["resume"]),  # a budget or an error: work left
        ({"status": "cancelled", "posts_failed": 1}, []),
        ({"status": "done", "imported": True, "posts_failed": 1}, []),
    ],
)
def test_each_status_allows_its_actions_and_the_services_refuse_the_others(
    batch, fields, actions
) -> None:
    now = timezone.now()
    when = {"now": now, "stale": now - timedelta(minutes=5)}
    if "heartbeat_at" in fields:
        fields = {**fields, "heartbeat_at": when[fields["heartbeat_at"]]}
    batch = _set(batch, **fields)
    assert batch_actions(batch) == actions
    services = {
        "pause": batch_pause,
        "resume": batch_resume,
        "cancel": batch_cancel,
        "retry-failed": batch_retry_failed,
    }
    for action, service in services.items():
        if action in actions:
            continue
        with pytest.raises(Conflict):
            service(batch=batch)
        assert Batch.objects.get(pk=batch.pk).status == batch.status  # nothing changed


def test_refusals_say_why(batch) -> None:
    batch = _set(batch, status="running", runner="r", heartbeat_at=timezone.now())
    with pytest.raises(Conflict, match="is running: its worker reported less than"):
        batch_resume(batch=batch)
    batch = _set(batch, status="queued")
    with pytest.raises(Conflict, match="queued: it starts as soon as a worker is free"):
        batch_resume(batch=batch)
    batch = _set(batch, status="done", posts_done=2, posts_failed=1)
    with pytest.raises(Conflict, match="no posts left to do; retry its failed posts instead"):
        batch_resume(batch=batch)
    batch = _set(batch, posts_failed=0, posts_done=3)
    with pytest.raises(Conflict, match="no failed posts"):
        batch_retry_failed(batch=batch)


def test_a_running_batch_whose_worker_stopped_reporting_can_be_resumed(
    batch, django_capture_on_commit_callbacks
) -> None:
    stale = timezone.now() - timedelta(minutes=5)
    batch = _set(batch, status="running", runner="dead", heartbeat_at=stale)
    with django_capture_on_commit_callbacks() as callbacks:
        batch = batch_resume(batch=batch)
    assert batch.status == "running" and len(callbacks) == 1  # the task waits the lease out


def test_the_page_says_when_a_running_batch_stopped_reporting(admin_client, batch) -> None:
    url = reverse("generation:batch-progress", args=[batch.pk])
    _set(batch, status="running", runner="r", heartbeat_at=timezone.now())
    assert "batch-stalled" not in admin_client.get(url).content.decode()
    _set(batch, heartbeat_at=timezone.now() - timedelta(minutes=5))
    text = admin_client.get(url).content.decode()
    assert "No report from its worker since" in text and ">Resume</button>" in text


def test_the_api_lists_the_actions_and_refuses_the_others_with_409(admin_api, batch) -> None:
    url = f"/api/batches/{batch.pk}"
    _set(batch, status="running", runner="r", heartbeat_at=timezone.now())
    assert admin_api.get(f"{url}/").json()["actions"] == ["pause", "cancel"]
    response = admin_api.post(f"{url}/resume/")
    assert response.status_code == 409 and "is running" in response.json()["detail"]
    response = admin_api.post(f"{url}/retry-failed/")
    assert response.status_code == 409
    assert admin_api.post(f"{url}/nope/").status_code == 404
    assert admin_api.get(f"{url}/").json()["status"] == "running"


def test_the_page_offers_only_the_allowed_actions(admin_client, batch) -> None:
    url = reverse("generation:batch-detail", args=[batch.pk])
    _set(batch, status="running", runner="r", heartbeat_at=timezone.now())
    page = admin_client.get(url).content.decode()
    assert ">Pause</button>" in page and ">Cancel</button>" in page
    assert ">Resume</button>" not in page and "Retry failed" not in page
    # A page that still shows Resume (or a form without JavaScript): the click is refused.
    resume = reverse("generation:batch-action", args=[batch.pk, "resume"])
    response = admin_client.post(resume, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "is running" in response.content.decode()
    assert Batch.objects.get(pk=batch.pk).status == "running"
    response = admin_client.post(resume)  # without JavaScript: back to the page, with a message
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert "is running: its worker reported" in page
    _set(batch, status="done", posts_done=2, posts_failed=1, runner="")
    page = admin_client.get(url).content.decode()
    assert "Retry failed posts</button>" in page and ">Pause</button>" not in page
    assert ">Resume</button>" not in page and ">Cancel</button>" not in page
