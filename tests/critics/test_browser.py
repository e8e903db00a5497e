"""The critic pages in Chromium: trained from the keyboard, the metrics shown once the worker is
done, the next round ordered with a key press, and no serious accessibility finding (axe-core)."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from critics.models import Critic
from critics.tasks import critic_train_task
from tests.factories import signal_campaign
from tests.helpers import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def serious(page) -> list[str]:
    found = Axe().run(page).response["violations"]
    return [f"{v['id']}: {v['help']}" for v in found if v["impact"] in ("serious", "critical")]


def test_train_and_order_from_the_keyboard(page, live_server, admin_user):
    campaign = signal_campaign(name="signal", posts=30, rated_posts=20)
    browser_login(page, live_server, admin_user.username)
    page.goto(f"{live_server.url}/critics/")
    assert serious(page) == []
    page.select_option("#id_campaign", str(campaign.pk))
    page.fill("#id_threshold", "3.5")
    page.fill("#id_name", "keys")
    page.focus("#id_name")
    page.keyboard.press("Enter")
    page.wait_for_url("**/critics/*/")
    critic = Critic.objects.get(name="keys")
    assert "queued" in page.inner_text("#critic-progress")
    critic_train_task(critic.pk)  # what the worker runs; the page polls until it is done
    expect(page.locator("#critic-progress")).to_contain_text("120 of 120 items", timeout=20_000)
    page.reload()
    assert "ROC-AUC" in page.inner_text("main") and serious(page) == []
    page.get_by_role("button", name="Order the next round by this critic's uncertainty").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".messages")).to_contain_text("ordered by uncertainty")
