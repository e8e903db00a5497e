"""In Chromium: an admin launches an evaluation from the leaderboard against the fake server and
watches it finish on its page (htmx polling), then finds it on the leaderboard.

On PostgreSQL the run goes to a thread beside the live server (standing in for a Celery worker),
so the page is watched while it runs; on SQLite, whose in-memory test database cannot take writes
from two threads, it runs eagerly in the request.
"""

import threading

import pytest
from django.db import connection, connections

from config.celery import app
from students import tasks
from students.models import EvaluationRun
from tests.factories import fake_endpoint
from tests.helpers import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def evaluation_worker(monkeypatch) -> str:
    if connection.vendor != "postgresql":
        monkeypatch.setattr(app.conf, "task_always_eager", True)
        return "eager"

    def run(run_id: int) -> None:
        try:
            tasks.evaluation_run_execute_task(run_id)
        finally:
            connections.close_all()

    def delay(run_id: int) -> None:
        threading.Thread(target=run, args=(run_id,), daemon=True).start()

    monkeypatch.setattr(tasks.evaluation_run_execute_task, "delay", delay)
    return "thread"


def test_launch_an_evaluation_and_watch_it_finish(
    page, live_server, admin_user, campaign, server, evaluation_worker
):
    server.latency = 1.0 if evaluation_worker == "thread" else 0.0
    fake_endpoint(server, name="teacher", concurrency=1)
    browser_login(page, live_server, "ada")

    page.goto(f"{live_server.url}/datasets/{campaign.dataset_id}/leaderboard/")
    page.select_option("#id_split", "test")
    page.select_option("#id_endpoint", "teacher")
    page.select_option("#id_pipeline", "direct")
    page.fill("#id_price_prompt", "1")
    page.fill("#id_price_completion", "2")
    page.click("button:has-text('Evaluate')")
    page.wait_for_url("**/evaluation-runs/*/")
    run = EvaluationRun.objects.get()
    assert run.created_by == admin_user and run.total == 5

    if evaluation_worker == "thread":
        page.wait_for_selector("#run-status:has-text('running')", timeout=30_000)
    page.wait_for_selector("#run-status:has-text('done')", timeout=60_000)
    status = page.inner_text("#run-status")
    assert "5 of 5 answers" in status and "overall" in status and "cost" in status
    assert not page.locator("#run-status[hx-get]").count()  # no more polling

    page.click("text=test leaderboard")
    page.wait_for_url("**/leaderboard/?split=test")
    assert "teacher" in page.inner_text("table")
    run.refresh_from_db()
    assert run.status == "done" and server.requests == 5
