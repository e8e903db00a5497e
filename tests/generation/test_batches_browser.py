"""In Chromium: an admin launches a batch from the page and watches it finish through htmx polling.

On PostgreSQL the batch runs in a thread beside the live server (standing in for a Celery worker),
so the page is watched while it progresses, then paused and resumed. SQLite's in-memory test
database cannot take writes from two threads, so there the task runs eagerly in the request.
"""

import pytest

from generation.models import Batch
from tests.factories import fake_endpoint, make_posts
from tests.helpers import browser_login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_retries"),
]


def test_launch_a_batch_and_watch_it_finish(page, live_server, admin_user, fake_server, worker):
    fake_server.latency = 0.15 if worker == "thread" else 0.01
    make_posts("miko", 8)
    fake_endpoint(fake_server, concurrency=1)
    browser_login(page, live_server, "ada")

    page.goto(f"{live_server.url}/batches/")
    page.click("text=Launch a batch")
    page.select_option("#id_dataset", "miko")
    page.select_option("#id_pipeline", "miko")
    page.select_option("#id_endpoint", "fake")
    page.fill("#id_temperature", "0.2")
    page.fill("#id_token_budget", "1000000")
    page.click("button:has-text('Launch')")
    page.wait_for_url("**/batches/*/")
    batch = Batch.objects.get()
    assert batch.parameters == {"temperature": 0.2} and batch.launched_by == admin_user

    if worker == "thread":
        # Live: the counters move while the batch runs, then pause and resume from the page.
        # A function, not an expression: Playwright evals an expression on every poll, which the
        # Content-Security-Policy refuses.
        page.wait_for_function(
            "() => Number(document.querySelector('#posts-done').textContent) >= 1", timeout=30_000
        )
        page.click("button:has-text('Pause')")
        page.wait_for_selector("#batch-status:has-text('paused')")
        page.wait_for_timeout(500)
        paused_done = Batch.objects.get().posts_done
        assert paused_done < 8 and Batch.objects.get().status == "paused"
        page.click("button:has-text('Resume')")

    page.wait_for_selector("#batch-status:has-text('done')", timeout=60_000)
    assert page.inner_text("#posts-done") == "8"
    assert page.inner_text("#posts-pending") == "0"
    assert "key_info" in page.inner_text("#batch-progress")
    batch.refresh_from_db()
    assert batch.status == "done" and batch.posts_done == 8
