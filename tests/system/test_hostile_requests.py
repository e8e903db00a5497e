"""Hostile requests: odd query strings on every page and every read of the API never give a server
error, and the login page never sends anyone to another site."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.helpers import browser_login
from tests.system.routes import CONVERTER, fill, is_api, url_patterns
from tests.system.world import World, build_world

pytestmark = pytest.mark.django_db

# Paging, search, keyset and filter parameters with what a fuzzer or a curious person would send.
QUERIES = [
    "page=abc&search=%25&q=%25&after=x&level=x&format=x",
    "page=-1&after=-5&search=%27%22%5C%3B--&q=%27%22%5C",
    "page=99999999999999999999&after=99999999999999999999&limit=-1&offset=x",
    "search=%00&q=%00&page=%00&after=%00&level=%00",
    "search=a%00b&q=a%00b",
    "search=" + "a" * 5000 + "&page=0&page=2&ordering=-nope",
]


@pytest.fixture
def world(admin_user, annotator, other_annotator) -> World:
    return build_world(admin=admin_user, annotator=annotator, outsider=other_annotator)


def _server_errors(client, urls: list[str]) -> list[str]:
    errors = []
    for url in urls:
        # The Django admin has no htmx partials; its changelists read q, o and p.
        variants = ({},) if url.startswith("/admin/") else ({}, {"HX-Request": "true"})
        for query in QUERIES:
            for headers in variants:
                response = client.get(f"{url}?{query}", headers=headers)
                if response.status_code >= 500:
                    errors.append(f"{url}?{query[:60]} {headers}: {response.status_code}")
    return errors


def test_odd_query_strings_never_give_a_server_error(world, admin_user, annotator) -> None:
    pages = [
        fill(route, world)
        for key, _, route in url_patterns()
        if not is_api(route) and key not in ("accounts:logout", "admin:logout")
    ]
    api = [
        fill(route, world)
        for _, _, route in url_patterns()
        if is_api(route) and "auth/token" not in route
    ]
    errors = []
    for user in (admin_user, annotator):
        client = Client(raise_request_exception=False)
        client.force_login(user)
        # Annotators are turned away from the Django admin before it reads the query.
        errors += _server_errors(
            client, pages if user.is_staff else [u for u in pages if not u.startswith("/admin/")]
        )
        token, _ = Token.objects.get_or_create(user=user)
        api_client = APIClient(raise_request_exception=False)
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        errors += _server_errors(api_client, api)
    assert not errors, "\n".join(errors)


# Annotation's and evaluation's routes (issue 13, point 4); ids no database column can hold.
_RATING_ROUTES = ("annotate/", "campaigns/", "exports/", "evaluation/", "api/campaigns/",
                  "api/assignments/", "api/exports/")  # fmt: skip
CRAFTED_IDS = [str(10**30), str(2**63), "%C2%B2", "0" * 40]


def test_crafted_ids_in_rating_and_export_urls_are_never_a_server_error(world, admin_user):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(admin_user)
    errors = []
    for _, _, route in url_patterns():
        if not route.startswith(_RATING_ROUTES) or "<" not in route:
            continue
        for crafted in CRAFTED_IDS:
            url = "/" + CONVERTER.sub(crafted, route)
            caller = api if is_api(route) else client
            for method in (caller.get, caller.post):
                status = method(url).status_code
                if status != 404:
                    errors.append(f"{method.__name__} {url}: {status}")
    for query in ("campaign=%C2%B2", f"campaign={10**30}", f"campaign={2**63}"):
        status = api.get(f"/api/exports/?{query}").status_code
        if status != 400:
            errors.append(f"/api/exports/?{query}: {status}")
    page = fill("campaigns/<id:pk>/evaluation/items/", world)
    for query in ("after=%C2%B2", f"after={10**30}"):
        status = client.get(f"{page}?{query}").status_code
        if status != 200:
            errors.append(f"{page}?{query}: {status}")
    assert not errors, "\n".join(errors)


@pytest.mark.postgres  # SQLite takes the NUL
def test_a_nul_in_the_dataset_search_is_not_a_server_error(world, admin_client):
    admin_client.raise_request_exception = False
    for headers in ({}, {"HX-Request": "true"}):
        response = admin_client.get(f"/datasets/{world.dataset.pk}/?q=a%00b", headers=headers)
        assert response.status_code < 500
    response = admin_client.get(f"/api/datasets/{world.dataset.pk}/posts/?search=a%00b")
    assert response.status_code < 500


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example/", "javascript:alert(1)"],
)
def test_login_never_redirects_to_another_site(client, annotator, target) -> None:
    from tests.helpers import PASSWORD

    response = client.post(
        f"/accounts/login/?next={target}", {"username": "anna", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    # The logged-out page of the Django admin neither.
    response = client.post(f"/admin/logout/?next={target}")
    assert "evil.example" not in response.get("Location", "")
    assert "javascript:" not in response.get("Location", "")


@pytest.mark.postgres  # SQLite takes the NUL
def test_a_nul_in_sampling_parameters_is_refused(world, admin_client) -> None:
    admin_client.raise_request_exception = False
    poisoned = {"stop": ["\x00"]}
    endpoint = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    answers = [
        admin_client.post(
            "/api/endpoints/",
            {"name": "nul", **endpoint, "parameters": poisoned},
            content_type="application/json",
        ),
        admin_client.patch(
            f"/api/endpoints/{world.endpoint.pk}/",
            {"parameters": {"stop": "a\x00"}},
            content_type="application/json",
        ),
        admin_client.post(
            "/api/batches/",
            {
                "dataset": world.dataset.name,
                "pipeline": "miko",
                "endpoint": "fake",
                "parameters": poisoned,
            },
            content_type="application/json",
        ),  # fmt: skip
        admin_client.post(
            "/endpoints/new/",
            {"name": "nul-page", **endpoint, "concurrency": 1, "parameters": '{"stop": "\\u0000"}'},
        ),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400]


@pytest.mark.parametrize(
    "forged",
    [
        {"r-{other_item}-{question}": "3"},  # an item of another post
        {"r-{item}-{other_question}": "3"},  # a question of another campaign
        {"r-{item}-{question}": "99999999999999999999999"},
        {"r-{item}-{question}": "-1"},
        {"r-{item}-{question}": "1e3"},
        {"r-{item}-{question}-7": "3"},
        {"r-x-y": "3"},
        {"seconds": "nan"},
        {"seconds": "-1e308"},
    ],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["form", "htmx"])
def test_a_forged_rating_form_stores_nothing_wrong(world, annotator, forged, htmx) -> None:
    """The rating page's form, filled in properly and then tampered with: never a server
    error, never a rating outside the annotator's own post and the campaign's scale."""
    from annotation.models import Assignment, Rating
    from annotation.selectors import task_view

    view = task_view(assignment=world.assignment)
    question = view.questions[0].question.pk
    other_item = world.done_assignment.post.items.first().pk
    names = {
        "item": view.items[0].item.pk,
        "question": question,
        "other_item": other_item,
        "other_question": world.other_campaign.questions.first().pk,
    }
    data = {f"r-{i.item.pk}-{q.question.pk}": "3" for i in view.items for q in view.questions}
    data["seconds"] = "4.5"
    data |= {key.format(**names): value for key, value in forged.items()}
    client = Client(raise_request_exception=False)
    client.force_login(annotator)
    headers = {"HX-Request": "true"} if htmx else {}
    url = f"/annotate/{world.campaign.pk}/assignments/{world.assignment.pk}/"
    before = set(Rating.objects.values_list("pk", "value"))
    response = client.post(url, data, headers=headers)
    assert response.status_code < 500
    if forged in ({"seconds": "nan"}, {"seconds": "-1e308"}):
        world.assignment.refresh_from_db()
        assert world.assignment.status == Assignment.Status.DONE
        assert 0 <= world.assignment.seconds_spent < 3600
        return
    assert response.status_code in (200, 400)
    assert set(Rating.objects.values_list("pk", "value")) == before  # nothing stored or changed
    world.assignment.refresh_from_db()
    assert world.assignment.status == Assignment.Status.LEASED


DEEP = "[" * 100_000 + "]" * 100_000  # 200 kB of JSON nested deeper than Python recurses


def test_json_nested_too_deeply_is_refused_not_a_server_error(world, admin_user) -> None:
    anonymous = Client(raise_request_exception=False)
    admin = Client(raise_request_exception=False)
    admin.force_login(admin_user)
    answers = {
        "token": anonymous.post("/api/auth/token/", DEEP, content_type="application/json"),
        "campaigns": admin.post("/api/campaigns/", DEEP, content_type="application/json"),
        "endpoint page": admin.post(
            "/endpoints/new/",
            {
                "name": "deep",
                "backend": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "concurrency": 1,
                "parameters": DEEP,
            },
        ),  # fmt: skip
    }
    assert {name: a.status_code for name, a in answers.items()} == {
        "token": 400,
        "campaigns": 400,
        "endpoint page": 400,
    }


def _too_big(content_type: str) -> bytes:
    size = 10 * 1024 * 1024 + 1
    if content_type == "application/json":
        return b'{"name": "' + b"a" * size + b'"}'
    return b"name=" + b"a" * size


def _too_many_fields(content_type: str) -> tuple[bytes, str]:
    if content_type == "multipart/form-data":
        boundary = "fields"
        parts = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n'
            for n in range(1001)
        )
        return f"{parts}--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
    return "&".join(f"f{n}=x" for n in range(1001)).encode(), content_type


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_size_limit_gets_a_json_400_from_the_api(admin_user, content_type) -> None:
    token, _ = Token.objects.get_or_create(user=admin_user)
    body = _too_big(content_type)
    answers = {
        "token login": Client().post("/api/auth/token/", body, content_type=content_type),
        "token": Client().post(
            "/api/campaigns/",
            body,
            content_type=content_type,
            headers={"Authorization": f"Token {token.key}"},
        ),
    }
    session = Client()
    session.force_login(admin_user)
    answers["session"] = session.post("/api/campaigns/", body, content_type=content_type)
    for name, answer in answers.items():
        assert answer.status_code == 400, name
        assert answer["Content-Type"] == "application/json", name
        assert answer.json() == {
            "detail": "The request body is larger than 10485760 bytes, the most this server "
            "accepts (files sent as multipart uploads do not count)."
        }, name


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_with_too_many_fields_gets_a_json_400_from_the_api(admin_user, content_type):
    body, content_type = _too_many_fields(content_type)
    session = Client()
    session.force_login(admin_user)
    answer = session.post("/api/campaigns/", body, content_type=content_type)
    assert answer.status_code == 400
    assert answer.json() == {
        "detail": "The request has more than 1000 fields, the most this server accepts."
    }


def test_pages_refuse_such_bodies_with_an_html_400(admin_user) -> None:
    session = Client()
    session.force_login(admin_user)
    body, content_type = _too_many_fields("application/x-www-form-urlencoded")
    for answer in (
        session.post("/campaigns/new/", body, content_type=content_type),
        session.post("/campaigns/new/", _too_big(content_type), content_type=content_type),
    ):
        assert answer.status_code == 400
        assert answer["Content-Type"].startswith("text/html")


class _Tracker(BaseHTTPRequestHandler):
    """A listener standing in for another site: counts what browsers fetch from it."""

    fetched: list[str] = []

    def do_GET(self) -> None:
        _Tracker.fetched.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def tracker() -> Iterator[str]:
    _Tracker.fetched = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_outside_image_in_instructions_is_never_fetched(
    page, live_server, tracker, admin_user, annotator, other_annotator
) -> None:
    """Instructions are sanitised markdown, which keeps images: the CSP keeps them to this site."""
    world = build_world(admin=admin_user, annotator=annotator, outsider=other_annotator)
    world.campaign.instructions = (
        f'Look: <img src="{tracker}/track.png"> and ![pixel]({tracker}/pixel.png)'
    )
    world.campaign.save(update_fields=["instructions"])
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    browser_login(page, live_server, "anna")
    page.goto(f"{live_server.url}/annotate/{world.campaign.pk}/")
    page.wait_for_function("document.activeElement && document.activeElement.type === 'radio'")
    page.click("text=Instructions")
    assert page.locator(f'.instructions img[src="{tracker}/track.png"]').count() == 1
    page.wait_for_load_state("networkidle")
    # The post's own image, from this site, is shown; progress bars keep their width.
    assert page.locator("article.post img").evaluate("img => img.naturalWidth") > 0
    assert page.locator(".progress span").first.evaluate("e => e.style.width").endswith("%")

    page.context.clear_cookies()
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/campaigns/{world.campaign.pk}/")
    page.wait_for_load_state("networkidle")
    assert _Tracker.fetched == []
    assert errors == []
