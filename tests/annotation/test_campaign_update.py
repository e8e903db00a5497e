"""Changing a campaign: its settings at any time; what it rates, its questions and k only until the
first post is handed out. The service, the API's PATCH and creation refuse the same way."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Campaign, GoldAnswer
from annotation.services import (
    AnnotationError,
    QuestionSpec,
    assignment_claim,
    assignment_skip,
    campaign_create,
    campaign_update,
    gold_answers_set,
)
from generation.models import Batch
from tests.factories import BatchFactory, DatasetFactory, miko_batch


def test_before_the_first_post_everything_can_change(campaign, dataset):
    extra = miko_batch(dataset=dataset, posts=2, kinds=["oWant"])
    first = campaign.batches.get()
    item = campaign.tasks.first().post.items.get(kind="xWant")
    gold_answers_set(campaign=campaign, answers=[(item.pk, "plausibility", 4)])
    campaign_update(
        campaign=campaign,
        batches=[first, extra],
        kinds=["xWant", "oWant"],
        overlap=3,
        questions=[QuestionSpec("plausibility", "Plausible?", "1-7"), QuestionSpec("clarity")],
    )
    campaign.refresh_from_db()
    assert campaign.overlap == 3 and sorted(campaign.kinds) == ["oWant", "xWant"]
    assert campaign.tasks.count() == 6
    assert [(q.name, q.prompt, q.scale) for q in campaign.questions.all()] == [
        ("plausibility", "Plausible?", "1-7"),
        ("clarity", "", "1-5"),
    ]
    # The question that kept its name kept its gold answer, and its post stays a gold post.
    assert GoldAnswer.objects.filter(campaign=campaign).count() == 1
    assert campaign.tasks.filter(is_gold=True, post=item.post).exists()
    # Narrowing the items drops the tasks of posts left without any.
    campaign_update(campaign=campaign, batches=[extra], kinds=[])
    assert campaign.tasks.count() == 2


def test_a_new_dataset_takes_its_finished_batches(campaign):
    other = DatasetFactory(name="other")
    theirs = miko_batch(dataset=other, posts=3)
    BatchFactory(dataset=other, status=Batch.Status.FAILED)
    campaign_update(campaign=campaign, dataset=other)
    assert list(campaign.batches.all()) == [theirs] and campaign.tasks.count() == 3
    with pytest.raises(AnnotationError, match="belongs to another dataset") as error:
        campaign_update(campaign=campaign, batches=[Batch.objects.exclude(dataset=other).first()])
    assert error.value.field == "batches"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"overlap": 3}, "k cannot change once annotators have started"),
        ({"kinds": ["xWant"]}, "kinds cannot change once"),
        ({"questions": [QuestionSpec("clarity")]}, "questions cannot change once"),
        (
            {"questions": [QuestionSpec("plausibility", "Could this be why", "binary")]},
            "questions cannot change once",
        ),
        ({"overlap": 3, "kinds": ["open"]}, "kinds, k cannot change once"),
    ],
)
def test_once_started_the_setup_is_refused_by_name(campaign, annotator, fields, message):
    assignment_skip(assignment=assignment_claim(campaign=campaign, annotator=annotator))
    with pytest.raises(AnnotationError, match=message) as error:
        campaign_update(campaign=campaign, lease_minutes=9, **fields)
    assert "(1 post handed out): make a new campaign" in str(error.value)
    campaign.refresh_from_db()
    assert campaign.overlap == 2 and campaign.kinds == [] and campaign.lease_minutes == 15
    # The same values as now are no change, and settings still change.
    campaign_update(campaign=campaign, overlap=2, kinds=[], lease_minutes=9)
    campaign.refresh_from_db()
    assert campaign.lease_minutes == 9


def test_unfinished_and_failed_batches_are_refused_on_create_and_update(campaign, dataset):
    failed = BatchFactory(dataset=dataset, status=Batch.Status.FAILED)
    running = BatchFactory(dataset=dataset, status=Batch.Status.RUNNING)
    for batch in (failed, running):
        with pytest.raises(AnnotationError, match=f"batch {batch.pk} is {batch.status}: only"):
            campaign_create(name="x", dataset=dataset, batches=[batch])
        with pytest.raises(AnnotationError, match=f"batch {batch.pk} is {batch.status}"):
            campaign_update(campaign=campaign, batches=[batch])
    # Without batches named, only the finished ones are taken.
    made = campaign_create(name="all", dataset=dataset)
    assert set(made.batches.all()) == set(campaign.batches.all())


def test_a_name_in_use_is_refused_and_a_rename_works(campaign, dataset):
    campaign_create(name="other", dataset=dataset)
    with pytest.raises(AnnotationError, match="'other' already exists") as error:
        campaign_update(campaign=campaign, name="other")
    assert error.value.field == "name"
    campaign_update(campaign=campaign, name="pilot")  # its own name is no conflict
    campaign_update(campaign=campaign, name="renamed")
    campaign.refresh_from_db()
    assert campaign.name == "renamed"


# --- API -----------------------------------------------------------------------------------------


def _patch(api, campaign, body):
    return api.patch(reverse("api-campaign-detail", args=[campaign.pk]), body, format="json")


def test_api_patch_changes_the_setup_before_the_first_post(admin_api, campaign):
    answer = _patch(
        admin_api,
        campaign,
        {"overlap": 1, "kinds": ["open"], "questions": [{"name": "clarity", "scale": "binary"}]},
    )
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["overlap"] == 1 and body["kinds"] == ["open"]
    assert [(q["name"], q["prompt"], q["scale"]) for q in body["questions"]] == [
        ("clarity", "Clarity", "binary")
    ]


def test_api_patch_refuses_the_setup_once_started(admin_api, campaign, annotator):
    assignment_claim(campaign=campaign, annotator=annotator)
    answer = _patch(admin_api, campaign, {"questions": [{"name": "clarity"}], "lease_minutes": 3})
    assert answer.status_code == 400
    [message] = answer.json()["questions"]
    assert message.startswith("questions cannot change once annotators have started")
    campaign.refresh_from_db()
    assert campaign.lease_minutes == 15


@pytest.mark.parametrize(
    "body, field",
    [
        ({"overlap": 0}, "overlap"),
        ({"overlap": "many"}, "overlap"),
        ({"questions": [{"name": "=1+1"}]}, "questions"),
        ({"questions": [{"name": "a"}, {"name": "a"}]}, "questions"),
        ({"questions": [{"name": "a", "scale": "1-100"}]}, "questions"),
        ({"batches": [2**40]}, "batches"),
        ({"dataset": "nosuch"}, "dataset"),
        ({"kinds": "xWant"}, "kinds"),
        ({"name": ""}, "name"),
    ],
)
def test_api_patch_refuses_broken_input(admin_api, campaign, body, field):
    answer = _patch(admin_api, campaign, body)
    assert answer.status_code == 400 and field in answer.json(), answer.json()
    campaign.refresh_from_db()
    assert campaign.overlap == 2 and campaign.questions.count() == 2


def test_api_patch_refuses_a_failed_batch(admin_api, campaign, dataset):
    failed = BatchFactory(dataset=dataset, status=Batch.Status.FAILED)
    answer = _patch(admin_api, campaign, {"batches": [failed.pk]})
    assert answer.status_code == 400
    assert answer.json() == {
        "batches": [f"batch {failed.pk} is failed: only finished (done) batches can be rated"]
    }


def test_create_campaign_refuses_a_failed_batch_by_name(dataset):
    failed = BatchFactory(dataset=dataset, status=Batch.Status.FAILED)
    with pytest.raises(CommandError, match=f"batch {failed.pk} is failed: only finished"):
        call_command(
            "create_campaign", "cmd", "--dataset", dataset.name, "--batch", str(failed.pk),
            stdout=StringIO(),
        )  # fmt: skip
    assert not Campaign.objects.exists()
