"""axe-core on the main pages, as admin and annotator, at a desktop and a phone size, and on a page
showing a flash message.

No "serious" or "critical" violation is allowed, nor a page wider than the window (reflow); the
lesser violations are printed, so they are seen (run with `-s`) without failing the suite. axe-core
comes from the `axe-playwright-python` package (its own copy of `axe.min.js`), never from a CDN.
"""

import pytest

from students.models import EvaluationRun, StudentTraining
from tests.helpers import browser_login
from tests.system.world import World, build_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
BLOCKING = {"serious", "critical"}


def admin_pages(world: World) -> dict[str, str]:
    return {
        "datasets": "/datasets/",
        "dataset": f"/datasets/{world.dataset.pk}/",
        "batch form": "/batches/new/",
        "batch": f"/batches/{world.batch.pk}/",
        "campaigns": "/campaigns/",
        "campaign": f"/campaigns/{world.campaign.pk}/",
        "campaign form": "/campaigns/new/",
        "agreement": f"/campaigns/{world.campaign.pk}/evaluation/",
        "export": f"/exports/{world.export.pk}/",
        "not found": "/no-such-page/",
    }


def later_pages(world: World) -> dict[str, str]:
    """Pages of the apps above evaluation (leaderboard, runs, students, comparisons, judges,
    critics), and the upload form with the Split field students add to it."""
    run = EvaluationRun.objects.filter(dataset=world.dataset).get()
    comparison = world.comparison
    return {
        "leaderboard": f"/datasets/{world.dataset.pk}/leaderboard/",
        "evaluation run": f"/evaluation-runs/{run.pk}/",
        "evaluation run form": f"/datasets/{world.dataset.pk}/evaluation-runs/new/",
        "students": "/student-trainings/",
        "student training": f"/student-trainings/{StudentTraining.objects.get().pk}/",
        "comparison": f"/comparisons/{comparison.pk}/",
        "comparison form": f"/datasets/{comparison.dataset_id}/comparisons/new/",
        "judges": "/judges/",
        "judge run": f"/judges/{world.judge_run.pk}/",
        "campaign judges": f"/campaigns/{world.campaign.pk}/judges/",
        "critics": "/critics/",
        "critic": f"/critics/{world.critic.pk}/",
        "upload form": f"/imports/new/?dataset={world.dataset.name}",  # with its Split
    }


@pytest.fixture
def world(admin_user, annotator, other_annotator) -> World:
    return build_world(admin=admin_user, annotator=annotator, outsider=other_annotator)


def violations(page) -> list[dict]:
    from axe_playwright_python.sync_playwright import Axe

    return Axe().run(page).response["violations"]


def describe(found: list[dict]) -> str:
    return "\n".join(
        f"  [{v['impact']}] {v['id']}: {v['help']} — "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in found
    )


def check(page, url: str, name: str) -> list[str]:
    """Open `url` and return the blocking violations, described; print the others."""
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    # The page itself, not a login page it was sent to (which would pass in its place).
    assert "/accounts/login/" not in page.url or "login" in name, (name, page.url)
    assert response.status == (404 if name.startswith("not found") else 200), (name, response)
    found = violations(page)
    minor = [v for v in found if v["impact"] not in BLOCKING]
    if minor:
        print(f"\n{name}: minor accessibility findings\n{describe(minor)}")
    blocking = [v for v in found if v["impact"] in BLOCKING]
    failures = [f"{name}:\n{describe(blocking)}"] if blocking else []
    # Reflow (WCAG 1.4.10): the page never scrolls sideways.
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > page.viewport_size["width"]:
        failures.append(f"{name}: the page is {width} px wide: it scrolls sideways")
    return failures


@pytest.mark.parametrize("size", SIZES)
def test_main_pages_have_no_serious_violations(browser, live_server, world, size):
    width, height = SIZES[size]
    failures: list[str] = []
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        failures += check(page, f"{live_server.url}/accounts/login/", f"login ({size})")
        browser_login(page, live_server, "ada")
        for name, path in admin_pages(world).items():
            failures += check(page, live_server.url + path, f"{name} ({size})")
        page.context.clear_cookies()
        browser_login(page, live_server, "anna")
        failures += check(
            page, f"{live_server.url}/annotate/{world.campaign.pk}/", f"rating page ({size})"
        )
    finally:
        context.close()
    assert not failures, "serious or critical accessibility violations:\n" + "\n".join(failures)


@pytest.mark.parametrize("size", SIZES)
def test_later_pages_have_no_serious_violations(browser, live_server, world, size):
    width, height = SIZES[size]
    failures: list[str] = []
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        browser_login(page, live_server, "ada")
        for name, path in later_pages(world).items():
            failures += check(page, live_server.url + path, f"{name} ({size})")
    finally:
        context.close()
    assert not failures, "serious or critical accessibility violations:\n" + "\n".join(failures)


def test_a_page_showing_a_message_has_no_serious_violations(page, live_server, world):
    """Right after adding an endpoint, the endpoints page says so in its live region."""
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/endpoints/new/")
    page.fill("#id_name", "fresh")
    page.fill("#id_base_url", "http://127.0.0.1:9/v1")
    page.fill("#id_model", "m")
    page.check("#id_save_without_connection")
    page.click("main button.primary")
    page.wait_for_load_state("networkidle")
    status = page.locator("[role=status]")
    assert "Endpoint fresh added" in status.inner_text(), page.content()
    assert status.locator("li").count() == 1
    found = [v for v in violations(page) if v["impact"] in BLOCKING]
    assert not found, describe(found)
