"""In Chromium (issue 14): an endpoint on a closed port is not saved without a word; the page
says why, tests the connection on request, and saves anyway only when asked."""

import socket

import pytest

from generation.models import Endpoint
from tests.helpers import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_is_refused_with_the_reason(
    page, live_server, admin_user, fake_server
) -> None:
    port = _closed_port()
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/endpoints/new/")
    page.fill("#id_name", "vllm")
    page.fill("#id_base_url", f"http://127.0.0.1:{port}/v1")
    page.fill("#id_model", "fake-model")
    page.click("button:has-text('Save')")
    error = page.inner_text("#endpoint-errors")
    assert f"Connection refused at 127.0.0.1:{port}" in error
    assert "Save without a working connection" in error
    assert not Endpoint.objects.exists()
    assert not _serious_accessibility_findings(page)
    # The values typed are kept; pointing at a running server and testing says it works.
    page.fill("#id_base_url", fake_server.base_url)
    page.click("button:has-text('Test connection')")
    assert "Connection works." in page.inner_text("#connection-check")
    assert f"Connected to 127.0.0.1:{fake_server.port}" in page.inner_text("#connection-check")
    assert not Endpoint.objects.exists()
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/endpoints/")
    assert "Endpoint vllm added. Connected to" in page.inner_text("main")


def test_saving_without_a_working_connection_is_a_choice(page, live_server, admin_user) -> None:
    port = _closed_port()
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/endpoints/new/")
    page.fill("#id_name", "later")
    page.fill("#id_base_url", f"http://127.0.0.1:{port}/v1")
    page.fill("#id_model", "m")
    page.click("button:has-text('Test connection')")
    assert "Connection failed." in page.inner_text("#connection-check")
    page.focus("#id_save_without_connection")  # from the keyboard: tick, then Save
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/endpoints/")
    assert "Endpoint later added without testing its connection." in page.inner_text("main")
    assert Endpoint.objects.get().base_url == f"http://127.0.0.1:{port}/v1"


def _serious_accessibility_findings(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [v["id"] for v in found if v["impact"] in ("serious", "critical")]
