"""API tokens expire, end with a new password, and can be revoked (issue 13, point 6).

Run on PostgreSQL too (DATABASE_URL): token authentication reads the token there with a prepared
statement of its own (accounts/authentication.py)."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.services import user_create_annotator
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fast_passwords(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _obtain(username: str = "anna", password: str = PASSWORD) -> dict:
    response = APIClient().post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _works(key: str) -> bool:
    response = APIClient().get("/api/campaigns/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def _age(key: str, hours: float) -> None:
    Token.objects.filter(key=key).update(created=timezone.now() - timedelta(hours=hours))


def test_a_token_says_when_it_expires(annotator, settings) -> None:
    settings.DISTILLERY_TOKEN_TTL_HOURS = 24
    body = _obtain()
    expires = parse_datetime(body["expires"])
    assert timedelta(hours=23, minutes=59) < expires - timezone.now() <= timedelta(hours=24)
    assert _works(body["token"])
    # Asked again while it lasts: the same token (every client of the account shares it).
    assert _obtain()["token"] == body["token"]


def test_an_expired_token_is_refused_and_a_login_issues_a_new_one(annotator, settings) -> None:
    settings.DISTILLERY_TOKEN_TTL_HOURS = 2
    old = _obtain()["token"]
    _age(old, hours=1.9)
    assert _works(old)
    _age(old, hours=2.1)
    response = APIClient().get("/api/campaigns/", HTTP_AUTHORIZATION=f"Token {old}")
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired."}
    new = _obtain()["token"]
    assert new != old and _works(new) and not _works(old)


def test_revoke_ends_the_token(annotator) -> None:
    key = _obtain()["token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.post("/api/auth/token/revoke/").status_code == 204
    assert not _works(key)
    assert not Token.objects.filter(user=annotator).exists()
    # A new login issues a new token.
    assert _works(_obtain()["token"])


def test_revoke_with_the_session(annotator_client, annotator) -> None:
    key = _obtain()["token"]
    assert annotator_client.post("/api/auth/token/revoke/").status_code == 204
    assert not _works(key)


def test_revoke_needs_a_login() -> None:
    assert APIClient().post("/api/auth/token/revoke/").status_code == 401
    assert (
        APIClient().post("/api/auth/token/revoke/", HTTP_AUTHORIZATION="Token nope").status_code
        == 401
    )


def test_a_new_password_on_the_page_ends_the_token(annotator) -> None:
    key = _obtain()["token"]
    client = Client()
    client.force_login(annotator)
    response = client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert not _works(key)
    assert _works(_obtain(password=NEW_PASSWORD)["token"])


def test_a_new_password_set_by_the_admin_ends_the_token(annotator, admin_client) -> None:
    key = _obtain()["token"]
    response = admin_client.post(
        f"/admin/auth/user/{annotator.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    assert not _works(key)


def test_a_new_password_from_the_command_line_or_a_service_ends_the_token(
    annotator, monkeypatch
) -> None:
    key = _obtain()["token"]
    user_create_annotator(username="anna", password=NEW_PASSWORD)
    assert not _works(key)
    key = _obtain(password=NEW_PASSWORD)["token"]
    monkeypatch.setattr("getpass.getpass", lambda prompt="": PASSWORD)
    call_command("changepassword", "anna", stdout=io.StringIO())
    assert not _works(key)


def test_other_users_tokens_survive_a_password_change(annotator, other_annotator) -> None:
    key = _obtain("otto")["token"]
    user = get_user_model().objects.get(username="anna")
    user.set_password(NEW_PASSWORD)
    user.save()
    assert _works(key)


def test_bad_token_requests_get_json_errors(annotator) -> None:
    api = APIClient()
    for body in (["anna"], {"username": ["anna"], "password": PASSWORD}, {"username": "anna"}):
        response = api.post("/api/auth/token/", body, format="json")
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
    wrong = api.post("/api/auth/token/", {"username": "anna", "password": "x"}, format="json")
    assert wrong.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
