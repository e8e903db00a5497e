"""An upload's worker dying mid-import: the job does not stay `running`, and nothing is imported.

The import runs in a process of its own (what a worker's pool process does), stopped after its
first chunk is written and then SIGKILLed. What recovers the job is what a worker does: the task
delivered again (`acks_late` with `reject_on_worker_lost`), or the step run whenever a worker
connects to the broker (`import_jobs_recover`).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from generation.models import Batch, ImportJob, KnowledgeItem, Post
from generation.services.import_jobs import import_jobs_recover
from generation.tasks import import_job_run_task
from tests.helpers import ROOT, database_url, wait_for

# The worker's pool process: imports the job, and stops for good once its first chunk is in
# (uncommitted), writing its database session's pid where the test waits for it.
WORKER = """
import sys, time
import django
django.setup()
from django.db import connection
from generation.services import imports
written = imports._ChunkWriter.write
def write_then_hang(self, chunk):
    written(self, chunk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        open(sys.argv[2], "w").write(str(cursor.fetchone()[0]))
    time.sleep(600)
imports._ChunkWriter.write = write_then_hang
from generation.tasks import import_job_run_task
import_job_run_task(job_id=int(sys.argv[1]))
"""


def queued_job(admin_user, posts: int = 5000) -> ImportJob:
    lines = "".join(
        json.dumps({"id": str(n), "text": f"post {n}", "items": [{"kind": "k", "text": "t"}]})
        + "\n"
        for n in range(posts)
    )
    return ImportJob.objects.create(
        dataset_name="killed",
        file=ContentFile(lines.encode(), name="posts.jsonl"),
        created_by=admin_user,
    )


def session_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] > 0


class Worker:
    """An import running in a process of its own, stopped after its first chunk."""

    def __init__(self, job: ImportJob, settings, tmp_path: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "CONN_MAX_AGE": "0",
        }
        self.marker = tmp_path / "backend-pid"
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(job.pk), str(self.marker)],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        wait_for(
            lambda: self.process.poll() is not None or self.marker.exists(),
            60,
            "the worker to write its first chunk",
        )
        assert self.process.poll() is None, "the worker ended before its first chunk"
        wait_for(lambda: self.marker.read_text().strip(), 5, "the worker's session pid")
        self.backend_pid = int(self.marker.read_text())

    def kill(self) -> None:
        """SIGKILL, then wait until the database has ended the dead worker's session."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        wait_for(lambda: not session_alive(self.backend_pid), 30, "the dead worker's session")


@pytest.fixture
def worker(admin_user, settings, tmp_path):
    job = queued_job(admin_user)
    started = Worker(job, settings, tmp_path)
    yield job, started
    started.kill()


def assert_failed_with_nothing_imported(job: ImportJob) -> None:
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith("The worker running this import stopped before it finished")
    assert job.finished_at is not None
    assert not Post.objects.exists() and not KnowledgeItem.objects.exists()
    assert not Batch.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_task_delivered_again_after_its_worker_was_killed_fails_the_job(worker):
    job, process = worker
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING
    process.kill()
    # Celery delivers the task again (reject_on_worker_lost): it must not leave the job running.
    import_job_run_task(job_id=job.pk)
    assert_failed_with_nothing_imported(job)
    import_job_run_task(job_id=job.pk)  # and once more: the failed job stays as it is
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_starting_fails_the_jobs_of_dead_workers_and_leaves_live_ones_alone(worker):
    job, process = worker
    assert import_jobs_recover() == []  # its worker is alive, only stopped mid-import
    job.refresh_from_db()
    assert job.status == ImportJob.Status.RUNNING
    process.kill()
    assert import_jobs_recover() == [job.pk]
    assert_failed_with_nothing_imported(job)


@pytest.mark.django_db
def test_a_job_left_running_without_a_worker_is_failed_on_any_database(admin_user):
    """What a worker killed before its import's first write leaves (SQLite too)."""
    job = queued_job(admin_user, posts=3)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    import_job_run_task(job_id=job.pk)
    assert_failed_with_nothing_imported(job)

    other = queued_job(admin_user, posts=3)
    ImportJob.objects.filter(pk=other.pk).update(status=ImportJob.Status.RUNNING)
    assert import_jobs_recover() == [other.pk]
    assert_failed_with_nothing_imported(other)


@pytest.mark.django_db
def test_a_worker_starting_sends_the_queued_jobs_again(admin_user, monkeypatch):
    """Their messages may have been lost with the broker; a job sent twice runs once."""
    sent = []
    monkeypatch.setattr(import_job_run_task, "delay", lambda **kwargs: sent.append(kwargs))
    job = queued_job(admin_user, posts=3)
    assert import_jobs_recover() == []
    assert sent == [{"job_id": job.pk}]
    import_job_run_task(job_id=job.pk)
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.posts_created) == (ImportJob.Status.DONE, 3)
