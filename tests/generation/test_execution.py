"""The batch runner against the fake OpenAI-compatible server: the window, the cache, faults."""

import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.errors import Conflict
from generation.backends.base import BackendError
from generation.models import Batch, BatchItem, KnowledgeItem, StageResult
from generation.runner.lease import ManualClock
from generation.runner.run import Progress, batch_execute
from generation.services.batches import (
    batch_cancel,
    batch_launch,
    batch_pause,
    batch_resume,
    batch_retry_failed,
)
from tests.factories import fake_endpoint, make_posts
from tests.helpers import backends_terminate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def launch(dataset, endpoint, **extra) -> Batch:
    return batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False, **extra)


def test_a_batch_runs_every_stage_of_every_post_in_a_rolling_window(fake_server, call_log) -> None:
    dataset = make_posts("miko", 14)
    post = dataset.posts.last()
    post.image = ""
    post.save()
    endpoint = fake_endpoint(fake_server, concurrency=4)
    batch = batch_execute(batch_id=launch(dataset, endpoint).pk)

    assert batch.status == Batch.Status.DONE
    assert (batch.posts_total, batch.posts_done, batch.posts_failed) == (14, 14, 0)
    results = StageResult.objects.filter(batch=batch)
    assert results.filter(stage="describe_image", status="ok").count() == 13  # one has no image
    assert results.filter(stage="key_info", status="ok").count() == 14
    assert results.filter(stage="intentions", status="ok").count() == 14
    assert KnowledgeItem.objects.filter(batch=batch).count() == 140
    assert batch.stage_progress["describe_image"]["skipped"] == 1
    assert batch.calls == fake_server.requests == 41
    assert batch.prompt_tokens == fake_server.prompt_tokens
    assert batch.completion_tokens == fake_server.completion_tokens
    # A rolling window: the endpoint's concurrency was used, never exceeded.
    assert fake_server.peak_concurrency == 4
    assert not call_log.repeated()
    item = KnowledgeItem.objects.filter(batch=batch, kind="xWant").first()
    assert item.position == 1 and item.stage_result.stage == "intentions"
    assert item.provenance["model"] == "fake-model"
    stored = results.get(post=post, stage="key_info")
    assert stored.request["messages"][0]["role"] == "user" and stored.raw_answer


def test_posts_move_to_their_next_stage_without_waiting_for_the_others(fake_server) -> None:
    order: list[str] = []
    fake_server.answers = lambda stage, body: order.append(stage)
    fake_server.latency = 0.02
    dataset = make_posts("miko", 30)
    batch_execute(batch_id=launch(dataset, fake_endpoint(fake_server, concurrency=2)).pk)
    # Not stage by stage: a post's intentions come before other posts' images are described.
    assert order.index("intentions") < len(order) - 1 - order[::-1].index("describe_image")


def test_a_relaunch_reuses_every_stored_answer_and_links_the_same_items(
    fake_server,
) -> None:
    dataset = make_posts("miko", 5)
    endpoint = fake_endpoint(fake_server)
    first = batch_execute(batch_id=launch(dataset, endpoint).pk)
    requests = fake_server.requests
    second = batch_execute(batch_id=launch(dataset, endpoint).pk)
    assert fake_server.requests == requests
    assert second.status == Batch.Status.DONE and second.posts_done == 5 and second.calls == 0
    assert second.stage_progress["intentions"]["cached"] == 5
    # The same knowledge is not copied (issue 11): both batches link the first batch's items.
    assert KnowledgeItem.objects.filter(batch=second).count() == 0
    assert KnowledgeItem.objects.filter(batch=first).count() == 50
    assert BatchItem.objects.filter(batch=second).count() == 50
    # Other sampling parameters are another key: called again.
    third = batch_execute(batch_id=launch(dataset, endpoint, parameters={"temperature": 0.1}).pk)
    assert third.calls == 15 and fake_server.requests == requests + 15


def test_a_duplicated_task_does_nothing_twice(fake_server, call_log) -> None:
    dataset = make_posts("miko", 4)
    batch = launch(dataset, fake_endpoint(fake_server))
    batch_execute(batch_id=batch.pk)
    requests = fake_server.requests
    again = batch_execute(batch_id=batch.pk)
    assert again.status == Batch.Status.DONE and fake_server.requests == requests
    assert KnowledgeItem.objects.filter(batch=batch).count() == 40
    assert not call_log.repeated()


def test_a_429_storm_is_retried_with_backoff_until_every_post_is_done(fake_server) -> None:
    fake_server.fail_next("rate_limit", 25)
    dataset = make_posts("miko", 6)
    batch = batch_execute(batch_id=launch(dataset, fake_endpoint(fake_server)).pk)
    assert batch.status == Batch.Status.DONE and batch.posts_done == 6
    assert fake_server.status_counts[429] == 25
    assert not StageResult.objects.filter(status="failed").exists()
    assert StageResult.objects.filter(attempts__gt=1).exists()
    assert batch.calls == fake_server.requests == 18 + 25


def test_server_errors_are_retried_and_bad_requests_are_not(fake_server) -> None:
    fake_server.faults = {"server_error": 0.3}
    dataset = make_posts("miko", 6)
    batch = batch_execute(batch_id=launch(dataset, fake_endpoint(fake_server)).pk)
    assert batch.status == Batch.Status.DONE and batch.posts_done == 6
    assert fake_server.status_counts[500] > 0

    fake_server.faults = {}
    fake_server.fail_next("bad_request", 1)
    other = make_posts("miko-2", 3)
    batch = batch_execute(batch_id=launch(other, fake_endpoint(fake_server, name="f2")).pk)
    assert (batch.posts_done, batch.posts_failed) == (2, 1)
    failed = StageResult.objects.get(batch=batch, status="failed")
    assert failed.attempts == 1 and "400" in failed.error
    assert failed.stage == "describe_image"
    # The failed post's later stages were not called.
    assert not StageResult.objects.filter(post=failed.post, stage="key_info").exists()
    assert batch.stage_progress["describe_image"]["failed"] == 1


def test_malformed_and_truncated_answers_are_stored_and_retryable(fake_server) -> None:
    dataset = make_posts("miko", 4)
    endpoint = fake_endpoint(fake_server, concurrency=1)
    # (An answer with some intentions is a partial result: see test_items_once.py.)
    broken = ["I am sorry, but I cannot guess intentions for this post."]
    fake_server.answers = lambda stage, body: (
        broken.pop() if stage == "intentions" and broken else None
    )
    batch = batch_execute(batch_id=launch(dataset, endpoint).pk)
    failed = StageResult.objects.get(batch=batch, status="failed")
    assert failed.stage == "intentions"
    assert failed.raw_answer.startswith("I am sorry") and "ParseError" in failed.error
    assert batch.posts_failed == 1 and batch.status == Batch.Status.DONE

    fake_server.fail_next("malformed", 10)
    batch_retry_failed(batch=batch)
    batch = batch_execute(batch_id=batch.pk, retry_failed=True)
    failed.refresh_from_db()
    assert failed.status == "failed" and failed.error  # malformed every time it was asked

    fake_server.reset()  # no more faults
    batch_retry_failed(batch=batch)
    batch = batch_execute(batch_id=batch.pk, retry_failed=True)
    assert batch.status == Batch.Status.DONE and (batch.posts_done, batch.posts_failed) == (4, 0)
    failed.refresh_from_db()
    assert failed.status == "ok" and not failed.error
    # Only the failed stage of the failed post was called again.
    assert fake_server.requests == 1
    assert KnowledgeItem.objects.filter(batch=batch).count() == 40


def test_a_timeout_is_retried(fake_server) -> None:
    fake_server.hang_seconds = 5
    fake_server.fail_next("timeout", 2)
    dataset = make_posts("miko", 2)
    endpoint = fake_endpoint(fake_server, parameters={"timeout": 0.5})
    batch = batch_execute(batch_id=launch(dataset, endpoint).pk)
    assert batch.status == Batch.Status.DONE and batch.posts_done == 2
    assert fake_server.faults_served["timeout"] == 2
    assert StageResult.objects.filter(attempts=2).exists()


def test_the_token_budget_stops_a_batch(fake_server) -> None:
    dataset = make_posts("miko", 20)
    batch = launch(dataset, fake_endpoint(fake_server, concurrency=2), token_budget=500)
    batch = batch_execute(batch_id=batch.pk)
    assert batch.status == Batch.Status.FAILED and "budget" in batch.error
    assert batch.posts_done < 20
    assert fake_server.requests < 60


def test_pause_then_resume_finishes_exactly_the_missing_work(fake_server, call_log) -> None:
    dataset = make_posts("miko", 20)
    batch = launch(dataset, fake_endpoint(fake_server, concurrency=2))

    def pause_early(progress: Progress) -> None:
        if progress.posts_done >= 3 and Batch.objects.get(pk=batch.pk).status == "running":
            batch_pause(batch=batch)

    batch = batch_execute(batch_id=batch.pk, on_progress=pause_early)
    assert batch.status == Batch.Status.PAUSED and 3 <= batch.posts_done < 20
    assert batch.runner == ""
    batch = batch_resume(batch=batch)
    assert batch.status == Batch.Status.QUEUED
    batch = batch_execute(batch_id=batch.pk)
    assert batch.status == Batch.Status.DONE and batch.posts_done == 20
    assert fake_server.requests == 60 and not call_log.repeated()
    assert KnowledgeItem.objects.filter(batch=batch).count() == 200


def test_cancel_stops_a_running_batch(fake_server) -> None:
    dataset = make_posts("miko", 20)
    batch = launch(dataset, fake_endpoint(fake_server, concurrency=2))

    def cancel_early(progress: Progress) -> None:
        if progress.posts_done >= 2 and Batch.objects.get(pk=batch.pk).status == "running":
            batch_cancel(batch=batch)

    batch = batch_execute(batch_id=batch.pk, on_progress=cancel_early)
    assert batch.status == Batch.Status.CANCELLED and batch.posts_done < 20
    assert batch.finished_at is not None


class Killed(BaseException):
    """Stands in for a worker process dying: nothing after it runs, no status is written."""


def test_a_runner_that_died_mid_batch_is_resumed_without_repeating_a_call(
    fake_server, call_log, settings
) -> None:
    settings.DISTILLERY_BATCH_LEASE_SECONDS = 0.5
    dataset = make_posts("miko", 20)
    batch = launch(dataset, fake_endpoint(fake_server, concurrency=2))

    def die(progress: Progress) -> None:
        if progress.posts_done >= 4:
            raise Killed

    with pytest.raises(Killed):
        batch_execute(batch_id=batch.pk, on_progress=die)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.RUNNING and batch.runner  # its lease is still held
    stored = StageResult.objects.filter(batch=batch, status="ok").exclude(stage="describe_image")
    assert stored.count() >= 8
    stored_requests = [json.dumps(r.request["messages"], sort_keys=True) for r in stored]
    with pytest.raises(Conflict, match="is running"):  # its heartbeat is still fresh
        batch_resume(batch=batch)
    # The task a worker re-sends on reconnecting: the dead runner's lease runs out while the
    # claim waits on a clock that does not wait.
    batch = batch_execute(batch_id=batch.pk, clock=ManualClock())
    assert batch.status == Batch.Status.DONE and batch.posts_done == 20
    # No key that had a stored answer was called again; only answers lost in flight were.
    for messages in stored_requests:
        assert [n for (_, m), n in call_log.calls.items() if m == messages] == [1]
    assert sum(n - 1 for n in call_log.calls.values()) < 10
    assert StageResult.objects.filter(batch=batch).count() == 60
    assert KnowledgeItem.objects.filter(batch=batch).count() == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_runner_whose_database_connection_drops_reconnects_and_finishes(
    fake_server, call_log
) -> None:
    dataset = make_posts("miko", 12)
    batch = launch(dataset, fake_endpoint(fake_server, concurrency=2))
    dropped: list[int] = []

    def drop_the_connection(progress: Progress) -> None:
        # Called in the runner's thread, before its heartbeat: that statement finds it gone.
        if progress.posts_done >= 3 and not dropped:
            dropped.append(connection.connection.info.backend_pid)
            backends_terminate(dropped)

    batch = batch_execute(batch_id=batch.pk, on_progress=drop_the_connection)
    assert dropped and connection.connection.info.backend_pid != dropped[0]
    assert batch.status == Batch.Status.DONE and (batch.posts_done, batch.posts_failed) == (12, 0)
    assert batch.runner == "" and not batch.error
    assert StageResult.objects.filter(batch=batch, status="ok").count() == 36
    assert KnowledgeItem.objects.filter(batch=batch).count() == 120
    assert call_log.repeated() == []


def test_a_second_runner_leaves_a_live_batch_to_the_first(fake_server, settings) -> None:
    settings.DISTILLERY_BATCH_LEASE_SECONDS = 0.3
    dataset = make_posts("miko", 3)
    batch = launch(dataset, fake_endpoint(fake_server))
    # Another runner holds the lease and keeps its heartbeat fresh (here: in the future).
    Batch.objects.filter(pk=batch.pk).update(
        status="running", runner="someone-else", heartbeat_at=timezone.now() + timedelta(hours=1)
    )
    clock = ManualClock()
    result = batch_execute(batch_id=batch.pk, clock=clock)
    assert result.runner == "someone-else" and fake_server.requests == 0
    assert clock.slept >= settings.DISTILLERY_BATCH_LEASE_SECONDS  # it waited the lease out


def test_the_requests_per_minute_limit_spaces_the_calls(fake_server) -> None:
    dataset = make_posts("miko", 2)
    endpoint = fake_endpoint(fake_server, concurrency=8, requests_per_minute=600)
    started = time.monotonic()
    batch = batch_execute(batch_id=launch(dataset, endpoint).pk)
    # Six calls at one every 0.1 s: at least 0.5 s, however wide the window.
    assert batch.status == Batch.Status.DONE and time.monotonic() - started >= 0.5
    assert fake_server.peak_concurrency <= 2


def test_a_missing_api_key_fails_the_batch_and_names_only_the_variable(
    fake_server, monkeypatch
) -> None:
    monkeypatch.delenv("DISTILLERY_KEY_TEST_MISSING", raising=False)
    dataset = make_posts("miko", 2)
    endpoint = fake_endpoint(fake_server, api_key_env="DISTILLERY_KEY_TEST_MISSING")
    with pytest.raises(BackendError):
        batch_execute(batch_id=launch(dataset, endpoint).pk)
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.FAILED and batch.runner == ""
    assert "DISTILLERY_KEY_TEST_MISSING" in batch.error and fake_server.requests == 0
    # Once the variable is set, the failed batch is resumed.
    monkeypatch.setenv("DISTILLERY_KEY_TEST_MISSING", "sk-test")
    batch_resume(batch=batch)
    batch = batch_execute(batch_id=batch.pk)
    assert batch.status == Batch.Status.DONE and batch.posts_done == 2 and not batch.error
    assert fake_server.last_api_key == "sk-test"
