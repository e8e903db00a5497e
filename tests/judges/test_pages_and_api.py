"""Judge pages and API: launch, watch, cancel, retry, the agreement; admins only; broken input."""

import pytest
from django.urls import reverse

from judges.models import JudgeRating, JudgeRun
from judges.runner import judge_run_execute
from judges.services import judge_run_create
from tests.factories import annotators, campaign_create, fake_endpoint, posts_with_items, rate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def campaign():
    campaign = campaign_create(name="paged", questions=("plausibility",))
    items = posts_with_items(campaign, posts=3, kinds=["xIntent", "open"])
    rate(campaign, items, "plausibility", annotators(2), [[1, 2, 3, 4, 5, 4], [2, 2, 3, 5, 4, 4]])
    return campaign


@pytest.fixture
def done_run(fake_server, campaign) -> JudgeRun:
    run = judge_run_create(campaign=campaign, endpoint=fake_endpoint(fake_server), enqueue=False)
    return judge_run_execute(run_id=run.pk)


def test_the_api_launches_a_run_that_a_worker_carries_out(
    admin_api, fake_server, campaign, eager_celery, django_capture_on_commit_callbacks
) -> None:
    fake_endpoint(fake_server)
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_api.post(
            "/api/judge-runs/",
            {"campaign": "paged", "endpoint": "fake", "questions": ["plausibility"]},
            format="json",
        )
    assert answer.status_code == 201, answer.content
    run = JudgeRun.objects.get(pk=answer.json()["id"])
    assert run.status == "done" and run.ratings_done == 6
    detail = admin_api.get(f"/api/judge-runs/{run.pk}/").json()
    assert detail["ratings_done"] == 6 and detail["questions"] == ["plausibility"]
    assert detail["template_version"] == "v1" and detail["percent"] == 100
    assert admin_api.get("/api/judge-runs/").json()["count"] == 1

    agreement = admin_api.get(f"/api/judge-runs/{run.pk}/agreement/?bootstrap_samples=50")
    figures = agreement.json()["questions"]["plausibility"]
    assert figures["n_items"] == 6 and len(figures["thresholds"]) == 5
    assert agreement.json()["bootstrap_samples"] == 50

    assert admin_api.post(f"/api/judge-runs/{run.pk}/cancel/").status_code == 409
    with django_capture_on_commit_callbacks(execute=True):
        retried = admin_api.post(f"/api/judge-runs/{run.pk}/retry/")
    assert retried.status_code == 200
    run.refresh_from_db()
    assert run.status == "done" and fake_server.requests == 6


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"campaign": "nope", "endpoint": "fake"}, "campaign"),
        ({"campaign": "paged", "endpoint": "nope"}, "endpoint"),
        ({"campaign": "paged", "endpoint": "fake", "questions": ["fun"]}, "questions"),
        ({"campaign": "paged", "endpoint": "fake", "template_version": "v0"}, "template_version"),
        ({"campaign": "paged", "endpoint": "fake", "batch": 99999}, "batch"),
        ({"campaign": "paged", "endpoint": "fake", "batch": 2**70}, "batch"),
        ({"campaign": "paged", "endpoint": "fake", "token_budget": 0}, "token_budget"),
        ({"campaign": "paged", "endpoint": "fake", "parameters": {"temp": 1}}, "parameters"),
        ({"campaign": "paged", "endpoint": "fake", "parameters": [1]}, "parameters"),
    ],
)
def test_the_api_refuses_broken_input(admin_api, fake_server, campaign, body, field) -> None:
    fake_endpoint(fake_server)
    answer = admin_api.post("/api/judge-runs/", body, format="json")
    assert answer.status_code == 400 and field in answer.json(), answer.content
    assert not JudgeRun.objects.exists()


def test_agreement_query_bounds(admin_api, done_run) -> None:
    url = f"/api/judge-runs/{done_run.pk}/agreement/"
    assert admin_api.get(url + "?bootstrap_samples=99999").status_code == 400
    assert admin_api.get(url + "?seed=-1").status_code == 400
    assert admin_api.get(url + "?bootstrap_samples=x").status_code == 400
    assert admin_api.get("/api/judge-runs/999999/agreement/").status_code == 404


def test_annotators_are_refused(annotator_api, annotator_client, done_run) -> None:
    assert annotator_api.get("/api/judge-runs/").status_code == 403
    assert annotator_api.get(f"/api/judge-runs/{done_run.pk}/agreement/").status_code == 403
    assert annotator_api.post(f"/api/judge-runs/{done_run.pk}/retry/").status_code == 403
    for url in [
        reverse("judges:run-list"),
        reverse("judges:run-detail", args=[done_run.pk]),
        reverse("judges:run-progress", args=[done_run.pk]),
        reverse("judges:campaign-judges", args=[done_run.campaign_id]),
    ]:
        assert annotator_client.get(url).status_code == 403
    retry = reverse("judges:run-action", args=[done_run.pk, "retry"])
    assert annotator_client.post(retry).status_code == 403


def test_the_pages_show_progress_failures_and_agreement(admin_client, done_run) -> None:
    JudgeRating.objects.filter(run=done_run).filter(pk=JudgeRating.objects.first().pk).update(
        status="failed", value=None, raw_answer="No idea <b>really</b>", error="ParseError: no line"
    )
    page = admin_client.get(reverse("judges:run-detail", args=[done_run.pk])).content.decode()
    assert "Alpha, people and the judge" in page and "Spearman" in page
    assert "No idea &lt;b&gt;really&lt;/b&gt;" in page and "ParseError: no line" in page
    campaign_page = admin_client.get(reverse("judges:campaign-judges", args=[done_run.campaign_id]))
    assert f"Judge run {done_run.pk}" in campaign_page.content.decode()
    detail = admin_client.get(reverse("annotation:campaign-detail", args=[done_run.campaign_id]))
    assert reverse("judges:campaign-judges", args=[done_run.campaign_id]) in detail.content.decode()
    assert (
        admin_client.post(reverse("judges:run-action", args=[done_run.pk, "nope"])).status_code
        == 404
    )
    cancel = admin_client.post(
        reverse("judges:run-action", args=[done_run.pk, "cancel"]), follow=True
    )
    assert "cannot be cancelled" in cancel.content.decode()


def test_the_launch_form_refuses_broken_input(admin_client, fake_server, campaign) -> None:
    fake_endpoint(fake_server)
    url = reverse("judges:run-list")
    answer = admin_client.post(
        url,
        {"campaign": campaign.pk, "endpoint": "fake", "questions": "fun", "template_version": "v1"},
    )
    assert answer.status_code == 400
    assert "Campaign paged has no question &#x27;fun&#x27;" in answer.content.decode()
    answer = admin_client.post(url, {"campaign": "x", "endpoint": "none", "template_version": "v7"})
    assert answer.status_code == 400 and not JudgeRun.objects.exists()


def test_the_api_takes_json_and_refuses_nul(admin_client, admin_api, campaign) -> None:
    assert admin_client.post("/api/judge-runs/", {"campaign": "\x15\x00x"}).status_code == 415
    answer = admin_api.post("/api/judge-runs/", {"campaign": "\x00x"}, format="json")
    assert answer.status_code == 400 and not JudgeRun.objects.exists()


def test_an_endpoint_named_by_a_judge_run_is_kept(admin_api, done_run) -> None:
    answer = admin_api.delete(f"/api/endpoints/{done_run.endpoint_id}/")
    assert answer.status_code == 409
    assert "named by judge runs" in answer.json()["detail"]
    assert JudgeRun.objects.filter(pk=done_run.pk, endpoint_id=done_run.endpoint_id).exists()
