"""Two tabs of one annotator on one post: a submission from the page that is out of date is refused.

Each assignment carries a version that every submission raises; the page and the API send the
version they were shown. Run on both databases: on PostgreSQL the check is part of the finish
statement, elsewhere of its ORM twin.
"""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, Rating, Task
from annotation.selectors import task_view
from annotation.services import (
    AnnotationError,
    StaleSubmission,
    assignment_claim,
    assignment_skip,
    assignment_submit,
    leases_expire,
)
from tests.helpers import full_ratings


def _values(assignment) -> set[int]:
    return set(Rating.objects.filter(assignment=assignment).values_list("value", flat=True))


def test_a_stale_version_is_refused_and_writes_nothing(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    assert lease.version == 0
    view = task_view(assignment=lease)
    # Both tabs were shown version 0; the first submits.
    done = assignment_submit(assignment=lease, ratings=full_ratings(view, 4), version=0)
    assert (done.status, done.version) == ("done", 1)
    stale = Assignment.objects.get(pk=lease.pk)
    stale.status, stale.version = Assignment.Status.LEASED, 0  # the second tab's view of it
    with pytest.raises(StaleSubmission, match="another tab or window") as refused:
        assignment_submit(assignment=stale, ratings=full_ratings(view, 1), version=0)
    assert refused.value.status == 409
    assert _values(lease) == {4}
    assert Assignment.objects.get(pk=lease.pk).version == 1
    # The page that shows version 1 may change the answers, and raises it again.
    again = assignment_submit(assignment=stale, ratings=full_ratings(view, 2), version=1)
    assert (again.status, again.version) == ("done", 2) and _values(lease) == {2}


def test_without_a_version_nothing_is_checked_but_the_version_rises(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=lease)
    assert assignment_submit(assignment=lease, ratings=full_ratings(view)).version == 1
    fresh = Assignment.objects.get(pk=lease.pk)
    assert assignment_submit(assignment=fresh, ratings=full_ratings(view, 5)).version == 2
    assert _values(lease) == {5}


def test_an_expired_lease_with_a_stale_version_takes_no_slot(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=lease)
    leases_expire(campaign=campaign, now=timezone.now() + timedelta(days=1))
    assert Task.objects.get(pk=lease.task_id).taken == 0
    with pytest.raises(StaleSubmission):
        assignment_submit(assignment=lease, ratings=full_ratings(view), version=7)
    assert Task.objects.get(pk=lease.task_id).taken == 0
    assert Assignment.objects.get(pk=lease.pk).status == "expired"
    # At its own version it takes the slot back as before.
    assert (
        assignment_submit(assignment=lease, ratings=full_ratings(view), version=0).status == "done"
    )


def test_a_skipped_post_says_so_whatever_the_version(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=lease)
    assignment_skip(assignment=lease)
    with pytest.raises(AnnotationError, match="skipped"):
        assignment_submit(assignment=lease, ratings=full_ratings(view), version=5)


# --- the API -------------------------------------------------------------------------------------


def _ratings(task: dict, value: int) -> list[dict]:
    return [
        {"item": item["id"], "question": q["id"], "value": value}
        for item in task["items"]
        for q in task["questions"]
    ]


def test_api_hands_out_the_version_and_refuses_a_stale_one(annotator_api, campaign):
    task = annotator_api.post(reverse("api-task-next", args=[campaign.pk])).json()
    assert task["version"] == 0
    url = reverse("api-assignment-submit", args=[task["assignment"]])
    first = annotator_api.post(url, {"ratings": _ratings(task, 4), "version": 0}, format="json")
    assert first.status_code == 200 and first.json()["version"] == 1
    second = annotator_api.post(url, {"ratings": _ratings(task, 1), "version": 0}, format="json")
    assert second.status_code == 409
    assert "another tab or window" in second.json()["detail"]
    assert _values(task["assignment"]) == {4}
    detail = annotator_api.get(reverse("api-assignment-detail", args=[task["assignment"]])).json()
    assert detail["version"] == 1
    # Without a version (older clients) the submission is taken, and the version rises.
    third = annotator_api.post(url, {"ratings": _ratings(task, 2)}, format="json")
    assert third.status_code == 200 and third.json()["version"] == 2


@pytest.mark.parametrize("version", [-1, 2**31, 1.5, True, [0], "one"])
def test_api_refuses_a_version_that_is_not_one(annotator_api, campaign, version):
    task = annotator_api.post(reverse("api-task-next", args=[campaign.pk])).json()
    url = reverse("api-assignment-submit", args=[task["assignment"]])
    response = annotator_api.post(
        url, {"ratings": _ratings(task, 3), "version": version}, format="json"
    )
    assert response.status_code == 400 and "version" in response.json(), response.json()
    assert not Rating.objects.exists()


# --- the page ------------------------------------------------------------------------------------


def _form(view, value: str, version) -> dict:
    data = {f"r-{i.item.pk}-{q.question.pk}": value for i in view.items for q in view.questions}
    data["version"] = version
    return data


def test_the_page_refuses_a_stale_tab_and_shows_what_is_saved(
    annotator_client, campaign, annotator
):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    page = annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    assert b'name="version" value="0"' in page.content
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    view = task_view(assignment=lease)
    assert annotator_client.post(url, _form(view, "4", "0")).status_code == 302
    refused = annotator_client.post(url, _form(view, "1", "0"))
    assert refused.status_code == 409
    html = refused.content.decode()
    assert "submitted from another tab or window" in html and "data-stale" in html
    assert "Below are the answers saved now" in html
    assert 'name="version" value="1"' in html
    assert _values(lease) == {4}
    # htmx swaps only 2xx answers: the same page, as a 200.
    swapped = annotator_client.post(url, _form(view, "1", "0"), headers={"HX-Request": "true"})
    assert swapped.status_code == 200 and b"another tab or window" in swapped.content
    assert _values(lease) == {4}


@pytest.mark.parametrize("version", ["x", "-1", "1e3", "١", "9" * 12])
def test_the_page_refuses_a_version_that_is_not_one(annotator_client, campaign, annotator, version):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    response = annotator_client.post(url, _form(task_view(assignment=lease), "3", version))
    assert response.status_code == 400
    assert b"is not a valid version of this page" in response.content
    assert not Rating.objects.exists()
