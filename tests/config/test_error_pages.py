"""403, 404 and 500 (issue 14): the site's pages, with the navigation and a way back, with DEBUG
off as in production; JSON under /api/."""

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client, RequestFactory
from django.utils.functional import SimpleLazyObject

from config.error_pages import server_error
from tests.helpers import browser_login

pytestmark = pytest.mark.urls("tests.config.error_urls")


def test_debug_is_off():
    assert settings.DEBUG is False


def test_pages_are_the_sites_own(admin_client, annotator):
    missing = admin_client.get("/no-such-page/")
    assert missing.status_code == 404
    html = missing.content.decode()
    assert "<h1>Page not found</h1>" in html and "<code>/no-such-page/</code>" in html
    assert 'href="/datasets/"' in html and "Back to the start page" in html
    annotator_client = Client()
    annotator_client.force_login(annotator)
    denied = annotator_client.get("/datasets/")
    assert denied.status_code == 403
    html = denied.content.decode()
    assert "You cannot open this page" in html and "Only admins may open this page." in html
    assert 'href="/annotate/"' in html and 'href="/datasets/"' not in html


def test_server_error_page(admin_user):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    response = client.get("/fail/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "<h1>Server error</h1>" in html and 'href="/datasets/"' in html


def test_server_error_page_without_a_database():
    """Drawing the page reads the user; with the database gone, a plain page still answers."""

    def down():
        raise OperationalError("the database is down")

    request = RequestFactory().get("/datasets/")
    request.user = SimpleLazyObject(down)
    response = server_error(request)
    assert response.status_code == 500
    assert b"<h1>Server error</h1>" in response.content and b"href='/'" in response.content


def test_api_answers_stay_json(annotator_client):
    missing = annotator_client.get("/api/no-such-thing/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}
    client = Client(raise_request_exception=False)
    failed = client.get("/api/fail/")
    assert failed.status_code == 500 and failed.json() == {"detail": "Server error."}
    denied = annotator_client.get("/api/datasets/")
    assert denied.status_code == 403 and "detail" in denied.json()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_error_pages_in_the_browser(page, live_server, admin_user, annotator):
    browser_login(page, live_server, "anna")
    response = page.goto(f"{live_server.url}/datasets/")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "You cannot open this page"
    assert page.get_by_role("navigation", name="Main").get_by_text("My tasks").is_visible()
    page.get_by_role("link", name="Back to the start page").click()
    page.wait_for_url(f"{live_server.url}/annotate/")

    page.context.clear_cookies()
    browser_login(page, live_server, "ada")
    response = page.goto(f"{live_server.url}/datasets/999999/")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert page.get_by_role("navigation", name="Main").get_by_text("Datasets").is_visible()
    response = page.goto(f"{live_server.url}/fail/")
    assert response.status == 500
    assert page.locator("h1").inner_text() == "Server error"
    page.get_by_role("navigation", name="Main").get_by_text("Campaigns").click()
    page.wait_for_url(f"{live_server.url}/campaigns/")


def test_a_form_refused_for_its_csrf_token_gets_the_sites_page(admin_user):
    """Django's own CSRF answer is a bare page for developers; the site's says what to do."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    refused = client.post("/endpoints/new/", {"name": "x"})
    assert refused.status_code == 403
    html = refused.content.decode()
    assert "<h1>This form could not be sent</h1>" in html
    assert "reload the page and send the form again" in html
    assert 'href="/datasets/"' in html and "an admin can give you access" not in html
    api = client.post("/api/datasets/", {"name": "x"})
    assert api.status_code == 403 and api.json()["detail"].startswith("CSRF")
