"""A campaign's settings follow one rule each wherever they are set; the admin edits only what the
API lets change."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.forms import CampaignForm
from annotation.models import Assignment
from annotation.services import AnnotationError, assignment_claim, campaign_update
from annotation.validators import MAX_LEASE_MINUTES, MAX_OVERLAP
from generation.models import Batch
from tests.factories import BatchFactory


def test_campaign_update_validates_and_writes_only_what_changed(campaign, annotator):
    with pytest.raises(AnnotationError, match="the lease must last at least one minute") as error:
        campaign_update(campaign=campaign, lease_minutes=0)
    assert error.value.field == "lease_minutes"
    with pytest.raises(AnnotationError, match="gold rate must be between 0 and 1"):
        campaign_update(campaign=campaign, gold_rate=1.5)
    with pytest.raises(AnnotationError, match="has no field taken"):
        campaign_update(campaign=campaign, taken=5)
    assignment_claim(campaign=campaign, annotator=annotator)
    with pytest.raises(AnnotationError, match="k cannot change once annotators have started"):
        campaign_update(campaign=campaign, overlap=5)
    with CaptureQueriesContext(connection) as queries:
        campaign_update(campaign=campaign, lease_minutes=5, instructions=campaign.instructions)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1 and "lease_minutes" in updates[0]
    assert "instructions" not in updates[0] and "overlap" not in updates[0]
    campaign.refresh_from_db()
    assert campaign.lease_minutes == 5
    with CaptureQueriesContext(connection) as queries:
        campaign_update(campaign=campaign, lease_minutes=5)
    assert not any(q["sql"].startswith("UPDATE") for q in queries.captured_queries)


def test_form_and_api_refuse_with_the_same_messages(admin_api, campaign, dataset):
    form = CampaignForm(
        data={
            "name": "x",
            "dataset": dataset.pk,
            "questions": "plausibility",
            "scale": "1-5",
            "overlap": MAX_OVERLAP + 1,
            "lease_minutes": MAX_LEASE_MINUTES + 1,
            "gold_rate": 2,
        }
    )
    assert not form.is_valid()
    url = reverse("api-campaign-detail", args=[campaign.pk])
    answer = admin_api.patch(url, {"lease_minutes": MAX_LEASE_MINUTES + 1}, format="json")
    assert answer.status_code == 400
    assert answer.json()["lease_minutes"] == form.errors["lease_minutes"]
    answer = admin_api.patch(url, {"gold_rate": 2}, format="json")
    assert answer.status_code == 400 and answer.json()["gold_rate"] == form.errors["gold_rate"]
    created = admin_api.post(
        reverse("api-campaign-list"),
        {"name": "y", "dataset": "miko", "overlap": MAX_OVERLAP + 1},
        format="json",
    )
    assert created.status_code == 400 and created.json()["overlap"] == form.errors["overlap"]


def test_the_admin_shows_overlap_taken_and_status_read_only(admin_client, campaign, annotator):
    page = admin_client.get(f"/admin/annotation/campaign/{campaign.pk}/change/").content.decode()
    assert 'name="questions-0-name"' in page  # the questions change until a post is handed out
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    page = admin_client.get(f"/admin/annotation/campaign/{campaign.pk}/change/").content.decode()
    assert 'name="overlap"' not in page and 'name="lease_minutes"' in page
    assert 'name="questions-0-name"' not in page and 'name="questions-0-DELETE"' not in page
    page = admin_client.get(f"/admin/annotation/task/{lease.task_id}/change/").content.decode()
    assert 'name="taken"' not in page
    page = admin_client.get(f"/admin/annotation/assignment/{lease.pk}/change/").content.decode()
    assert 'name="status"' not in page
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.LEASED


def test_the_admin_checks_settings_with_the_shared_validators(admin_client, campaign):
    page = admin_client.get(f"/admin/annotation/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    response = admin_client.post(
        f"/admin/annotation/campaign/{campaign.pk}/change/",
        {
            "name": campaign.name,
            "dataset": campaign.dataset_id,
            "kinds": "[]",
            "lease_minutes": 0,
            "instructions": "",
            "gold_rate": 0,
            "is_active": "on",
            "show_gold_accuracy": "on",
            "questions-TOTAL_FORMS": 0,
            "questions-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "the lease must last at least one minute" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.lease_minutes == 15


def test_the_admin_offers_only_finished_batches(admin_client, campaign, dataset):
    failed = BatchFactory(dataset=dataset, status=Batch.Status.FAILED)
    done = campaign.batches.get()
    page = admin_client.get("/admin/annotation/campaign/add/").content.decode()
    # The batches' own menu: other menus (members) number their options from 1 too.
    batches = re.search(r'<select name="batches".*?</select>', page, re.S).group(0)
    assert f'<option value="{done.pk}">' in batches
    assert f'<option value="{failed.pk}">' not in batches
