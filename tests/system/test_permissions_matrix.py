"""Who may open what: anonymous, annotator, annotator of another campaign, admin × every URL.

The page URLs come from the URL resolver and the API operations from the OpenAPI schema, so a new
URL or operation is checked as soon as it exists, and fails here, by name, until it is classified
in `PAGES` or `API` below. The world (`tests.system.world`) fills every path parameter with a real
object: campaign A is anna's (and ada's), campaign B is otto's; every campaign URL names A.
"""

import re

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Campaign
from generation.models import Dataset, Post
from tests.system.routes import CONVERTER, fill, is_api, url_patterns
from tests.system.world import World, build_world, png

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "annotator", "outsider", "admin")

# What each role gets. ok: allowed (2xx, 3xx other than to a login page, 405 for a wrong method;
# for the API also 400/409/415, a refusal of the input, not of the caller). login: sent to the login
# page. admin_login: sent to the Django admin's login page. denied: 403 or 404.
# unauthorized: 401 (the API).
OK, LOGIN, ADMIN_LOGIN, DENIED, UNAUTHORIZED = "ok", "login", "admin_login", "denied", "401"
EXPECT = {
    # pages
    "public": dict(anonymous=OK, annotator=OK, outsider=OK, admin=OK),
    "signed_in": dict(anonymous=LOGIN, annotator=OK, outsider=OK, admin=OK),
    "member": dict(anonymous=LOGIN, annotator=OK, outsider=DENIED, admin=OK),
    "own_assignment": dict(anonymous=LOGIN, annotator=OK, outsider=DENIED, admin=DENIED),
    "admin": dict(anonymous=LOGIN, annotator=DENIED, outsider=DENIED, admin=OK),
    # Logging out (POST) lands on the login page, whoever you were.
    "logout": dict(anonymous=LOGIN, annotator=LOGIN, outsider=LOGIN, admin=LOGIN),
    # The Django admin sends those who are not signed in as staff back to /admin/.
    "admin_logout": dict(anonymous=OK, annotator=OK, outsider=OK, admin=LOGIN),
    # The schema and its docs are under /api/: 401 rather than a redirect.
    "api_docs": dict(anonymous=UNAUTHORIZED, annotator=OK, outsider=OK, admin=OK),
    # A post image under /media/ (test_media_files_... checks exports and uploads).
    "media": dict(anonymous=LOGIN, annotator=OK, outsider=OK, admin=OK),
    "django_admin": dict(
        anonymous=ADMIN_LOGIN, annotator=ADMIN_LOGIN, outsider=ADMIN_LOGIN, admin=OK
    ),
    # Admin URLs that need more than a path (autocomplete wants its query; view-on-site an
    # object with a public URL; the catch-all a page that exists): refused even for admins.
    "django_admin_incomplete": dict(
        anonymous=ADMIN_LOGIN, annotator=ADMIN_LOGIN, outsider=ADMIN_LOGIN, admin=DENIED
    ),
    # API operations
    "api_public": dict(anonymous=OK, annotator=OK, outsider=OK, admin=OK),
    "api_signed_in": dict(anonymous=UNAUTHORIZED, annotator=OK, outsider=OK, admin=OK),
    "api_member": dict(anonymous=UNAUTHORIZED, annotator=OK, outsider=DENIED, admin=OK),
    "api_own_assignment": dict(anonymous=UNAUTHORIZED, annotator=OK, outsider=DENIED, admin=DENIED),
    "api_admin": dict(anonymous=UNAUTHORIZED, annotator=DENIED, outsider=DENIED, admin=OK),
}

# Every page URL by name (or by route when it has none). The Django admin's URLs are classified
# as a whole (see `_page_class`), so a newly registered model is covered too.
PAGES = {
    "home": "signed_in",
    "healthz": "public",
    "accounts:login": "public",
    "accounts:logout": "logout",
    "accounts:profile": "signed_in",
    "accounts:password-change": "signed_in",
    "generation:dataset-list": "admin",
    "generation:dataset-detail": "admin",
    "generation:import-new": "admin",
    "generation:import-detail": "admin",
    "generation:endpoint-list": "admin",
    "generation:endpoint-new": "admin",
    "generation:endpoint-edit": "admin",
    "generation:endpoint-test": "admin",
    "generation:endpoint-delete": "admin",
    "generation:batch-list": "admin",
    "generation:batch-new": "admin",
    "generation:batch-detail": "admin",
    "generation:batch-progress": "admin",
    "generation:batch-action": "admin",
    "annotation:home": "signed_in",
    "annotation:task-next": "member",
    "annotation:assignment-rate": "own_assignment",
    "annotation:assignment-skip": "own_assignment",
    "annotation:campaign-list": "admin",
    "annotation:campaign-create": "admin",
    "annotation:campaign-detail": "admin",
    "annotation:campaign-edit": "admin",
    "annotation:campaign-members-add": "admin",
    "annotation:campaign-post-reopen": "admin",
    "annotation:campaign-progress": "admin",
    "evaluation:home": "admin",
    "evaluation:campaign-dashboard": "admin",
    "evaluation:campaign-item-scores": "admin",
    "evaluation:export-create": "admin",
    "evaluation:export-preview": "admin",
    "evaluation:export-detail": "admin",
    "evaluation:export-download": "admin",
    "evaluation:export-retry": "admin",
    "students:dataset-leaderboard": "admin",
    "students:run-manifest": "admin",
    "students:training-detail": "admin",
    "students:training-list": "admin",
    "students:run-new": "admin",
    "students:run-detail": "admin",
    "students:run-restart": "admin",
    "students:training-restart": "admin",
    "comparisons:comparison-create": "admin",
    "comparisons:comparison-detail": "admin",
    "judges:run-list": "admin",
    "judges:run-detail": "admin",
    "judges:run-progress": "admin",
    "judges:run-action": "admin",
    "judges:campaign-judges": "admin",
    "critics:critic-list": "admin",
    "critics:critic-detail": "admin",
    "critics:critic-score": "admin",
    "critics:critic-order-tasks": "admin",
    "api-schema": "api_docs",
    "api-docs": "api_docs",
    "media/<path:path>": "media",
}

# Every operation of the OpenAPI schema.
API = {
    "POST /api/auth/token/": "api_public",
    "POST /api/auth/token/revoke/": "api_signed_in",
    "GET /api/campaigns/": "api_signed_in",  # each sees the campaigns they may see
    "GET /api/campaigns/{campaign_id}/": "api_member",
    "POST /api/campaigns/{campaign_id}/next/": "api_member",
    "GET /api/campaigns/{campaign_id}/my-ratings/": "api_member",
    "GET /api/assignments/{assignment_id}/": "api_own_assignment",
    "POST /api/assignments/{assignment_id}/submit/": "api_own_assignment",
    "POST /api/assignments/{assignment_id}/skip/": "api_own_assignment",
    "POST /api/campaigns/": "api_admin",
    "PATCH /api/campaigns/{campaign_id}/": "api_admin",
    "DELETE /api/campaigns/{campaign_id}/": "api_admin",
    "GET /api/campaigns/{campaign_id}/progress/": "api_admin",
    "GET /api/campaigns/{campaign_id}/stuck-posts/": "api_admin",
    "POST /api/campaigns/{campaign_id}/members/": "api_admin",
    "POST /api/campaigns/{campaign_id}/posts/{post_id}/reopen/": "api_admin",
    "POST /api/campaigns/{campaign_id}/gold/": "api_admin",
    "GET /api/campaigns/{campaign_id}/agreement/": "api_admin",
    "GET /api/campaigns/{campaign_id}/annotators/": "api_admin",
    "GET /api/datasets/": "api_admin",
    "GET /api/datasets/{dataset_id}/": "api_admin",
    "GET /api/datasets/{dataset_id}/posts/": "api_admin",
    "GET /api/datasets/{dataset_id}/splits/": "api_admin",
    "POST /api/datasets/{dataset_id}/splits/": "api_admin",
    "GET /api/evaluation-runs/": "api_admin",
    "GET /api/evaluation-runs/{evaluation_run_id}/": "api_admin",
    "POST /api/evaluation-runs/": "api_admin",
    "GET /api/student-trainings/": "api_admin",
    "POST /api/student-trainings/": "api_admin",
    "GET /api/student-trainings/{training_id}/": "api_admin",
    "POST /api/evaluation-runs/{evaluation_run_id}/restart/": "api_admin",
    "POST /api/student-trainings/{training_id}/restart/": "api_admin",
    "GET /api/comparisons/": "api_admin",
    "POST /api/comparisons/": "api_admin",
    "GET /api/comparisons/{comparison_id}/": "api_admin",
    "GET /api/critics/": "api_admin",
    "POST /api/critics/": "api_admin",
    "GET /api/critics/{critic_id}/": "api_admin",
    "POST /api/critics/{critic_id}/score/": "api_admin",
    "POST /api/critics/{critic_id}/order-tasks/": "api_admin",
    "GET /api/posts/{post_id}/": "api_admin",
    "POST /api/imports/": "api_admin",
    "GET /api/imports/{job_id}/": "api_admin",
    "GET /api/endpoints/": "api_admin",
    "POST /api/endpoints/": "api_admin",
    "GET /api/endpoints/{endpoint_id}/": "api_admin",
    "PATCH /api/endpoints/{endpoint_id}/": "api_admin",
    "DELETE /api/endpoints/{endpoint_id}/": "api_admin",
    "POST /api/endpoints/{endpoint_id}/test/": "api_admin",
    "GET /api/judge-runs/": "api_admin",
    "POST /api/judge-runs/": "api_admin",
    "GET /api/judge-runs/{run_id}/": "api_admin",
    "GET /api/judge-runs/{run_id}/agreement/": "api_admin",
    "POST /api/judge-runs/{run_id}/cancel/": "api_admin",
    "POST /api/judge-runs/{run_id}/retry/": "api_admin",
    "GET /api/batches/": "api_admin",
    "POST /api/batches/": "api_admin",
    "GET /api/batches/{batch_id}/": "api_admin",
    "POST /api/batches/{batch_id}/pause/": "api_admin",
    "POST /api/batches/{batch_id}/resume/": "api_admin",
    "POST /api/batches/{batch_id}/cancel/": "api_admin",
    "POST /api/batches/{batch_id}/retry-failed/": "api_admin",
    "GET /api/exports/": "api_admin",
    "POST /api/exports/": "api_admin",
    "GET /api/exports/{export_id}/": "api_admin",
    "GET /api/exports/{export_id}/download/": "api_admin",
    "POST /api/exports/{export_id}/retry/": "api_admin",
}


def _page_class(key: str, namespace: str, route: str) -> str | None:
    if namespace == "admin" or route.startswith("admin/"):
        if key in ("admin:autocomplete", "admin:view_on_site") or "(?P<url>" in route:
            return "django_admin_incomplete"
        return {"admin:login": "public", "admin:logout": "admin_logout"}.get(key, "django_admin")
    return PAGES.get(key)


# --- the verdicts ----------------------------------------------------------------------------


def verdict(response, *, input_refused_ok: bool) -> str:
    status = response.status_code
    location = response.get("Location", "")
    if status >= 500:
        return f"server error {status}"
    if status == 401:
        return UNAUTHORIZED
    if status in (403, 404):
        return DENIED
    if status in (301, 302) and location.startswith("/admin/login/"):
        return ADMIN_LOGIN
    if status in (301, 302) and location.startswith("/accounts/login/"):
        return LOGIN
    if status < 400 or status == 405 or (input_refused_ok and status in (400, 409, 415)):
        return OK
    return f"unexpected {status}"


# --- the clients -----------------------------------------------------------------------------


@pytest.fixture
def world(admin_user, annotator, other_annotator) -> World:
    return build_world(admin=admin_user, annotator=annotator, outsider=other_annotator)


def _user(role: str, request):
    fixture = {"annotator": "annotator", "outsider": "other_annotator", "admin": "admin_user"}
    return request.getfixturevalue(fixture[role]) if role in fixture else None


def _page_client(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _api_client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _schema_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation of the OpenAPI schema the API serves."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    methods = ("get", "post", "put", "patch", "delete")
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in methods
    ]


# --- the tests -------------------------------------------------------------------------------


def test_every_page_and_api_operation_is_classified(db) -> None:
    unclassified = [
        key
        for key, namespace, route in url_patterns()
        if not is_api(route) and _page_class(key, namespace, route) is None
    ]
    operations = _schema_operations()
    unclassified += [
        f"{method} {path}" for method, path in operations if f"{method} {path}" not in API
    ]
    assert not unclassified, (
        f"classify these in tests/system/test_permissions_matrix.py: {unclassified}"
    )
    stale = set(API) - {f"{method} {path}" for method, path in operations}
    assert not stale, f"operations no longer in the schema: {sorted(stale)}"
    # Every API route of the resolver is in the schema, so none escapes the API table.
    schema_routes = {re.sub(r"\{\w+\}", "X", path) for _, path in operations}
    for key, _, route in url_patterns():
        if is_api(route):
            assert "/" + CONVERTER.sub("X", route) in schema_routes, f"{key} is not in the schema"


def _ordered(requests: list[tuple]) -> list[tuple]:
    """Reads first, deletions last, so that a request never removes what a later one names."""
    order = {"GET": 0, "POST": 1, "PATCH": 1, "PUT": 1, "DELETE": 2}
    return sorted(requests, key=lambda r: (order[r[0]], "delete" in r[1]))


@pytest.mark.parametrize("role", ROLES)
def test_pages(role, world, request) -> None:
    user = _user(role, request)
    pages = [
        (fill(route, world), key, cls)
        for key, namespace, route in url_patterns()
        if not is_api(route) and (cls := _page_class(key, namespace, route)) is not None
    ]
    results, forms = [], []
    client = _page_client(user)
    for url, key, cls in pages:
        response = client.get(url)
        if response.status_code == 405:
            forms.append((url, key, cls))  # a GET proves nothing about who may post: post below
            continue
        results.append(("GET", url, key, cls, verdict(response, input_refused_ok=False)))
        # The same URL asked by htmx (pages answer a partial then): the same rules.
        response = client.get(url, headers={"HX-Request": "true"})
        results.append(("GET (htmx)", url, key, cls, verdict(response, input_refused_ok=False)))
    forms_only = list(forms)
    if role != "admin":
        # Whoever may not read a page may not post to it either (admins post to forms only).
        forms = pages
    # Posting (empty forms) after every read, deletions last; a fresh session each time, since a
    # post may be a logout.
    for url, key, cls in sorted(forms, key=lambda form: "delete" in form[0]):
        response = _page_client(user).post(url)
        if response.status_code == 405 and (url, key, cls) not in forms_only:
            continue  # the page takes no posts, from anyone: nothing to check
        results.append(("POST", url, key, cls, verdict(response, input_refused_ok=True)))
    assert len(results) > 100
    wrong = [
        f"{method} {url} ({key}, {cls}): {got}, expected {EXPECT[cls][role]}"
        for method, url, key, cls, got in results
        if got != EXPECT[cls][role]
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", ROLES)
def test_api_operations(role, world, request) -> None:
    user = _user(role, request)
    operations = [(method, path, f"{method} {path}") for method, path in _schema_operations()]
    wrong = []
    for method, path, key in _ordered(operations):
        url = fill(re.sub(r"\{(\w+)\}", r"<\1>", path).lstrip("/"), world)
        client = _api_client(user)
        response = getattr(client, method.lower())(url, {}, format="json")
        got = verdict(response, input_refused_ok=True)
        if got != EXPECT[API[key]][role]:
            wrong.append(
                f"{key} → {response.status_code} ({got}), expected {EXPECT[API[key]][role]}"
            )
    assert len(operations) >= 37
    assert not wrong, "\n".join(wrong)


def test_media_files_are_served_to_whom_they_belong(world, admin_user, annotator, other_annotator):
    image = f"/media/{world.post.image.name}"
    export = f"/media/{world.export.file.name}"
    upload = f"/media/{world.import_job.file.name}"
    admin, anna, otto = (_page_client(u) for u in (admin_user, annotator, other_annotator))
    assert Client().get(image).status_code == 302  # to the login page
    assert admin.get(image).status_code == 200
    assert anna.get(image).status_code == 200  # a post of a campaign she rates
    assert admin.get(export).status_code == 200
    # Exports and uploads are the admins'; annotators reach neither, however they guess the name.
    for url in (export, upload):
        assert anna.get(url).status_code == 404
        assert otto.get(url).status_code == 404
    other = Dataset.objects.create(name="elsewhere")
    stranger = Post(dataset=other, external_id="s", text="not in any campaign")
    stranger.image.save("s.png", ContentFile(png()), save=True)
    assert anna.get(f"/media/{stranger.image.name}").status_code == 404
    assert admin.get(f"/media/{stranger.image.name}").status_code == 200


@pytest.mark.parametrize("change", ["removed from the campaign", "campaign closed"])
def test_an_annotator_who_left_the_campaign_reaches_none_of_its_tasks(
    world, annotator, change
) -> None:
    if change == "campaign closed":
        world.campaign.is_active = False
        world.campaign.save()
    else:
        world.campaign.members.remove(annotator)
    api, page = _api_client(annotator), _page_client(annotator)
    lease, done = world.assignment.pk, world.done_assignment.pk
    assert page.get(f"/annotate/{world.campaign.pk}/").status_code == 404
    assert page.get(f"/annotate/{world.campaign.pk}/assignments/{done}/").status_code == 404
    assert api.post(f"/api/campaigns/{world.campaign.pk}/next/").status_code == 404
    for assignment in (lease, done):
        assert api.get(f"/api/assignments/{assignment}/").status_code == 404
        assert api.post(f"/api/assignments/{assignment}/skip/").status_code == 404
        response = api.post(
            f"/api/assignments/{assignment}/submit/",
            {"ratings": [{"item": world.item.pk, "question": 1, "value": 1}]},
            format="json",
        )
        assert response.status_code == 404


def test_lists_show_each_annotator_only_their_own(world, annotator, other_annotator) -> None:
    anna, otto = _api_client(annotator), _api_client(other_annotator)
    names = [c["name"] for c in otto.get("/api/campaigns/").json()["results"]]
    assert names == [world.other_campaign.name]
    assert (
        world.campaign.name not in _page_client(other_annotator).get("/annotate/").content.decode()
    )
    mine = anna.get(f"/api/campaigns/{world.campaign.pk}/my-ratings/").json()
    assert mine["count"] == 20  # her one post: 10 items × 2 questions
    # otto joins campaign A: he gets a post to rate, never anna's values.
    world.campaign.members.add(other_annotator)
    task = otto.post(f"/api/campaigns/{world.campaign.pk}/next/").json()
    assert all(item["my_values"] == {} for item in task["items"])
    assert otto.get(f"/api/campaigns/{world.campaign.pk}/my-ratings/").json()["count"] == 0


def test_session_requests_without_a_csrf_token_are_refused(world, admin_user, annotator) -> None:
    """A signed-in browser cannot be made to post from another site: pages and the API (session
    auth) both want the CSRF token."""
    admin = Client(enforce_csrf_checks=True)
    admin.force_login(admin_user)
    anna = Client(enforce_csrf_checks=True)
    anna.force_login(annotator)
    assert admin.post("/campaigns/new/", {"name": "x"}).status_code == 403
    assert admin.post(f"/batches/{world.batch.pk}/pause/").status_code == 403
    assert (
        admin.post("/api/endpoints/", {"name": "x"}, content_type="application/json").status_code
        == 403
    )
    assert admin.delete(f"/api/campaigns/{world.campaign.pk}/").status_code == 403
    submit = f"/api/assignments/{world.assignment.pk}/submit/"
    assert anna.post(submit, {"ratings": []}, content_type="application/json").status_code == 403
    skip = f"/annotate/{world.campaign.pk}/assignments/{world.assignment.pk}/skip/"
    assert anna.post(skip).status_code == 403
    assert Campaign.objects.filter(pk=world.campaign.pk).exists()
    world.assignment.refresh_from_db()
    assert world.assignment.status == "leased"


def test_a_deactivated_annotator_is_out_at_once(world, annotator) -> None:
    """Her open session and her token stop working the moment an admin deactivates her."""
    page, api = _page_client(annotator), _api_client(annotator)
    assert page.get(f"/annotate/{world.campaign.pk}/").status_code == 200
    assert api.get("/api/campaigns/").status_code == 200
    annotator.is_active = False
    annotator.save()
    response = page.get(f"/annotate/{world.campaign.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert api.get("/api/campaigns/").status_code == 401
    assert api.post(f"/api/assignments/{world.assignment.pk}/skip/").status_code == 401


def test_media_paths_cannot_climb_out_of_a_readable_folder(world, annotator) -> None:
    anna = _page_client(annotator)
    folder = world.post.image.name.rsplit("/", 1)[0]  # posts/<dataset>: anna may read it
    for target in (world.export.file.name, world.import_job.file.name):
        for climb in ("../..", "%2e%2e/%2e%2e", "./../.."):
            response = anna.get(f"/media/{folder}/{climb}/{target}")
            assert response.status_code == 404, (climb, target)
