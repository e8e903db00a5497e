from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import user_create_annotator
from annotation.models import Assignment, Campaign, Rating, Task
from annotation.selectors import tasks_with_done
from tests.factories import miko_batch


def next_task(api, campaign):
    return api.post(reverse("api-task-next", args=[campaign.pk]))


def all_ratings(task, value=3):
    return [
        {"item": item["id"], "question": q["id"], "value": value}
        for item in task["items"]
        for q in task["questions"]
    ]


def test_next_submit_and_my_ratings(annotator_api, campaign, annotator):
    response = next_task(annotator_api, campaign)
    assert response.status_code == 200
    task = response.json()
    assert len(task["items"]) == 10 and [q["name"] for q in task["questions"]] == [
        "plausibility",
        "typicality",
    ]
    assert task["description"].startswith("A photo that goes with")
    assert task["questions"][0]["choices"][0] == {"value": 1, "label": "Not at all"}
    assert next_task(annotator_api, campaign).json()["assignment"] == task["assignment"]
    url = reverse("api-assignment-submit", args=[task["assignment"]])
    body = {"ratings": all_ratings(task), "seconds": 0}
    assert annotator_api.post(url, body, format="json").status_code == 200
    assert annotator_api.post(url, body, format="json").json()["status"] == "done"
    assert Rating.objects.count() == 20
    assert tasks_with_done(Task.objects).get(assignments__pk=task["assignment"]).done == 1
    mine = annotator_api.get(reverse("api-my-ratings", args=[campaign.pk])).json()
    assert mine["count"] == 20 and {r["value"] for r in mine["results"]} == {3}
    again = annotator_api.get(reverse("api-assignment-detail", args=[task["assignment"]])).json()
    assert set(again["items"][0]["my_values"].values()) == {3}


def test_submit_refuses_bad_values_with_a_message(annotator_api, campaign):
    task = next_task(annotator_api, campaign).json()
    ratings = all_ratings(task)
    ratings[0]["value"] = 0
    response = annotator_api.post(
        reverse("api-assignment-submit", args=[task["assignment"]]),
        {"ratings": ratings},
        format="json",
    )
    assert response.status_code == 400
    assert "0 is not on the Likert 1–5 scale" in response.json()["detail"]
    assert not Rating.objects.exists()


def test_nothing_left_answers_204(annotator_api, dataset, annotator):
    from annotation.services import campaign_create

    campaign = campaign_create(name="empty", dataset=dataset, members=[annotator])
    assert next_task(annotator_api, campaign).status_code == 204


def test_annotator_cannot_reach_others(annotator_api, campaign, other_annotator):
    stranger = user_create_annotator(username="stranger", password="x")
    api = APIClient()
    api.force_authenticate(stranger)
    assert next_task(api, campaign).status_code == 404
    assert api.get(reverse("api-campaign-detail", args=[campaign.pk])).status_code == 404
    assert api.get(reverse("api-campaign-list")).json()["count"] == 0
    other = APIClient()
    other.force_authenticate(other_annotator)
    task = next_task(other, campaign).json()
    other.post(
        reverse("api-assignment-submit", args=[task["assignment"]]),
        {"ratings": all_ratings(task, 5)},
        format="json",
    )
    # anna sees neither otto's assignment nor his ratings.
    assert (
        annotator_api.get(reverse("api-assignment-detail", args=[task["assignment"]])).status_code
        == 404
    )
    submit = reverse("api-assignment-submit", args=[task["assignment"]])
    assert annotator_api.post(submit, {"ratings": []}, format="json").status_code == 404
    assert annotator_api.get(reverse("api-my-ratings", args=[campaign.pk])).json()["count"] == 0
    mine = next_task(annotator_api, campaign).json()
    assert all(item["my_values"] == {} for item in mine["items"])


def test_admin_only_operations(annotator_api, campaign):
    assert (
        annotator_api.get(reverse("api-campaign-progress", args=[campaign.pk])).status_code == 403
    )
    assert annotator_api.post(reverse("api-campaign-list"), {}, format="json").status_code == 403
    patch = annotator_api.patch(
        reverse("api-campaign-detail", args=[campaign.pk]), {"overlap": 9}, format="json"
    )
    assert patch.status_code == 403
    assert (
        annotator_api.delete(reverse("api-campaign-detail", args=[campaign.pk])).status_code == 403
    )
    assert APIClient().get(reverse("api-campaign-list")).status_code == 401


def test_admin_campaign_crud_and_progress(admin_api, dataset, annotator):
    miko_batch(dataset=dataset, posts=2)
    created = admin_api.post(
        reverse("api-campaign-list"),
        {
            "name": "api",
            "dataset": "miko",
            "kinds": ["xWant"],
            "questions": [{"name": "relevance", "scale": "miko-3"}],
            "overlap": 2,
            "members": ["anna"],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["questions"][0]["scale"] == "miko-3" and body["members"] == ["anna"]
    campaign = Campaign.objects.get(name="api")
    assert campaign.tasks.count() == 2
    duplicate = admin_api.post(
        reverse("api-campaign-list"), {"name": "api", "dataset": "miko"}, format="json"
    )
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["name"][0]
    patched = admin_api.patch(
        reverse("api-campaign-detail", args=[campaign.pk]),
        {"instructions": "*Be quick*", "lease_minutes": 5},
        format="json",
    )
    assert patched.status_code == 200 and patched.json()["lease_minutes"] == 5
    detail = admin_api.get(reverse("api-campaign-detail", args=[campaign.pk])).json()
    assert detail["instructions_html"] == "<p><em>Be quick</em></p>"
    progress = admin_api.get(reverse("api-campaign-progress", args=[campaign.pk])).json()
    assert progress["progress"]["slots_goal"] == 4 and progress["annotators"] == []
    item = campaign.tasks.first().post.items.get(kind="xWant")
    gold = admin_api.post(
        reverse("api-campaign-gold", args=[campaign.pk]),
        [{"item": item.pk, "question": "relevance", "value": 2}],
        format="json",
    )
    assert gold.status_code == 200 and campaign.tasks.filter(is_gold=True).count() == 1
    assert admin_api.delete(reverse("api-campaign-detail", args=[campaign.pk])).status_code == 204
    assert not Assignment.objects.exists() and not Campaign.objects.filter(name="api").exists()
