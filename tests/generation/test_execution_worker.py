"""A real Celery worker process killed mid-batch (SIGKILL), then the batch resumed.

Needs PostgreSQL (the worker shares the test database) and Redis (the broker, a database of its
own that this test empties).
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from generation.models import Batch, KnowledgeItem, StageResult
from generation.services.batches import batch_launch, batch_resume
from tests.generation.batch_fixtures import *  # noqa: F403 (the fixtures)
from tests.generation.batch_fixtures import fake_endpoint, make_posts

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("DISTILLERY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"needs Redis at {REDIS_URL}")
    return client


@pytest.fixture
def broker(monkeypatch) -> Iterator[str]:
    """Redis as this process's broker too, so resuming sends the task where the worker listens."""
    from config.celery import app

    client = _redis()
    client.flushdb()
    monkeypatch.setattr(app.conf, "broker_url", REDIS_URL)
    monkeypatch.setattr(app.conf, "broker_transport_options", {})
    monkeypatch.setattr(app, "_pool", None)
    # A producer pool made earlier in this process (for another broker) would be reused.
    monkeypatch.setattr(app.amqp, "_producer_pool", None)
    yield REDIS_URL
    if app._pool is not None:
        app._pool.force_close_all()
    client.flushdb()


def start_worker(settings) -> subprocess.Popen:
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "CELERY_BROKER_URL": REDIS_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "DISTILLERY_BATCH_LEASE_SECONDS": "2",
        "DISTILLERY_FLUSH_SECONDS": "0.05",
        "DISTILLERY_RETRY_BASE_SECONDS": "0.01",
        "CONN_MAX_AGE": "0",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default"]
    command += ["-c", "1", "-P", "prefork", "--without-gossip", "--without-mingle", "-l", "info"]
    # A session of its own: SIGKILL to the group kills the worker and its pool child at once.
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_resuming_finishes_the_rest(
    broker, fake_server, call_log, settings
) -> None:
    fake_server.latency = 0.1
    dataset = make_posts("miko", 30)
    endpoint = fake_endpoint(fake_server, concurrency=3)
    first = start_worker(settings)
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

        second = start_worker(settings)
        batch_resume(batch=batch)
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
