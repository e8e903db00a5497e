"""Helpers that test bodies call, which are neither fixtures nor test data.

- the users' password and logging a browser page in;
- a full set of ratings for an annotation task;
- waiting for a condition with a deadline (instead of a fixed sleep);
- Celery worker processes on a Redis broker, for the tests that kill and restart real processes;
- the test database's URL (for processes of their own) and ending a connection's backend.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-battery"


def database_url() -> str:
    """The URL of the database the tests run on (PostgreSQL), for a process or connection of its
    own: a worker, gunicorn, an administrator's connection."""
    database = connection.settings_dict
    return (
        f"postgresql://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


def backends_terminate(pids: list[int]) -> None:
    """End these PostgreSQL backends from a connection of the test's own, as a server restart or
    a network cut would: their next statement finds the connection gone."""
    with psycopg.connect(database_url(), autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def browser_login(page, live_server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def full_ratings(view, value=3):
    """RatingInputs for every item and question of a TaskView."""
    from annotation.services import RatingInput

    return [
        RatingInput(item.item.pk, q.question.pk, value)
        for item in view.items
        for q in view.questions
    ]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Return as soon as `condition()` is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_in_page(page, expression: str, arg=None, timeout: float = 10, what: str = "") -> None:
    """Poll a JavaScript function in the page until it returns something true.

    Playwright's `wait_for_function` evaluates its predicate repeatedly from a string, which a
    page's Content-Security-Policy (no 'unsafe-eval') refuses now and then; `page.evaluate` runs
    it once per call. A navigation under way (its context destroyed) counts as not yet.
    """
    from playwright.sync_api import Error

    def holds() -> bool:
        try:
            return bool(page.evaluate(expression, arg))
        except Error as error:
            if "context was destroyed" in str(error) or "navigation" in str(error).lower():
                return False
            raise

    wait_for(holds, timeout, what or expression)


# --- Celery workers on Redis ---------------------------------------------------------------------


def use_broker(monkeypatch, url: str) -> None:
    """This process sends its tasks (launch, resume, export) to `url`, where the workers listen."""
    from config.celery import app

    monkeypatch.setattr(app.conf, "broker_url", url)
    monkeypatch.setattr(app.conf, "broker_transport_options", {})
    # Fresh connection and producer pools, left open afterwards: kombu keeps pools by URL, and a
    # closed one would be handed to the next test that uses the same URL.
    monkeypatch.setattr(app, "_pool", None)
    monkeypatch.setattr(app.amqp, "_producer_pool", None)


@contextmanager
def redis_broker(monkeypatch, url: str) -> Iterator[str]:
    """An emptied Redis database at `url` as the broker of this process; skips without Redis."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"needs Redis at {url}")
    client.flushdb()
    use_broker(monkeypatch, url)
    yield url
    client.flushdb()


def start_worker(settings, broker_url: str) -> subprocess.Popen:
    """A Celery worker process on the test database (lease 2 s, fast retries) and `broker_url`."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
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
