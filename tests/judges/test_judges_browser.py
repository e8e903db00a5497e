"""In Chromium: an admin launches a judge from the keyboard, watches it finish live, and reads how
it agrees with the annotators, on the run page and the campaign's judges page."""

import pytest

from judges.models import JudgeRun
from tests.factories import annotators, campaign_create, fake_endpoint, posts_with_items, rate
from tests.helpers import browser_login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fast_retries"),
]


def test_launch_a_judge_and_read_its_agreement(
    page, live_server, admin_user, fake_server, judge_worker
) -> None:
    fake_server.latency = 0.05
    campaign = campaign_create(name="browsed", questions=("plausibility",))
    items = posts_with_items(campaign, posts=4, kinds=["xIntent", "xWant"])
    rate(campaign, items, "plausibility", annotators(2), [[1, 2, 3, 4, 5, 4, 2, 3]] * 2)
    fake_endpoint(fake_server, concurrency=1)
    browser_login(page, live_server, "ada")

    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    page.click("text=LLM judges: how they agree with the annotators")
    page.click("text=Launch a judge")
    assert page.input_value("#id_campaign") == str(campaign.pk)
    page.focus("#id_endpoint")
    page.keyboard.press("ArrowDown")  # the first endpoint: "fake"
    page.focus("button:has-text('Launch')")
    page.keyboard.press("Enter")
    page.wait_for_url("**/judges/*/")
    run = JudgeRun.objects.get()
    assert run.launched_by == admin_user and run.endpoint.name == "fake"

    page.wait_for_selector("#run-status:has-text('done')", timeout=30_000)
    assert page.inner_text("#ratings-done") == "8"
    assert page.inner_text("#ratings-failed") == "0"
    page.reload()
    agreement = page.inner_text("section[aria-labelledby=agreement-heading]")
    assert "8 items of 4 posts rated by the judge and by people" in agreement
    assert "Alpha, people and the judge" in agreement and "Precision" in agreement

    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/judges/")
    assert f"Judge run {run.pk}" in page.inner_text("main")
    assert "Mean absolute error" in page.inner_text("main")
