"""Faults, each injected into real processes: after each, nothing lost, nothing duplicated, and the
work resumes by itself or can be retried through the API.

- a Celery worker SIGKILLed mid-batch and started again: the batch finishes by itself;
- the broker (a Redis server of this test's own) killed and restarted mid-batch;
- the database connection of the web process (gunicorn) dropped between claim and submit, and
  during a submission;
- an endpoint answering 429 with Retry-After for "a minute" (time-scaled, see below);
- an export worker SIGKILLed mid-file: no download is offered, and the export can be run again.

Needs PostgreSQL (the subprocesses share pytest-django's test database) and Redis for the broker
(`DISTILLERY_FAULTS_REDIS_URL`, database 9 by default, emptied by these tests).
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotation.models import Assignment, Rating, Task
from annotation.selectors import tasks_with_done
from annotation.services import campaign_create
from evaluation.exports.files import sha256_of
from evaluation.models import ExportJob
from generation.models import Batch, BatchItem, Endpoint, KnowledgeItem, Post, StageResult
from generation.pipelines.miko import MIKO_KINDS
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch
from tests.factories import BatchFactory, DatasetFactory, fake_endpoint, make_posts, miko_batch
from tests.helpers import (
    backends_terminate,
    database_url,
    kill,
    redis_broker,
    start_worker,
    use_broker,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS_URL = os.environ.get("DISTILLERY_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/9")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker(monkeypatch) -> Iterator[str]:
    with redis_broker(monkeypatch, REDIS_URL) as url:
        yield url


def stored_once(batch: Batch, posts: int) -> None:
    """Every post done once: three OK results each, ten items each, no key stored twice."""
    batch.refresh_from_db()
    assert (batch.status, batch.posts_done, batch.posts_failed) == (Batch.Status.DONE, posts, 0)
    results = StageResult.objects.filter(post__dataset=batch.dataset)
    assert results.count() == results.filter(status="ok").count() == 3 * posts
    keys = set(results.values_list("post_id", "stage"))
    assert len(keys) == 3 * posts
    items = KnowledgeItem.objects.filter(batch=batch)
    assert items.count() == 10 * posts
    assert len(set(items.values_list("post_id", "kind", "position"))) == 10 * posts


# --- a worker killed mid-batch ----------------------------------------------------------------


def batch_under_way(fake_server) -> tuple[Batch, Endpoint]:
    """A batch of 30 MIKO posts at 100 ms a call, sent to the workers; back at 20 results."""
    fake_server.latency = 0.1
    endpoint = fake_endpoint(fake_server, concurrency=3)
    batch = batch_launch(dataset=make_posts("miko", 30), pipeline="miko", endpoint=endpoint)
    ok = StageResult.objects.filter(batch=batch, status="ok")
    wait_for(lambda: ok.count() >= 20, 90, "the worker to store 20 results")
    return batch, endpoint


def test_a_worker_killed_mid_batch_and_restarted_finishes_the_batch_by_itself(
    broker, fake_server, call_log, settings, monkeypatch
) -> None:
    """Unlike the batch tests' worker test, nobody calls resume: the restarted worker must."""
    first = start_worker(settings, broker)
    second = None
    try:
        batch, _ = batch_under_way(fake_server)
        kill(first)
        batch.refresh_from_db()
        assert batch.status == Batch.Status.RUNNING and batch.posts_done < 30
        # Stored image requests carry a shortened data URL; the other stages' are as sent.
        answered = {
            json.dumps(r.request["messages"], sort_keys=True)
            for r in StageResult.objects.filter(batch=batch).exclude(stage="describe_image")
        }

        second = start_worker(settings, broker)
        wait_for(
            lambda: Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE,
            60,
            "the batch to finish with no one resuming it",
        )
    finally:
        kill(first)
        if second is not None:
            kill(second)

    stored_once(batch, 30)
    # No key that had an answer stored was called again; only calls in flight at the kill were.
    for (_, messages), count in call_log.calls.items():
        if messages in answered:
            assert count == 1
    # At most the 3 calls in flight (concurrency 3), and the answers that arrived in the writer's
    # last flush window before the kill (not stored, so asked again): a few more under load.
    assert sum(n - 1 for n in call_log.calls.values()) <= 6


# --- the broker restarted mid-batch -----------------------------------------------------------


class RedisServer:
    """A redis-server of this test's own, without persistence: a restart forgets everything."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs redis-server on the PATH")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(monkeypatch) -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    use_broker(monkeypatch, server.url)
    yield server
    server.kill()


def test_redis_restarted_mid_batch_loses_and_duplicates_nothing(
    own_redis, fake_server, call_log, settings, monkeypatch
) -> None:
    worker = start_worker(settings, own_redis.url)
    try:
        batch, endpoint = batch_under_way(fake_server)
        own_redis.kill()
        time.sleep(2)
        assert worker.poll() is None, "the worker died with its broker"
        own_redis.start()
        wait_for(
            lambda: Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE,
            120,
            "the batch to finish after the broker came back",
        )
        repeated = call_log.repeated()
        # The worker reconnected: a batch launched after the restart runs too (its posts repeat
        # the first three's texts and images, so its calls are not counted as repeats).
        later = batch_launch(dataset=make_posts("later", 3), pipeline="miko", endpoint=endpoint)
        wait_for(
            lambda: Batch.objects.get(pk=later.pk).status == Batch.Status.DONE,
            60,
            "a batch launched after the restart to finish",
        )
    finally:
        kill(worker)

    stored_once(batch, 30)
    stored_once(later, 3)
    assert repeated == []


def test_a_batch_waiting_in_the_queue_when_redis_restarts_still_runs(
    own_redis, fake_server, settings, monkeypatch
) -> None:
    """The worker (one process) is busy; the second batch's message waits in Redis and is lost
    with it (no persistence, as with a crash before the append-only file is written)."""
    worker = start_worker(settings, own_redis.url)
    try:
        first, endpoint = batch_under_way(fake_server)
        waiting = batch_launch(dataset=make_posts("waiting", 3), pipeline="miko", endpoint=endpoint)
        own_redis.kill()
        time.sleep(1)
        own_redis.start()
        for batch in (first, waiting):
            wait_for(
                lambda batch=batch: Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE,
                60,
                f"batch {batch.pk} to finish after the broker came back",
            )
    finally:
        kill(worker)
    stored_once(first, 30)
    stored_once(waiting, 3)


# --- the database connection dropped during a rating submission ------------------------------


@pytest.fixture
def web(settings) -> Iterator[str]:
    """gunicorn on the test database, with persistent connections (as in production)."""
    from benchmarks.bench_annotation import start_gunicorn

    env = os.environ | {
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CONN_MAX_AGE": "600",
        "DEBUG": "false",
        "LOG_LEVEL": "CRITICAL",
    }
    options = SimpleNamespace(port=free_port(), workers=2, threads=1)
    server = start_gunicorn(options, env)
    yield f"http://127.0.0.1:{options.port}"
    kill(server)


def _web_backends(spare: set[int]) -> list[int]:
    """Backends on the test database other than this test's own connections."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        spare = spare | {conn.info.backend_pid}
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchall()
    return [pid for (pid,) in rows if pid not in spare]


def _rating_campaign(annotator, posts: int):
    dataset = DatasetFactory(name="faults")
    batch = miko_batch(dataset=dataset, posts=posts)
    return campaign_create(name="faults", dataset=dataset, batches=[batch], members=[annotator])


def _ratings(task: dict, value: int) -> list[dict]:
    return [
        {"item": item["id"], "question": question["id"], "value": value}
        for item in task["items"]
        for question in task["questions"]
    ]


def test_a_dropped_database_connection_during_rating_loses_and_duplicates_nothing(
    web, annotator
) -> None:
    campaign = _rating_campaign(annotator, posts=2)
    token = Token.objects.create(user=annotator).key
    own = {connection.cursor().connection.info.backend_pid}
    client = httpx.Client(base_url=web, headers={"Authorization": f"Token {token}"}, timeout=30)

    # Between claim and submit: the web process's connections are cut while it is idle.
    first = client.post(f"/api/campaigns/{campaign.pk}/next/").json()
    backends_terminate(_web_backends(own))
    submit = f"/api/assignments/{first['assignment']}/submit/"
    response = client.post(submit, json={"ratings": _ratings(first, 4)})
    if response.status_code != 200:  # an error is allowed; the retry must succeed
        assert response.status_code >= 500, response.text
        response = client.post(submit, json={"ratings": _ratings(first, 4)})
    assert response.status_code == 200, response.text

    # During a submission: hold the assignment's row lock so the submission waits inside its
    # transaction, cut the connection it waits on, then let go.
    second = client.post(f"/api/campaigns/{campaign.pk}/next/").json()
    submit = f"/api/assignments/{second['assignment']}/submit/"
    answers: list[httpx.Response] = []
    with psycopg.connect(database_url()) as locker:
        locker.execute(
            "SELECT id FROM annotation_assignment WHERE id = %s FOR UPDATE", [second["assignment"]]
        )
        sender = threading.Thread(
            target=lambda: answers.append(
                client.post(submit, json={"ratings": _ratings(second, 2)})
            )
        )
        sender.start()
        own.add(locker.info.backend_pid)
        with psycopg.connect(database_url(), autocommit=True) as probe:
            own.add(probe.info.backend_pid)
            query = (
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            wait_for(lambda: probe.execute(query).fetchall(), 30, "the submission to wait")
            waiting = [pid for (pid,) in probe.execute(query).fetchall()]
        backends_terminate(waiting)
        locker.rollback()
    sender.join(30)
    assert answers and answers[0].status_code >= 500, answers and answers[0].text
    assert Rating.objects.filter(assignment_id=second["assignment"]).count() == 0
    retried = client.post(submit, json={"ratings": _ratings(second, 2)})
    assert retried.status_code == 200, retried.text
    # A client that never saw the answer and sends again changes nothing.
    again = client.post(submit, json={"ratings": _ratings(second, 2)})
    assert again.status_code == 200, again.text
    client.close()

    ratings = Rating.objects.filter(campaign=campaign)
    assert ratings.count() == 2 * 10 * 2
    assert len(set(ratings.values_list("item_id", "question_id", "annotator_id"))) == 40
    assert set(ratings.values_list("value", flat=True)) == {2, 4}
    assert Assignment.objects.filter(campaign=campaign, status="done").count() == 2
    assert list(
        tasks_with_done(Task.objects.filter(campaign=campaign)).values_list("taken", "done")
    ) == [
        (1, 1),
        (1, 1),
    ]


def test_the_workers_database_connection_dropped_mid_batch_loses_and_duplicates_nothing(
    broker, fake_server, call_log, settings, monkeypatch
) -> None:
    worker = start_worker(settings, broker)
    try:
        batch, _ = batch_under_way(fake_server)
        own = {connection.cursor().connection.info.backend_pid}
        backends_terminate(_web_backends(own))
        wait_for(
            lambda: Batch.objects.get(pk=batch.pk).status == Batch.Status.DONE,
            60,
            "the batch to finish after its runner lost its database connection",
        )
    finally:
        kill(worker)
    stored_once(batch, 30)
    # At most the 3 calls in flight (concurrency 3), and the answers that arrived in the writer's
    # last flush window before the kill (not stored, so asked again): a few more under load.
    assert sum(n - 1 for n in call_log.calls.values()) <= 6


# --- an endpoint answering 429 for a while -----------------------------------------------------

# "A minute" of 429s, time-scaled: the retry settings and Retry-After are scaled by the same factor
# as the window, so the runner sees exactly what a real minute looks like with the defaults
# (retry base 1 s, cap 60 s, Retry-After 1 s). Set DISTILLERY_FAULTS_429_SECONDS=60 to run it in
# real time.
RATE_LIMIT_SECONDS = float(os.environ.get("DISTILLERY_FAULTS_429_SECONDS", "6"))


def test_an_endpoint_answering_429_for_a_minute_slows_the_batch_down_and_loses_nothing(
    fake_server, call_log, settings
) -> None:
    scale = RATE_LIMIT_SECONDS / 60
    settings.DISTILLERY_RETRY_BASE_SECONDS = 1.0 * scale
    settings.DISTILLERY_RETRY_MAX_SECONDS = 60.0 * scale
    settings.DISTILLERY_FLUSH_SECONDS = 0.05
    fake_server.retry_after = 1.0 * scale
    fake_server.latency = 0.01
    dataset = make_posts("miko", 12)
    concurrency = 4
    endpoint = fake_endpoint(fake_server, concurrency=concurrency)
    batch = batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False)

    fake_server.faults = {"rate_limit": 1.0}
    lifted = threading.Timer(RATE_LIMIT_SECONDS, lambda: fake_server.faults.clear())
    began = time.monotonic()
    lifted.start()
    try:
        batch = batch_execute(batch_id=batch.pk)
    finally:
        lifted.cancel()
    wall = time.monotonic() - began

    assert wall >= RATE_LIMIT_SECONDS  # it waited the limit out ...
    stored_once(batch, 12)  # ... and then did everything, once; no failure stored
    assert StageResult.objects.filter(status="failed").count() == 0
    assert call_log.repeated() == []
    # It slowed down: each call in the window waits at least Retry-After before trying again.
    limited = fake_server.status_counts[429]
    assert limited > 0
    assert limited <= concurrency * (RATE_LIMIT_SECONDS / fake_server.retry_after + 2)


# --- an export worker killed mid-file ---------------------------------------------------------


def _rated_campaign(annotator, posts: int):
    """A campaign of `posts` x 10 items, each rated once on each question (bulk, for speed)."""
    from annotation.models import Question

    dataset = DatasetFactory(name="export-faults")
    batch = BatchFactory(dataset=dataset)
    created = Post.objects.bulk_create(
        Post(dataset=dataset, external_id=str(i), text=f"Post {i} #weekend") for i in range(posts)
    )
    items = KnowledgeItem.objects.bulk_create(
        KnowledgeItem(
            post=post, batch=batch, kind=kind, position=position, text=f"{kind} of {post.text}"
        )
        for post in created
        for position, kind in enumerate(MIKO_KINDS, start=1)
    )
    BatchItem.objects.bulk_create(BatchItem(batch=batch, item=item) for item in items)
    campaign = campaign_create(
        name="export-faults", dataset=dataset, batches=[batch], with_tasks=False
    )
    Rating.objects.bulk_create(
        Rating(
            campaign=campaign,
            item=item,
            question=question,
            annotator=annotator,
            value=1 + (item.pk + question.position) % 5,
        )
        for question in Question.objects.filter(campaign=campaign)
        for item in items
    )
    return campaign, len(items)


def test_an_export_worker_killed_mid_file_offers_no_download_and_runs_again_from_the_page(
    broker, settings, monkeypatch, admin_api, admin_client, annotator
) -> None:
    campaign, items = _rated_campaign(annotator, posts=2000)
    folder = Path(settings.MEDIA_ROOT) / "exports" / str(campaign.pk)
    worker = start_worker(settings, broker)
    second = None
    try:
        created = admin_api.post("/api/exports/", {"campaign": campaign.pk, "format": "jsonl"})
        assert created.status_code == 201, created.content
        job_id = created.json()["id"]

        def partial_written() -> bool:
            return any(p.stat().st_size > 0 for p in folder.glob(".*.partial-*"))

        wait_for(partial_written, 120, "the export to start writing its file")
        kill(worker)

        job = ExportJob.objects.get(pk=job_id)
        assert job.status != ExportJob.Status.DONE, "the export finished before the kill"
        assert not job.is_downloadable and not job.file and not job.sha256
        # The half-written file is still there, under its temporary name only.
        assert any(p.stat().st_size > 0 for p in folder.glob(".*.partial-*"))
        assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == []
        detail = admin_api.get(f"/api/exports/{job_id}/").json()
        assert detail["download_url"] is None
        assert admin_api.get(f"/api/exports/{job_id}/download/").status_code == 409
        page = admin_client.get(reverse("evaluation:export-detail", args=[job_id]))
        assert reverse("evaluation:export-download", args=[job_id]) not in page.content.decode()
        assert (
            admin_client.get(reverse("evaluation:export-download", args=[job_id])).status_code
            == 404
        )

        retry = reverse("evaluation:export-retry", args=[job_id])
        assert retry in page.content.decode()

        # Run it again from the page: a new job with the same settings, complete, with a true
        # checksum; the stopped one is marked failed so its page stops waiting.
        second = start_worker(settings, broker)
        response = admin_client.post(retry)
        again_id = ExportJob.objects.order_by("-id").values_list("id", flat=True).first()
        assert again_id != job_id
        assert response.status_code == 302
        assert response.url == reverse("evaluation:export-detail", args=[again_id])
        wait_for(
            lambda: (
                ExportJob.objects.get(pk=again_id).status
                in (ExportJob.Status.DONE, ExportJob.Status.FAILED)
            ),
            120,
            "the export to finish",
        )
    finally:
        kill(worker)
        if second is not None:
            kill(second)

    done = ExportJob.objects.get(pk=again_id)
    assert done.status == ExportJob.Status.DONE, done.error
    path = Path(done.file.path)
    assert sha256_of(path) == done.sha256 == done.manifest["sha256"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == items == done.items_written
    assert len({json.loads(line)["item_id"] for line in lines}) == items
    assert admin_api.get(f"/api/exports/{again_id}/download/").status_code == 200
    stopped = ExportJob.objects.get(pk=job_id)
    assert stopped.status == ExportJob.Status.FAILED and f"export {again_id}" in stopped.error
    assert admin_api.post(f"/api/exports/{again_id}/retry/").status_code == 409
    assert ExportJob.objects.count() == 2
