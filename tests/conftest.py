"""Fixtures shared by every test: users, logged-in clients, a real headless Chromium, and the fake
OpenAI-compatible server with its call log. pytest finds them by name; never import this module
(test data lives in `tests/factories.py`, other helpers in `tests/helpers.py`)."""

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import user_create_admin, user_create_annotator
from generation.fake_openai import FakeOpenAIServer
from tests.helpers import PASSWORD

# Playwright's sync API runs an event loop in the test thread; the ORM calls tests make around it
# are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _database() -> str:
    """Which database the tests run on, from the settings (DATABASE_URL, or SQLite without it)."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" in database["ENGINE"]:
        host = f"{database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}"
        return f"PostgreSQL at {host} (test database test_{database['NAME']})"
    return "SQLite (in memory): the PostgreSQL-only tests are skipped; set DATABASE_URL"


def pytest_report_header(config) -> str:
    return f"database: {_database()}"


def pytest_terminal_summary(terminalreporter) -> None:
    terminalreporter.write_line(f"database: {_database()}")


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
    """Each test starts and leaves with an empty cache (login throttling counts among others)."""
    cache.clear()
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


# --- the fake OpenAI-compatible server -----------------------------------------------------------


class CallLog:
    """Records every answered call's (stage, prompt) on the fake server: a key is called once."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str | None, str]] = Counter()

    def __call__(self, stage: str | None, body: dict[str, Any]) -> None:
        self.calls[(stage, json.dumps(body.get("messages"), sort_keys=True))] += 1
        return None

    def repeated(self) -> list[tuple[str | None, str]]:
        return [key for key, count in self.calls.items() if count > 1]


@pytest.fixture
def fast_retries(settings) -> None:
    settings.DISTILLERY_RETRY_BASE_SECONDS = 0.01
    settings.DISTILLERY_RETRY_MAX_SECONDS = 0.05
    settings.DISTILLERY_FLUSH_SECONDS = 0.05


@pytest.fixture
def call_log() -> CallLog:
    return CallLog()


@pytest.fixture
def fake_server(call_log) -> Iterator[FakeOpenAIServer]:
    """The fake server on a free port of 127.0.0.1, answering from the sample outputs."""
    with FakeOpenAIServer(latency=0.01, answers=call_log, retry_after=0.01) as server:
        yield server
