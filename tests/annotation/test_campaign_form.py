"""The campaign form and its edit page, through HTTP: choices that follow the dataset, the link
from a finished batch (`?dataset=&batch=`), and broken input of every kind."""

import re

import pytest
from django.urls import reverse

from accounts.services import user_create_admin
from annotation.models import Campaign
from annotation.services import assignment_claim, campaign_create
from generation.models import Batch
from tests.factories import BatchFactory, DatasetFactory, miko_batch

NEW = reverse("annotation:campaign-create")


def _data(dataset, /, **changes) -> dict:
    data = {
        "name": "web",
        "dataset": dataset.pk,
        "questions": ["plausibility"],
        "scale": "1-5",
        "overlap": 2,
        "lease_minutes": 15,
        "gold_rate": 0,
    }
    return {**data, **changes}


@pytest.fixture
def batches(dataset):
    """A finished batch of two kinds, one that failed and one still running."""
    done = miko_batch(dataset=dataset, posts=2, kinds=["xWant", "open"])
    failed = BatchFactory(dataset=dataset, status=Batch.Status.FAILED, error="connection refused")
    running = BatchFactory(dataset=dataset, status=Batch.Status.RUNNING, imported=False)
    return done, failed, running


def test_the_form_lists_the_datasets_batches_with_status_and_their_kinds(
    admin_client, admin_user, dataset, batches, annotator
):
    done, failed, running = batches
    other = miko_batch(dataset=DatasetFactory(name="elsewhere"), posts=1)
    page = admin_client.get(NEW, {"dataset": dataset.pk}).content.decode()
    assert f"#{done.pk} — done" in page and f"#{failed.pk} — failed" in page
    assert f"#{running.pk} — running" in page and f"#{other.pk}" not in page
    assert page.count("disabled") >= 2  # the failed and the running batch cannot be ticked
    assert 'value="xWant"' in page and 'value="open"' in page and 'value="oWant"' not in page
    assert 'name="questions" value="plausibility"' in page and 'name="other_questions"' in page
    assert 'type="checkbox" name="members"' in page and "anna" in page
    # Admins are not offered as members.
    assert f'name="members" value="{annotator.pk}"' in page
    assert f'name="members" value="{admin_user.pk}"' not in page


def test_without_a_dataset_the_form_asks_for_one_first(admin_client, dataset, batches):
    DatasetFactory(name="second")
    page = admin_client.get(NEW).content.decode()
    assert "Choose a dataset to see its batches." in page
    assert 'name="batches"' not in page


def test_a_link_from_a_finished_batch_prefills_dataset_and_batch(admin_client, dataset, batches):
    done, _, _ = batches
    page = admin_client.get(NEW, {"dataset": dataset.pk, "batch": done.pk}).content.decode()
    assert f'<option value="{dataset.pk}" selected>' in page
    assert f'value="{done.pk}"' in page and "checked" in page
    # The batch alone says which dataset.
    page = admin_client.get(NEW, {"batch": done.pk}).content.decode()
    assert f'<option value="{dataset.pk}" selected>' in page


@pytest.mark.parametrize(
    "query, note",
    [
        ({"dataset": "nope"}, "There is no dataset &#x27;nope&#x27;: choose one below."),
        ({"dataset": "999999"}, "There is no dataset &#x27;999999&#x27;"),
        ({"batch": "²"}, "There is no batch &#x27;²&#x27;."),
        ({"batch": str(2**70)}, "There is no batch"),
    ],
)
def test_a_broken_link_says_what_is_wrong_and_still_shows_the_form(
    admin_client, dataset, batches, query, note
):
    page = admin_client.get(NEW, query)
    assert page.status_code == 200 and note in page.content.decode()
    assert 'name="name"' in page.content.decode()


def test_a_link_to_a_failed_batch_says_it_cannot_be_rated(admin_client, dataset, batches):
    _, failed, _ = batches
    other = DatasetFactory(name="elsewhere")
    page = admin_client.get(NEW, {"dataset": dataset.pk, "batch": failed.pk}).content.decode()
    assert f"Batch {failed.pk} is failed: only finished (done) batches can be rated." in page
    page = admin_client.get(NEW, {"dataset": other.pk, "batch": failed.pk}).content.decode()
    assert f"There is no batch &#x27;{failed.pk}&#x27; in dataset elsewhere." in page


def test_create_with_batch_kinds_questions_and_members(admin_client, dataset, batches, annotator):
    done, _, _ = batches
    response = admin_client.post(
        NEW,
        _data(
            dataset,
            batches=[done.pk],
            kinds=["open"],
            questions=["plausibility", "typicality"],
            other_questions="relevance, clarity",
            members=[annotator.pk],
        ),
    )
    campaign = Campaign.objects.get(name="web")
    assert response.status_code == 302
    assert response.url == reverse("annotation:campaign-detail", args=[campaign.pk])
    assert list(campaign.batches.all()) == [done] and campaign.kinds == ["open"]
    assert list(campaign.questions.values_list("name", flat=True)) == [
        "plausibility",
        "typicality",
        "relevance",
        "clarity",
    ]
    assert campaign.questions.get(name="relevance").prompt == "Relevance"
    assert list(campaign.members.all()) == [annotator] and campaign.tasks.count() == 2


@pytest.mark.parametrize(
    "changes, field_error",
    [
        ({"batches": ["failed"]}, "is failed: only finished (done) batches can be rated"),
        ({"batches": ["running"]}, "is running: only finished (done) batches can be rated"),
        ({"batches": ["elsewhere"]}, "Select a valid choice."),
        ({"batches": ["x"]}, "“x” is not a valid value."),
        ({"kinds": ["oWant"]}, "Select a valid choice. oWant is not one of the available"),
        ({"questions": ["nosuch"]}, "Select a valid choice. nosuch is not one of the available"),
        ({"questions": []}, "Choose at least one question, or name your own."),
        ({"other_questions": "fine, =cmd"}, "&#x27;=cmd&#x27;: a question name is 1 to 50"),
        ({"members": ["admin"]}, "Select a valid choice."),
        ({"overlap": 0}, "overlap must be between 1 and 100"),
        ({"dataset": "999999"}, "Select a valid choice."),
        ({"name": "taken"}, "a campaign named &#x27;taken&#x27; already exists"),
    ],
)
def test_broken_input_is_refused_beside_its_field_and_nothing_is_made(
    admin_client, admin_user, dataset, batches, changes, field_error
):
    done, failed, running = batches
    other = miko_batch(dataset=DatasetFactory(name="elsewhere"), posts=1)
    campaign_create(name="taken", dataset=dataset)
    named = {
        "failed": failed.pk,
        "running": running.pk,
        "elsewhere": other.pk,
        "admin": admin_user.pk,
    }
    changes = {
        key: [named.get(v, v) for v in value] if isinstance(value, list) else value
        for key, value in changes.items()
    }
    response = admin_client.post(NEW, _data(dataset, **changes))
    assert response.status_code == 400
    assert field_error in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert set(Campaign.objects.values_list("name", flat=True)) == {"taken"}


def test_refresh_shows_the_new_datasets_batches_and_keeps_what_was_typed(
    admin_client, dataset, batches
):
    second = DatasetFactory(name="second")
    theirs = miko_batch(dataset=second, posts=1, kinds=["oReact"])
    data = _data(dataset, name="typed", dataset=second.pk, refresh="dataset")
    page = admin_client.post(NEW, data)
    assert page.status_code == 200 and not Campaign.objects.exists()
    text = page.content.decode()
    assert f"#{theirs.pk} — done" in text and 'value="oReact"' in text
    assert 'value="typed"' in text and "This field is required" not in text
    # htmx asks for the form alone.
    partial = admin_client.post(NEW, data, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith("{#") or partial.lstrip().startswith("<form")
    assert "<html" not in partial and f"#{theirs.pk} — done" in partial


def test_ticking_batches_narrows_the_kinds(admin_client, dataset, batches):
    done, _, _ = batches
    other = miko_batch(dataset=dataset, posts=1, kinds=["oEffect"])
    page = admin_client.post(NEW, _data(dataset, batches=[other.pk], refresh="batches"))
    text = page.content.decode()
    assert 'value="oEffect"' in text and 'value="xWant"' not in text
    page = admin_client.post(NEW, _data(dataset, refresh="batches")).content.decode()
    assert all(f'value="{kind}"' in page for kind in ("xWant", "open", "oEffect"))


def test_an_admin_member_of_a_campaign_stays_listed_on_its_edit_page(
    admin_client, admin_user, campaign
):
    campaign.members.add(admin_user)
    page = admin_client.get(reverse("annotation:campaign-edit", args=[campaign.pk]))
    assert "ada (admin)" in page.content.decode()


# --- editing -------------------------------------------------------------------------------------


def _edit(campaign):
    return reverse("annotation:campaign-edit", args=[campaign.pk])


def _edit_data(campaign, **changes) -> dict:
    data = {
        "name": campaign.name,
        "dataset": campaign.dataset_id,
        "batches": list(campaign.batches.values_list("pk", flat=True)),
        "questions": list(campaign.questions.values_list("name", flat=True)),
        "scale": "1-5",
        "overlap": campaign.overlap,
        "members": list(campaign.members.values_list("pk", flat=True)),
        "instructions": campaign.instructions,
        "lease_minutes": campaign.lease_minutes,
        "gold_rate": campaign.gold_rate,
        "is_active": "on",
        "show_gold_accuracy": "on",
    }
    return {**data, **changes}


def test_the_campaign_page_links_to_the_edit_page_not_the_django_admin(admin_client, campaign):
    page = admin_client.get(reverse("annotation:campaign-detail", args=[campaign.pk]))
    assert f'href="{_edit(campaign)}"' in page.content.decode()
    assert "/admin/annotation/campaign/" not in page.content.decode()
    form = admin_client.get(_edit(campaign)).content.decode()
    assert 'value="pilot"' in form and "Save changes" in form


def test_edit_before_anyone_started_changes_questions_k_and_items(admin_client, campaign, dataset):
    response = admin_client.post(
        _edit(campaign),
        _edit_data(
            campaign,
            name="renamed",
            questions=["typicality"],
            other_questions="clarity",
            scale="binary",
            overlap=1,
            kinds=["xWant"],
        ),
    )
    assert response.status_code == 302, response.content.decode()
    campaign.refresh_from_db()
    assert campaign.name == "renamed" and campaign.overlap == 1 and campaign.kinds == ["xWant"]
    assert [(q.name, q.scale) for q in campaign.questions.all()] == [
        ("typicality", "binary"),
        ("clarity", "binary"),
    ]
    assert campaign.tasks.count() == 4


def test_once_started_the_setup_is_fixed_and_settings_still_change(
    admin_client, campaign, annotator
):
    assignment_claim(campaign=campaign, annotator=annotator)
    form = admin_client.get(_edit(campaign)).content.decode()
    assert "Annotators have started (1 post handed out)" in form
    assert re.search(r'<input[^>]*name="overlap"[^>]*disabled', form)
    assert not re.search(r'<input[^>]*name="lease_minutes"[^>]*disabled', form)
    # A crafted post cannot change what is fixed: the fixed fields keep their values.
    response = admin_client.post(
        _edit(campaign), _edit_data(campaign, overlap=5, questions=["typicality"], lease_minutes=7)
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.overlap == 2 and campaign.lease_minutes == 7
    assert list(campaign.questions.values_list("name", flat=True)) == [
        "plausibility",
        "typicality",
    ]


def test_edit_refuses_broken_settings_beside_the_field(admin_client, campaign):
    response = admin_client.post(_edit(campaign), _edit_data(campaign, lease_minutes=0))
    assert response.status_code == 400
    assert "the lease must last at least one minute" in response.content.decode()
    campaign_create(name="other", dataset=campaign.dataset)
    response = admin_client.post(_edit(campaign), _edit_data(campaign, name="other"))
    assert response.status_code == 400
    assert "a campaign named &#x27;other&#x27; already exists" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.name == "pilot" and campaign.lease_minutes == 15


def test_closing_a_campaign_from_the_edit_page(admin_client, campaign):
    data = _edit_data(campaign)
    del data["is_active"]
    assert admin_client.post(_edit(campaign), data).status_code == 302
    campaign.refresh_from_db()
    assert not campaign.is_active and campaign.show_gold_accuracy


def test_annotators_cannot_open_the_form_or_the_edit_page(annotator_client, campaign):
    assert annotator_client.get(NEW).status_code == 403
    assert annotator_client.get(_edit(campaign)).status_code == 403
    assert annotator_client.post(_edit(campaign), {"name": "x"}).status_code == 403


def test_a_second_admin_is_not_offered_as_member(admin_client, dataset, batches):
    user_create_admin(username="bea", password="x" * 12)
    page = admin_client.get(NEW, {"dataset": dataset.pk}).content.decode()
    assert "bea" not in page
