import pytest
from django.urls import reverse

from tests.helpers import PASSWORD, browser_login

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_login(client):
    response = client.get("/datasets/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_anonymous_api_is_refused(client):
    response = client.get("/api/schema/")
    assert response.status_code in (401, 403)


def test_login_with_good_and_bad_password(client, annotator):
    bad = client.post(reverse("accounts:login"), {"username": "anna", "password": "nope"})
    assert bad.status_code == 200
    assert b"Please enter a correct username and password" in bad.content
    good = client.post(reverse("accounts:login"), {"username": "anna", "password": PASSWORD})
    assert good.status_code == 302


def test_logout_needs_post(admin_client):
    assert admin_client.post(reverse("accounts:logout")).status_code == 302
    assert admin_client.get("/datasets/").status_code == 302


def test_annotator_refused_django_admin(annotator_client):
    response = annotator_client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_sees_schema_and_docs(admin_client):
    schema = admin_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"openapi" in schema.content
    docs = admin_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_token_authentication(client, admin_user):
    response = client.post("/api/auth/token/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    schema = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Token {token}")
    assert schema.status_code == 200
    refused = client.get("/api/schema/", HTTP_AUTHORIZATION="Token not-a-token")
    assert refused.status_code == 401


def test_token_refused_for_bad_credentials(client, admin_user):
    response = client.post("/api/auth/token/", {"username": "ada", "password": "wrong"})
    assert response.status_code == 400


def test_healthz_is_public(client):
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.browser
def test_login_in_the_browser(page, live_server, admin_user):
    browser_login(page, live_server, "ada")
    assert "/accounts/login/" not in page.url
    assert page.locator(".who").inner_text() == "ada"


def test_login_is_throttled_after_repeated_failures(client, annotator, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post(reverse("accounts:login"), {"username": "anna", "password": "nope"})
    blocked = client.post(reverse("accounts:login"), {"username": "anna", "password": PASSWORD})
    assert blocked.status_code == 200
    assert b"Too many failed logins" in blocked.content
    assert "_auth_user_id" not in client.session


def test_token_is_throttled_after_repeated_failures(client, annotator, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        assert (
            client.post("/api/auth/token/", {"username": "anna", "password": "x"}).status_code
            == 400
        )
    blocked = client.post("/api/auth/token/", {"username": "anna", "password": PASSWORD})
    assert blocked.status_code == 429
