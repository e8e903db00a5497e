"""Crafted numbers and names (issue 13, points 4, 5 and 8): each refused with a clear 400, 404 or
form error by the API, the pages and the command, never a 500; one answer for an unknown item and
another post's item."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.forms import CampaignForm
from annotation.models import Campaign, Task
from annotation.services import AnnotationError, assignment_claim, campaign_create
from annotation.validators import MAX_LEASE_MINUTES

HUGE = 10**30
HUGE_LEASE = 10**12
BAD_NAMES = [" =1+1", "\n=cmd", "\t@x", "=1+1", "-2+3", "a b", "x" * 51]


def _form_data(dataset, **changes) -> dict:
    data = {
        "name": "crafted",
        "dataset": dataset.pk,
        "questions": ["plausibility"],
        "scale": "1-5",
        "overlap": 2,
        "lease_minutes": 15,
        "gold_rate": 0,
    }
    return {**data, **changes}


@pytest.mark.parametrize(
    "url",
    [
        f"/annotate/{HUGE}/",
        "/annotate/%C2%B2/",
        f"/annotate/1/assignments/{HUGE}/",
        f"/campaigns/{HUGE}/",
        f"/campaigns/{2**63}/progress/",
        f"/api/campaigns/{HUGE}/",
        f"/api/campaigns/{2**63}/progress/",
        "/api/campaigns/%C2%B2/",
        f"/api/assignments/{HUGE}/",
    ],
)
def test_ids_out_of_range_in_urls_are_404(admin_user, url):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404


def test_the_largest_id_is_still_an_id(admin_client, admin_api):
    assert admin_client.get(f"/campaigns/{2**63 - 1}/").status_code == 404
    assert admin_api.get(f"/api/campaigns/{2**63 - 1}/").status_code == 404


def test_a_huge_lease_is_refused_everywhere_and_claims_keep_working(
    admin_client, admin_api, campaign, dataset, annotator
):
    page = admin_client.post(
        reverse("annotation:campaign-create"), _form_data(dataset, lease_minutes=HUGE_LEASE)
    )
    assert page.status_code == 400
    assert f"at most {MAX_LEASE_MINUTES}" in page.content.decode()
    answer = admin_api.post(
        reverse("api-campaign-list"),
        {"name": "crafted", "dataset": "miko", "lease_minutes": HUGE_LEASE},
        format="json",
    )
    assert answer.status_code == 400 and "lease_minutes" in answer.json()
    answer = admin_api.patch(
        reverse("api-campaign-detail", args=[campaign.pk]),
        {"lease_minutes": HUGE_LEASE},
        format="json",
    )
    assert answer.status_code == 400 and "lease_minutes" in answer.json()
    with pytest.raises(CommandError, match=f"at most {MAX_LEASE_MINUTES}"):
        call_command(
            "create_campaign", "crafted", "--dataset", "miko",
            "--lease-minutes", str(HUGE_LEASE), stdout=StringIO(),
        )  # fmt: skip
    with pytest.raises(AnnotationError, match=f"at most {MAX_LEASE_MINUTES}"):
        campaign_create(name="crafted", dataset=dataset, lease_minutes=HUGE_LEASE)
    assert not Campaign.objects.filter(name="crafted").exists()
    campaign.refresh_from_db()
    assert campaign.lease_minutes == 15
    assert assignment_claim(campaign=campaign, annotator=annotator) is not None


@pytest.mark.parametrize("name", BAD_NAMES)
def test_question_names_follow_one_rule_on_form_api_and_command(admin_api, dataset, name):
    form = CampaignForm(data=_form_data(dataset, other_questions=f"relevance,{name}"))
    assert not form.is_valid()
    [message] = form.errors["other_questions"]
    # The form names the question it refuses (stripped of the blanks around it), then the rule.
    assert message.startswith(f"{name.strip()!r}: a question name is")
    message = [message.removeprefix(f"{name.strip()!r}: ")]
    answer = admin_api.post(
        reverse("api-campaign-list"),
        {"name": "crafted", "dataset": "miko", "questions": [{"name": name}]},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["questions"] == {"0": {"name": message}}
    with pytest.raises(AnnotationError, match="a question name is"):
        campaign_create(name="crafted", dataset=dataset, questions=[_spec(name)])
    with pytest.raises(CommandError, match="a question name is"):
        call_command(
            "create_campaign", "crafted", "--dataset", "miko", f"--questions={name}",
            stdout=StringIO(),
        )  # fmt: skip
    assert not Campaign.objects.filter(name="crafted").exists()


def _spec(name):
    from annotation.services import QuestionSpec

    return QuestionSpec(name)


def test_the_page_form_refuses_a_formula_as_a_question_name(admin_client, dataset):
    page = admin_client.post(
        reverse("annotation:campaign-create"), _form_data(dataset, other_questions="=1+1")
    )
    assert page.status_code == 400 and "a question name is" in page.content.decode()
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("item", [HUGE, -1, 0, "²"])
def test_a_gold_item_out_of_range_is_a_400(admin_api, campaign, item):
    answer = admin_api.post(
        reverse("api-campaign-gold", args=[campaign.pk]),
        [{"item": item, "question": "plausibility", "value": 3}],
        format="json",
    )
    assert answer.status_code == 400
    assert list(answer.json()) == ["0"] and list(answer.json()["0"]) == ["item"]


def _foreign_item(campaign, lease) -> int:
    return Task.objects.filter(campaign=campaign).exclude(pk=lease.task_id)[0].post.items.first().pk


def test_unknown_and_foreign_items_get_one_answer_from_the_api(annotator, campaign):
    api = APIClient(raise_request_exception=False)
    api.force_authenticate(annotator)
    task = api.post(reverse("api-task-next", args=[campaign.pk])).json()
    lease = campaign.assignments.get(pk=task["assignment"])
    url = reverse("api-assignment-submit", args=[task["assignment"]])
    question = task["questions"][0]["id"]
    answers = {}
    for item in (10**9, _foreign_item(campaign, lease), HUGE):
        body = {"ratings": [{"item": item, "question": question, "value": 3}]}
        answer = api.post(url, body, format="json")
        assert answer.status_code == 400
        answers[item] = answer.json()
    assert answers[10**9] == {"detail": f"item {10**9} is not an item of this post"}
    foreign = _foreign_item(campaign, lease)
    assert answers[foreign] == {"detail": f"item {foreign} is not an item of this post"}
    assert answers[HUGE] == {"detail": f"item {HUGE} is not an item of this post"}


def test_unknown_and_foreign_items_get_one_answer_on_the_page(
    annotator_client, annotator, campaign
):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    question = campaign.questions.first().pk
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    for item in (10**9, _foreign_item(campaign, lease), HUGE):
        page = annotator_client.post(url, {f"r-{item}-{question}": "3"})
        assert page.status_code == 400
        assert f"item {item} is not an item of this post" in page.content.decode()
