import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_nul_in_a_query_is_refused_on_pages_and_api(admin_client):
    page = admin_client.get("/datasets/", {"q": "a\x00b"})
    assert page.status_code == 400
    api = admin_client.get("/api/datasets/", {"search": "\x00"})
    assert api.status_code == 400
    assert api.json() == {"detail": "NUL characters are not allowed in requests."}


def test_nul_in_a_json_or_form_body_is_refused(admin_client):
    json_body = admin_client.post(
        "/api/campaigns/", data='{"name": "a\\u0000"}', content_type="application/json"
    )
    assert json_body.status_code == 400
    form_body = admin_client.post(
        "/api/campaigns/", data="name=a%00", content_type="application/x-www-form-urlencoded"
    )
    assert form_body.status_code == 400


def test_ordinary_requests_pass(admin_client):
    assert admin_client.get("/datasets/", {"q": "plain words"}).status_code == 200


def _directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def test_every_page_has_a_content_security_policy_of_this_site_only(admin_client):
    for response in (Client().get("/accounts/login/"), admin_client.get("/datasets/")):
        directives = _directives(response)
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"]  # no inline scripts, no eval
        assert directives["style-src"] == ["'self'"]
        assert directives["img-src"] == ["'self'", "data:"]
        assert directives["connect-src"] == ["'self'"]
        assert directives["object-src"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"]


def test_media_files_keep_their_own_stricter_policy(admin_client, settings):
    (settings.MEDIA_ROOT / "posts").mkdir(parents=True)
    (settings.MEDIA_ROOT / "posts" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    response = admin_client.get("/media/posts/x.png")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "default-src 'none'; img-src 'self'; sandbox"


def test_authenticated_pages_and_every_api_answer_are_not_stored(admin_client, admin_api):
    anonymous = Client()
    answers = {
        "page": admin_client.get("/datasets/"),
        "partial": admin_client.get("/datasets/", headers={"HX-Request": "true"}),
        "api": admin_api.get("/api/datasets/"),
        "api error": admin_api.get("/api/datasets/999999/"),
        "api anonymous": anonymous.get("/api/datasets/"),
    }
    for name, response in answers.items():
        assert "no-store" in response.get("Cache-Control", ""), name
    # Anonymous pages that hold nothing private may be cached as usual.
    assert "no-store" not in anonymous.get("/healthz").get("Cache-Control", "")


def test_json_answers_carry_no_policy_but_the_api_docs_do(admin_client):
    # A policy governs what a document loads: the API's JSON loads nothing (and building the
    # policy for each answer slowed the annotators' calls); the Swagger page is a document.
    assert "Content-Security-Policy" not in admin_client.get("/api/datasets/")
    assert _directives(admin_client.get("/api/docs/"))["script-src"] == ["'self'"]
