"""The comparison pages in Chromium: from the leaderboard to the form, two runs ticked, the report
with its plot once people have rated; no serious accessibility finding, no sideways scrolling on a
phone."""

import pytest
from axe_playwright_python.sync_playwright import Axe

from annotation.models import Question, Rating
from comparisons.models import Comparison
from generation.models import KnowledgeItem
from tests.comparisons.runs import answer, make_run
from tests.factories import annotators
from tests.helpers import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def serious(page) -> list[str]:
    found = Axe().run(page).response["violations"]
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_compare_two_runs_from_the_leaderboard(page, live_server, admin_user, annotator, reference):
    dataset = reference.dataset
    posts = ["p0", "p1", "p2"]
    teacher = make_run(dataset, "teacher", [answer(p, "xWant", f"teacher on {p}") for p in posts])
    student = make_run(dataset, "student", [answer(p, "xWant", f"student on {p}") for p in posts])
    make_run(dataset, "unfinished", [], status="running")
    browser_login(page, live_server, admin_user.username)
    page.goto(f"{live_server.url}/datasets/{dataset.pk}/leaderboard/?split=test")
    page.get_by_role("link", name="Compare with people").click()
    page.wait_for_url("**/comparisons/new/?split=test")
    assert serious(page) == []
    assert "unfinished" not in page.inner_text("#id_runs_group")
    page.get_by_label(f"#{teacher.pk} teacher", exact=False).check()
    page.fill("#id_name", "blind")
    page.get_by_role("button", name="Create the comparison").click()
    # One run ticked: refused beside the runs, the form kept.
    assert "a comparison needs at least two runs" in page.inner_text("#id_runs_group")
    assert page.input_value("#id_name") == "blind"
    page.get_by_label(f"#{student.pk} student", exact=False).check()
    page.get_by_label(annotator.username, exact=True).check()
    page.get_by_role("button", name="Create the comparison").click()
    page.wait_for_url("**/comparisons/*/")
    comparison = Comparison.objects.get()
    assert "3 posts compared" in page.inner_text("main")
    assert "Campaign blind created: 3 posts to rate blind." in page.inner_text(".messages")

    coders = annotators(2)
    for question in Question.objects.filter(campaign=comparison.campaign):
        for item in KnowledgeItem.objects.filter(batch_links__batch=comparison.batch):
            value = 5 if item.text.startswith("teacher") else 2
            for coder in coders:
                Rating.objects.create(
                    campaign=comparison.campaign, item=item, question=question,
                    annotator=coder, value=value,
                )  # fmt: skip
    page.reload()
    plausibility = page.locator("#question-plausibility")
    assert "5.000" in plausibility.inner_text() and "2.000" in plausibility.inner_text()
    assert plausibility.locator("svg circle").count() == 2
    assert serious(page) == []
    page.set_viewport_size({"width": 390, "height": 844})
    assert fits(page), "the report scrolls sideways on a phone"
    page.get_by_role("link", name="Campaign blind").click()
    page.get_by_role("link", name="Blind comparison of runs: each run's ratings").click()
    page.wait_for_url(f"**/comparisons/{comparison.pk}/")
