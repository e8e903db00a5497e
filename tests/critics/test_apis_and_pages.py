"""The critics API and pages: train through them (the task as the worker runs it), read the
metrics and progress, resume scoring, order the next round; refusals and permissions."""

import pytest

from annotation.models import Rating
from critics.models import Critic, CriticScore
from critics.services import critic_create
from critics.tasks import critic_score_task, critic_train_task
from evaluation.models import ExportJob
from evaluation.tasks import export_run_task
from tests.factories import signal_campaign


@pytest.fixture
def campaign(db):
    return signal_campaign(name="signal", posts=30, rated_posts=20)


def test_train_through_the_api(admin_api, campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_api.post(
            "/api/critics/",
            {"campaign": campaign.pk, "question": "plausibility", "threshold": 3.5, "name": "api"},
            format="json",
        )
    assert response.status_code == 201, response.json()
    critic = response.json()
    assert critic["status"] == "queued" and critic["version"] == 1 and len(callbacks) == 1
    critic_train_task(critic["id"])  # what the worker runs: train, then score
    done = admin_api.get(f"/api/critics/{critic['id']}/").json()
    assert done["status"] == "done" and done["scoring_status"] == "done"
    assert done["scored"] == done["to_score"] == 120 and done["scoring_percent"] == 100
    assert done["metrics"]["roc_auc"] > done["metrics"]["baseline"]["roc_auc"]
    assert admin_api.get("/api/critics/").json()["results"][0]["id"] == critic["id"]

    with django_capture_on_commit_callbacks() as callbacks:
        again = admin_api.post(f"/api/critics/{critic['id']}/score/")
    assert again.status_code == 202 and again.json()["scoring_status"] == "queued"
    critic_score_task(critic["id"])
    assert CriticScore.objects.filter(critic_id=critic["id"]).count() == 120
    ordered = admin_api.post(f"/api/critics/{critic['id']}/order-tasks/")
    assert ordered.status_code == 200 and ordered.json() == {"ordered": 0}  # no tasks here


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"question": "plausibility", "threshold": 9}, 400, "threshold"),
        ({"question": "nope", "threshold": 3}, 400, "question"),
        ({"question": "plausibility", "threshold": 1}, 400, "detail"),
        ({"question": "plausibility", "threshold": "x"}, 400, "threshold"),
        ({"question": "plausibility", "threshold": 3, "min_gold_accuracy": 2}, 400,
         "min_gold_accuracy"),
        ({"question": "plausibility", "threshold": 3, "encoder": "/nowhere"}, 400, "encoder"),
        ({"question": "plausibility", "threshold": 3, "campaign": 10**9}, 404, "detail"),
        ({"question": "plausibility", "threshold": 3, "campaign": 10**30}, 400, "campaign"),
    ],
)  # fmt: skip
def test_broken_input_to_the_api_stores_nothing(admin_api, campaign, body, status, field):
    response = admin_api.post("/api/critics/", {"campaign": campaign.pk, **body}, format="json")
    assert response.status_code == status, response.json()
    assert field in response.json()
    assert not Critic.objects.exists()


def test_annotators_cannot_reach_critics(annotator_api, annotator_client, campaign):
    assert annotator_api.get("/api/critics/").status_code == 403
    body = {"campaign": campaign.pk, "question": "plausibility", "threshold": 3}
    assert annotator_api.post("/api/critics/", body, format="json").status_code == 403
    assert annotator_client.get("/critics/").status_code in (302, 403)
    assert not Critic.objects.exists()


def test_unknown_or_untrained_critics(admin_api, campaign):
    assert admin_api.get("/api/critics/99/").status_code == 404
    critic = Critic.objects.create(name="x", campaign=campaign, question=campaign.questions.get(),
                                   threshold=3)  # fmt: skip
    assert admin_api.post(f"/api/critics/{critic.pk}/score/").status_code == 409
    assert admin_api.post(f"/api/critics/{critic.pk}/order-tasks/").status_code == 409


def test_the_pages_train_show_and_act(admin_client, campaign, django_capture_on_commit_callbacks):
    assert admin_client.get("/critics/").status_code == 200
    refused = admin_client.post(
        "/critics/", {"campaign": campaign.pk, "question": "plausibility", "threshold": 7}
    )
    assert refused.status_code == 400 and "outside the 1-5 scale" in refused.content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/critics/",
            {"campaign": campaign.pk, "question": "plausibility", "threshold": 3.5, "name": "p"},
        )
    critic = Critic.objects.get(name="p")
    assert len(callbacks) == 1
    queued = admin_client.get(f"/critics/{critic.pk}/", headers={"HX-Request": "true"})
    assert b'hx-trigger="every 1s"' in queued.content  # polls while it is queued
    critic_train_task(critic.pk)  # what the worker runs
    assert response.status_code == 302 and response.url == f"/critics/{critic.pk}/"
    page = admin_client.get(f"/critics/{critic.pk}/").content.decode()
    assert "ROC-AUC" in page and "(0.5)" in page and "v1 (this)" in page
    assert "120 of 120 items (100%)" in page
    part = admin_client.get(f"/critics/{critic.pk}/", headers={"HX-Request": "true"})
    assert b"<html" not in part.content and b"critic-progress" in part.content
    assert b"every 1s" not in part.content  # done: no more polling
    # A second version after a round: both side by side.
    with django_capture_on_commit_callbacks():
        admin_client.post(
            "/critics/",
            {"campaign": campaign.pk, "question": "plausibility", "threshold": 3.5, "name": "p"},
        )
    second = Critic.objects.get(name="p", version=2)
    critic_train_task(second.pk)
    page = admin_client.get(f"/critics/{second.pk}/").content.decode()
    assert "v1" in page and "v2 (this)" in page
    follow = admin_client.post(f"/critics/{second.pk}/order-tasks/", follow=True)
    assert "unclaimed posts of signal ordered by uncertainty" in follow.content.decode()


def test_an_export_job_by_critic_through_the_api(
    admin_api, campaign, django_capture_on_commit_callbacks
):
    critic = critic_create(campaign=campaign, question="plausibility", threshold=3.5, name="e")
    critic_train_task(critic.pk)
    body = {"campaign": campaign.pk, "format": "jsonl", "min_mean": {"plausibility": 4}}
    for extra, message in [
        ({"critic": "nope", "critic_threshold": 0.5}, "no trained critic named 'nope'"),
        ({"critic": "e"}, "either a minimum precision or a score threshold"),
        ({"min_precision": 0.9}, "go with critic"),
        ({"critic": "e", "critic_threshold": 0.5, "format": "cotpd"}, "other than cotpd"),
    ]:
        refused = admin_api.post("/api/exports/", {**body, **extra}, format="json")
        assert refused.status_code == 400 and message in str(refused.json()), refused.json()
    with django_capture_on_commit_callbacks():
        response = admin_api.post(
            "/api/exports/", {**body, "critic": "e", "critic_threshold": 0.5}, format="json"
        )
    assert response.status_code == 201, response.json()
    job = response.json()
    assert job["filters"]["critic"] == {"name": "e:v1", "min_precision": None, "threshold": 0.5}
    export_run_task(job["id"])  # what the worker runs
    done = admin_api.get(f"/api/exports/{job['id']}/").json()
    assert done["status"] == "done", done["error"]
    chosen = done["manifest"]["critic"]
    rated = set(Rating.objects.filter(campaign=campaign).values_list("item_id", flat=True))
    kept = CriticScore.objects.filter(critic=critic, score__gte=0.5).exclude(item_id__in=rated)
    assert chosen["items_from_critic"] == kept.count() > 0
    assert done["items_written"] == chosen["items_from_people"] + chosen["items_from_critic"]


def test_the_export_form_takes_a_critic(admin_client, campaign):
    critic = critic_create(campaign=campaign, question="plausibility", threshold=3.5, name="f")
    critic_train_task(critic.pk)
    url = f"/campaigns/{campaign.pk}/exports/new/"
    form = {"format": "jsonl", "min_ratings": 1, "min_gold_accuracy": 0.5}
    for extra, message in [
        ({"critic": "nope", "critic_threshold": 0.5}, "no trained critic named"),
        ({"min_precision": 0.9}, "name the critic these apply to"),
        ({"critic": "f", "min_precision": 1.2}, "less than or equal to 1"),
        ({"critic": "f", "min_precision": 0.9, "critic_threshold": 0.5}, "either a minimum"),
    ]:
        refused = admin_client.post(url, {**form, **extra})
        assert refused.status_code == 400 and message in refused.content.decode(), extra
    assert not ExportJob.objects.exists()
    response = admin_client.post(url, {**form, "critic": "f", "critic_threshold": 0.5})
    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.filters["critic"] == {"name": "f:v1", "min_precision": None, "threshold": 0.5}
    page = admin_client.get(f"/campaigns/{campaign.pk}/evaluation/").content.decode()
    assert "Export by critic" in page
