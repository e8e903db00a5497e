import pytest

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
