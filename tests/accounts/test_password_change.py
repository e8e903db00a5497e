"""Every signed-in user changes their own password on a page of ours (issue 13, point 6), and its
check of the old password is throttled like a login (point 1: every door that takes a password)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.helpers import PASSWORD, browser_login

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another-horse-battery-staple"
URL = "/accounts/password/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _change(client, old: str, new: str = NEW_PASSWORD):
    return client.post(URL, {"old_password": old, "new_password1": new, "new_password2": new})


def test_an_annotator_changes_their_password(annotator_client, annotator) -> None:
    page = annotator_client.get(URL)
    assert page.status_code == 200
    assert b'name="old_password"' in page.content
    response = _change(annotator_client, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/accounts/profile/"
    # Still signed in, and told so.
    profile = annotator_client.get("/accounts/profile/")
    assert profile.status_code == 200 and b"Your password was changed." in profile.content
    annotator.refresh_from_db()
    assert annotator.check_password(NEW_PASSWORD)
    assert Client().login(username="anna", password=NEW_PASSWORD)


def test_the_page_is_linked_from_the_navigation(annotator_client, admin_client) -> None:
    for client in (annotator_client, admin_client):
        assert b'href="/accounts/password/"' in client.get("/accounts/profile/").content


def test_anonymous_is_sent_to_login(client) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_wrong_old_password_or_weak_new_one_changes_nothing(annotator_client, annotator) -> None:
    wrong = _change(annotator_client, "not-it")
    assert (
        wrong.status_code == 200 and b"Your old password was entered incorrectly" in wrong.content
    )
    weak = _change(annotator_client, PASSWORD, new="password")
    assert weak.status_code == 200 and b"too common" in weak.content
    annotator.refresh_from_db()
    assert annotator.check_password(PASSWORD)


def test_guessing_the_old_password_is_throttled_with_the_logins(
    annotator_client, annotator, settings
) -> None:
    """A stolen session must not become unlimited guesses at the password it does not know."""
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        _change(annotator_client, "guess")
    refused = _change(annotator_client, PASSWORD)
    assert b"Too many failed logins" in refused.content
    annotator.refresh_from_db()
    assert annotator.check_password(PASSWORD)
    # One count with the login doors: the API token refuses the right password too.
    response = Client().post("/api/auth/token/", {"username": "anna", "password": PASSWORD})
    assert response.status_code == 429


def test_the_django_admin_password_change_is_throttled(admin_client, admin_user, settings) -> None:
    settings.LOGIN_FAILURE_LIMIT = 3
    url = "/admin/password_change/"
    assert admin_client.get(url).status_code == 200
    for _ in range(3):
        admin_client.post(
            url,
            {"old_password": "guess", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        )
    refused = admin_client.post(
        url,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert refused.status_code == 200 and b"Too many failed logins" in refused.content
    admin_user.refresh_from_db()
    assert admin_user.check_password(PASSWORD)


def test_the_django_admin_password_change_works(admin_client, admin_user) -> None:
    response = admin_client.post(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/admin/password_change/done/"
    assert get_user_model().objects.get(pk=admin_user.pk).check_password(NEW_PASSWORD)


@pytest.mark.browser
def test_changing_the_password_in_the_browser(page, live_server, annotator) -> None:
    browser_login(page, live_server, "anna")
    page.click("nav >> text=Password")
    page.fill("#id_old_password", PASSWORD)
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.press("#id_new_password2", "Enter")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/accounts/profile/")
    assert "Your password was changed." in page.inner_text("main")
    annotator.refresh_from_db()
    assert annotator.check_password(NEW_PASSWORD)
