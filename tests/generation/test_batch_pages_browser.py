"""In Chromium: batch pages that say what happened (issue 14). A batch whose every call fails ends
"failed" with its reason, its failures listed as they happen and its retries visible while they
wait; actions only when allowed; no stale "queued" message, and a next step once done; the form
shows only the chosen pipeline's stages, with JavaScript, from the keyboard and without it.

The launched batch runs in a thread on PostgreSQL (the `worker` fixture), so the page is watched
live; the tests that need to see a batch while it runs are PostgreSQL's.
"""

import re
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from generation.models import Batch, Endpoint
from generation.pipelines.base import get_pipeline
from generation.services.batches import batch_launch
from tests.factories import fake_endpoint, make_posts
from tests.helpers import browser_login, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_retries"),
]


def launch_from_the_form(page, live_server, endpoint: str, *, pipeline: str = "miko") -> Batch:
    page.goto(f"{live_server.url}/batches/new/")
    page.select_option("#id_dataset", "miko")
    page.select_option("#id_pipeline", pipeline)
    page.select_option("#id_endpoint", endpoint)
    page.click("button:has-text('Launch')")
    page.wait_for_url("**/batches/*/")
    return Batch.objects.latest("id")


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def buttons(page) -> list[str]:
    return page.locator("#batch-progress .actions button").all_inner_texts()


def test_a_batch_on_a_closed_port_ends_failed_with_the_reason(
    page, live_server, admin_user, fake_server, worker
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    make_posts("miko", 1)
    endpoint = fake_endpoint(fake_server, name="closed")
    Endpoint.objects.filter(pk=endpoint.pk).update(base_url=f"http://127.0.0.1:{port}/v1")
    browser_login(page, live_server, "ada")
    batch = launch_from_the_form(page, live_server, "closed")

    status = page.locator("#batch-status")
    status.filter(has_text="failed").wait_for(timeout=30_000)
    assert status.inner_text().startswith(
        "failed: every post failed (1 of 1); last error: describe_image: connection to "
        f"http://127.0.0.1:{port}/v1 failed"
    )
    # No reload: the failures and the stages that were never asked come with the status.
    failures = page.inner_text("#batch-failures")
    assert "No failures" not in failures and f"127.0.0.1:{port}" in failures
    rows = {
        row.locator("td").first.inner_text(): row.locator("td").all_inner_texts()
        for row in page.locator("#batch-stages tbody tr").all()
    }
    assert rows["key_info"][-2:] == ["1", "0"]  # not reached 1, pending 0
    assert buttons(page) == ["Retry failed posts"]
    assert "Create a campaign" not in page.inner_text("main")
    assert serious_violations(page) == []

    page.goto(f"{live_server.url}/batches/")
    row = page.locator("tr", has=page.locator(f"a[href='/batches/{batch.pk}/']"))
    assert "failed: every post failed (1 of 1)" in row.inner_text()


@pytest.mark.postgres
def test_retries_show_while_they_wait_and_failures_as_they_happen(
    page, live_server, admin_user, fake_server, worker, settings
) -> None:
    # Every call is refused with a 429 whose Retry-After (1.5 s) the runner waits out, twice,
    # before it gives the call up: long enough for the page's polls to see each wait.
    settings.DISTILLERY_RETRY_MAX_SECONDS = 2.0
    settings.DISTILLERY_RETRY_MAX_ATTEMPTS = 2
    settings.DISTILLERY_RATE_LIMIT_PATIENCE_SECONDS = 2.5
    fake_server.retry_after = 1.5
    fake_server.fail_next("rate_limit", 100)
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    browser_login(page, live_server, "ada")
    launch_from_the_form(page, live_server, "fake")

    retrying = page.locator("#batch-retrying")
    retrying.wait_for(timeout=15_000)
    text = retrying.inner_text()
    assert re.search(r"Retrying 1 call: attempt \d failed \(HTTP 429", text), text
    assert re.search(r"Next try at \d\d:\d\d:\d\d \(in \d s\)", text), text
    assert page.inner_text("#batch-status") == "running, retrying 1 call"
    assert int(page.inner_text("#batch-calls")) >= 1  # attempts count as they are made
    assert serious_violations(page) == []

    page.locator("#batch-status").filter(has_text="failed").wait_for(timeout=30_000)
    assert "last error: describe_image: HTTP 429" in page.inner_text("#batch-status")
    assert retrying.count() == 0
    assert "HTTP 429" in page.inner_text("#batch-failures")


@pytest.mark.postgres
def test_actions_follow_the_status_and_a_done_batch_offers_the_next_step(
    page, live_server, admin_user, fake_server, worker
) -> None:
    fake_server.latency = 0.3
    fake_server.fail_next("bad_request", 1)  # the first call: one post fails
    dataset = make_posts("miko", 4)
    fake_endpoint(fake_server, concurrency=1)
    browser_login(page, live_server, "ada")
    batch = launch_from_the_form(page, live_server, "fake")

    page.locator("#batch-status").filter(has_text="running").wait_for(timeout=15_000)
    assert buttons(page) == ["Pause", "Cancel"]  # no Resume, no Retry while it runs
    assert "queued." not in page.inner_text("main")  # no launch message left behind

    page.locator("#batch-status").filter(has_text="done").wait_for(timeout=60_000)
    assert page.inner_text("#batch-status") == "done with 1 failed post"
    assert buttons(page) == ["Retry failed posts"]
    next_step = page.get_by_role("link", name="Create a campaign from this batch")
    href = next_step.get_attribute("href")
    assert href == f"/campaigns/new/?dataset={dataset.pk}&batch={batch.pk}"
    assert serious_violations(page) == []

    page.click("button:has-text('Retry failed posts')")
    page.locator("#batch-status").filter(has_text=re.compile(r"^done$")).wait_for(timeout=60_000)
    assert buttons(page) == [] and next_step.count() == 1


def test_an_action_no_longer_allowed_is_refused_with_the_reason_in_the_page(
    page, live_server, admin_user, fake_server
) -> None:
    dataset = make_posts("miko", 1)
    batch = batch_launch(
        dataset=dataset, pipeline="miko", endpoint=fake_endpoint(fake_server), enqueue=False
    )
    Batch.objects.filter(pk=batch.pk).update(status="paused")
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/batches/{batch.pk}/")
    assert buttons(page) == ["Resume", "Cancel"]
    # Meanwhile another admin resumed it and a worker took it: the page still offers Resume.
    Batch.objects.filter(pk=batch.pk).update(
        status="running", runner="elsewhere", heartbeat_at=timezone.now() + timedelta(minutes=1)
    )
    page.click("button:has-text('Resume')")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "is running: its worker reported" in alert.inner_text()
    assert page.inner_text("#batch-status") == "running"
    assert buttons(page) == ["Pause", "Cancel"]
    assert Batch.objects.get(pk=batch.pk).runner == "elsewhere"


def stage_selects(page) -> list[str]:
    """The ids of the stage menus a person sees."""
    return [
        select.get_attribute("id")
        for select in page.locator("select[id^='id_stage_']").all()
        if select.is_visible()
    ]


def expected(pipeline: str) -> list[str]:
    return [f"id_stage_{pipeline}_{stage.name}" for stage in get_pipeline(pipeline).stages]


def test_the_form_shows_miko_and_only_the_chosen_pipelines_stages(
    page, live_server, admin_user, fake_server, worker
) -> None:
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    fake_endpoint(fake_server, name="vision")
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/batches/new/")
    assert page.input_value("#id_pipeline") == "miko"
    assert stage_selects(page) == expected("miko")

    # From the keyboard: choose cotpd in the pipeline menu, then Tab reaches its stages only.
    page.focus("#id_pipeline")
    page.keyboard.type("cotpd")
    assert page.input_value("#id_pipeline") == "cotpd"
    assert stage_selects(page) == expected("cotpd")
    assert serious_violations(page) == []
    focused = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.append(
            page.evaluate("() => document.activeElement.id || document.activeElement.textContent")
        )
    assert not [name for name in focused if name.startswith("id_stage_miko")]
    assert expected("cotpd")[0] in focused

    page.select_option("#id_dataset", "miko")
    page.select_option("#id_endpoint", "fake")
    page.select_option("#id_stage_cotpd_caption", "vision")
    page.click("button:has-text('Launch')")
    page.wait_for_url("**/batches/*/")
    batch = Batch.objects.get()
    assert batch.pipeline == "cotpd" and list(batch.stage_endpoints) == ["caption"]
    page.locator("#batch-status").filter(has_text="done").wait_for(timeout=30_000)


def test_the_form_works_without_javascript(browser, live_server, admin_user, fake_server, worker):
    make_posts("miko", 1)
    fake_endpoint(fake_server)
    fake_endpoint(fake_server, name="vision")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        browser_login(page, live_server, "ada")
        page.goto(f"{live_server.url}/batches/new/")
        assert stage_selects(page) == expected("miko")
        page.select_option("#id_dataset", "miko")
        page.select_option("#id_pipeline", "cotpd")
        page.select_option("#id_endpoint", "fake")
        page.click('button:has-text("Show the chosen pipeline\'s stages")')
        assert stage_selects(page) == expected("cotpd")
        assert page.input_value("#id_endpoint") == "fake"  # what was filled in stays
        assert page.locator(".error").count() == 0
        page.select_option("#id_stage_cotpd_caption", "vision")
        page.click("button:has-text('Launch')")
        page.wait_for_url("**/batches/*/")
        batch = Batch.objects.get()
        assert batch.pipeline == "cotpd" and list(batch.stage_endpoints) == ["caption"]
        # Without JavaScript the page does not poll: wait for the worker, then reload.
        wait_for(lambda: Batch.objects.get().is_finished, 30, "the batch to finish")
        page.reload()
        assert page.inner_text("#batch-status") == "done"
    finally:
        context.close()
