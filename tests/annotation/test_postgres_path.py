"""PostgreSQL's plain-SQL annotator path gives what the ORM path gives, under the same rules."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.services import user_create_annotator
from annotation.apis import TaskSerializer
from annotation.hot_path import (
    member_campaign,
    member_campaign_and_lease,
    own_assignment,
    own_assignment_to_submit,
    rating_targets,
    task_data,
    task_data_from_view,
)
from annotation.models import Assignment, Rating, Task
from annotation.selectors import task_view
from annotation.services import (
    assignment_claim,
    assignment_submit,
    campaign_create,
    leases_expire,
)
from generation.models import Post
from tests.factories import DatasetFactory, miko_batch
from tests.helpers import full_ratings

pytestmark = pytest.mark.postgres


def test_task_data_matches_the_orm_view_and_the_schema(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    post = Post.objects.get(pk=lease.post_id)
    post.image.save("photo.png", ContentFile(b"not really a png"), save=True)
    fresh = task_data(assignment=lease)
    assert fresh == task_data_from_view(assignment=lease)
    assert fresh == TaskSerializer(task_view(assignment=lease)).data
    assert fresh["post"]["image"].endswith(".png")
    assert fresh["description"].startswith("A photo that goes with")
    assert len(fresh["items"]) == 10 and len(fresh["questions"]) == 2
    assert all(item["my_values"] == {} for item in fresh["items"])

    done = assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease), 4))
    rated = task_data(assignment=done)
    assert rated == task_data_from_view(assignment=done)
    assert all(set(item["my_values"].values()) == {4} for item in rated["items"])


def test_task_data_keeps_to_the_campaign_kinds_and_batches(dataset, annotator):
    miko_batch(dataset=dataset, posts=2)
    other_batch = miko_batch(dataset=dataset, posts=0)
    campaign = campaign_create(
        name="kinds", dataset=dataset, kinds=["xWant", "oWant"], members=[annotator]
    )
    # Items of a batch outside the campaign, on the same post, are not shown.
    campaign.batches.remove(other_batch)
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    data = task_data(assignment=lease)
    assert [item["kind"] for item in data["items"]] == ["xWant", "oWant"]
    assert data == task_data_from_view(assignment=lease)


def test_membership_lookups_refuse_strangers_and_inactive_campaigns(
    campaign, annotator, other_annotator
):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    stranger = user_create_annotator(username="stranger", password="x")
    assert member_campaign(user=annotator, campaign_id=campaign.pk).pk == campaign.pk
    assert member_campaign(user=stranger, campaign_id=campaign.pk) is None
    found = own_assignment(user=annotator, assignment_id=lease.pk)
    assert (found.pk, found.campaign.pk, found.campaign.overlap) == (lease.pk, campaign.pk, 2)
    assert own_assignment(user=other_annotator, assignment_id=lease.pk) is None
    # The combined lookups of the two hot calls agree with the single ones.
    found_campaign, open_lease = member_campaign_and_lease(user=annotator, campaign_id=campaign.pk)
    assert (found_campaign.pk, open_lease.pk) == (campaign.pk, lease.pk)
    assert member_campaign_and_lease(user=other_annotator, campaign_id=campaign.pk)[1] is None
    assert member_campaign_and_lease(user=stranger, campaign_id=campaign.pk) == (None, None)
    to_submit, targets = own_assignment_to_submit(user=annotator, assignment_id=lease.pk)
    assert to_submit.pk == lease.pk and targets == rating_targets(assignment=lease)
    assert len(targets.items) == 10 and len(targets.questions) == 2
    assert own_assignment_to_submit(user=other_annotator, assignment_id=lease.pk) == (None, None)
    campaign.is_active = False
    campaign.save()
    assert member_campaign(user=annotator, campaign_id=campaign.pk) is None
    assert own_assignment(user=annotator, assignment_id=lease.pk) is None
    # `kinds` is left out of the plain query and read when asked for.
    campaign.is_active = True
    campaign.kinds = ["xWant"]
    campaign.save()
    assert member_campaign(user=annotator, campaign_id=campaign.pk).kinds == ["xWant"]


def test_seconds_spent_never_exceed_the_lease(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    ratings = full_ratings(task_view(assignment=lease))
    later = lease.leased_at + timedelta(seconds=30)
    done = assignment_submit(assignment=lease, ratings=ratings, seconds=3600, now=later)
    assert done.seconds_spent == pytest.approx(30)
    assert Assignment.objects.get(pk=lease.pk).seconds_spent == pytest.approx(30)
    stored = Rating.objects.filter(assignment=lease).values_list("seconds", flat=True)
    assert list(stored) == pytest.approx([30 / len(ratings)] * len(ratings))

    other = assignment_claim(campaign=campaign, annotator=annotator)
    ratings = full_ratings(task_view(assignment=other))
    done = assignment_submit(
        assignment=other, ratings=ratings, now=other.leased_at + timedelta(seconds=12)
    )
    assert done.seconds_spent == pytest.approx(12)  # not measured by the page: the lease time


def test_expiry_in_one_statement_touches_only_its_campaign(dataset, annotator):
    miko_batch(dataset=dataset, posts=3)
    first = campaign_create(name="first", dataset=dataset, members=[annotator])
    second = campaign_create(name="second", dataset=dataset, members=[annotator])
    a = assignment_claim(campaign=first, annotator=annotator)
    b = assignment_claim(campaign=second, annotator=annotator)
    later = timezone.now() + timedelta(hours=1)
    assert leases_expire(campaign=first, now=later) == 1
    assert Assignment.objects.get(pk=a.pk).status == Assignment.Status.EXPIRED
    assert Assignment.objects.get(pk=b.pk).status == Assignment.Status.LEASED
    assert Task.objects.get(pk=a.task_id).taken == 0
    assert leases_expire(now=later) == 1  # every campaign
    assert Task.objects.get(pk=b.task_id).taken == 0


def test_token_lookup_refuses_unknown_keys_and_inactive_users(annotator, campaign):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")
    url = f"/api/campaigns/{campaign.pk}/next/"
    response = api.post(url)
    assert response.status_code == 200
    assert response.wsgi_request.user.pk == annotator.pk
    annotator.is_active = False
    annotator.save()
    response = api.post(url)
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."
    api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = api.post(url)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."


def test_submit_bodies_outside_the_plain_shape_go_through_the_serializer(annotator_api, campaign):
    task = annotator_api.post(f"/api/campaigns/{campaign.pk}/next/").json()
    url = f"/api/assignments/{task['assignment']}/submit/"
    ratings = [
        {"item": str(item["id"]), "question": q["id"], "value": "4"}  # numbers as strings
        for item in task["items"]
        for q in task["questions"]
    ]
    bad = [dict(ratings[0], value="four"), *ratings[1:]]
    response = annotator_api.post(url, {"ratings": bad}, format="json")
    assert response.status_code == 400
    assert "valid integer" in str(response.json()["ratings"])
    response = annotator_api.post(url, {"ratings": ratings, "seconds": -1}, format="json")
    assert response.status_code == 400 and "seconds" in response.json()
    assert not Rating.objects.exists()
    response = annotator_api.post(url, {"ratings": ratings, "seconds": 2}, format="json")
    assert response.status_code == 200, response.json()
    assert set(Rating.objects.values_list("value", flat=True)) == {4}


@pytest.mark.django_db(transaction=True)
def test_only_the_claim_commits_without_waiting_for_the_disk():
    dataset = DatasetFactory(name="async")
    miko_batch(dataset=dataset, posts=2, kinds=["xWant"])
    user = user_create_annotator(username="quick", password="x")
    campaign = campaign_create(name="async", dataset=dataset, members=[user])
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")  # hold the claim's transaction open to look inside it
        assignment_claim(campaign=campaign, annotator=user)
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "off"  # for the claim's transaction only
        cursor.execute("ROLLBACK")
    lease = assignment_claim(campaign=campaign, annotator=user)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"  # the next transaction waits for the disk again
    assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.DONE


def test_the_hot_path_works_with_prepared_statements_turned_off(campaign, annotator):
    """DATABASE_PREPARED=false (a pooler in transaction mode): same statements, never prepared."""
    connection.ensure_connection()
    psycopg_connection = connection.connection
    threshold = psycopg_connection.prepare_threshold
    psycopg_connection.prepare_threshold = None
    try:
        lease = assignment_claim(campaign=campaign, annotator=annotator)
        data = task_data(assignment=lease)
        done = assignment_submit(
            assignment=lease, ratings=full_ratings(task_view(assignment=lease))
        )
        assert done.status == Assignment.Status.DONE and len(data["items"]) == 10
        assert Rating.objects.filter(assignment=lease).count() == 20
    finally:
        psycopg_connection.prepare_threshold = threshold
