"""Fixtures shared by every test: users, logged-in clients, and a real headless Chromium."""

import os
import shutil
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import user_create_admin, user_create_annotator

# Playwright's sync API runs an event loop in the test thread; the ORM calls tests make around it
# are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct-horse-battery"


def pytest_collection_modifyitems(config, items) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "psql"))
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_pg)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    yield
    cache.clear()


@pytest.fixture
def admin_user(db):
    return user_create_admin(username="ada", password=PASSWORD)


@pytest.fixture
def annotator(db):
    return user_create_annotator(username="anna", password=PASSWORD)


@pytest.fixture
def other_annotator(db):
    return user_create_annotator(username="otto", password=PASSWORD)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def annotator_client(client, annotator):
    client.force_login(annotator)
    return client


@pytest.fixture
def admin_api(admin_user) -> APIClient:
    api = APIClient()
    api.force_authenticate(admin_user)
    return api


@pytest.fixture
def annotator_api(annotator) -> APIClient:
    api = APIClient()
    api.force_authenticate(annotator)
    return api


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright. Never a downloaded browser.

    Module-scoped: Playwright's sync API keeps an event loop running in the test thread while it
    is open, which would break later tests that call `asyncio.run`.
    """
    if not shutil.which(CHROMIUM):
        if os.environ.get("DISTILLERY_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def browser_login(page, live_server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
