"""A real Celery worker process killed mid-batch (SIGKILL), then the batch resumed.

Needs PostgreSQL (the worker shares the test database) and Redis (the broker, a database of its
own that this test empties).
"""

import json
import os
from collections.abc import Iterator

import pytest

from config.errors import Conflict
from generation.models import Batch, KnowledgeItem, StageResult
from generation.services.batches import batch_launch, batch_resume
from tests.factories import fake_endpoint, make_posts
from tests.helpers import kill, redis_broker, start_worker, wait_for

REDIS_URL = os.environ.get("DISTILLERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def broker(monkeypatch) -> Iterator[str]:
    """Redis as this process's broker too, so resuming sends the task where the worker listens."""
    with redis_broker(monkeypatch, REDIS_URL) as url:
        yield url


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_resuming_finishes_the_rest(
    broker, fake_server, call_log, settings
) -> None:
    fake_server.latency = 0.1
    dataset = make_posts("miko", 30)
    endpoint = fake_endpoint(fake_server, concurrency=3)
    first = start_worker(settings, broker)
    second = None
    try:
        batch = batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint)  # enqueued
        ok = StageResult.objects.filter(batch=batch, status="ok")
        wait_for(lambda: ok.count() >= 20, 90, "the worker to store 20 results")
        kill(first)

        batch.refresh_from_db()
        assert batch.status == Batch.Status.RUNNING and batch.posts_done < 30
        stored = list(ok.exclude(stage="describe_image"))
        stored_requests = [json.dumps(r.request["messages"], sort_keys=True) for r in stored]
        assert stored_requests

        # No one presses resume: it is refused while the dead worker's heartbeat is fresh, and
        # a worker that connects re-sends every running batch, which waits the lease out.
        with pytest.raises(Conflict, match="is running"):
            batch_resume(batch=batch)
        second = start_worker(settings, broker)
        wait_for(
            lambda: Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE,
            120,
            "the resumed batch to finish",
        )
    finally:
        kill(first)
        if second is not None:
            kill(second)

    batch.refresh_from_db()
    assert (batch.posts_done, batch.posts_failed) == (30, 0)
    assert StageResult.objects.filter(batch=batch, status="ok").count() == 90
    assert KnowledgeItem.objects.filter(batch=batch).count() == 300
    # Every post once; no key with a stored answer called again (only calls lost in flight were).
    for messages in stored_requests:
        assert [n for (_, m), n in call_log.calls.items() if m == messages] == [1]
    assert sum(n - 1 for n in call_log.calls.values()) <= 6
