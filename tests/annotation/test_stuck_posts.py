"""Posts that cannot reach k: found, listed for the admin, and the ways out (more members, a post
reopened), through the services, the API and the campaign page."""

import pytest
from django.urls import reverse

from accounts.services import user_create_annotator
from annotation.models import Assignment
from annotation.selectors import campaign_progress, task_view
from annotation.services import (
    AnnotationError,
    assignment_claim,
    assignment_skip,
    assignment_submit,
    assignments_reopen,
    campaign_add_members,
    campaign_create,
)
from annotation.stuck_posts import stuck_posts
from tests.factories import miko_batch
from tests.helpers import full_ratings


def _rate(campaign, user):
    lease = assignment_claim(campaign=campaign, annotator=user)
    return assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))


@pytest.fixture
def skipped(campaign, annotator, other_annotator):
    """k = 2, two members: anna skips her first post, otto rates it. It can never reach k."""
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    assignment_skip(assignment=lease)
    theirs = assignment_claim(campaign=campaign, annotator=other_annotator)
    assert theirs.post_id == lease.post_id  # closest to completion first
    assignment_submit(assignment=theirs, ratings=full_ratings(task_view(assignment=theirs)))
    return lease


def test_a_skipped_post_that_nobody_else_can_take_is_stuck(campaign, skipped):
    report = stuck_posts(campaign=campaign)
    assert (report.k, report.members, report.total) == (2, 2, 1)
    [post] = report.posts
    assert post.post_id == skipped.post_id and post.external_id == skipped.post.external_id
    assert (post.done, post.leased, post.skipped, post.expired) == (1, 0, 1, 0)
    assert (post.available, post.missing) == (0, 1)


def test_nothing_is_stuck_while_a_member_can_still_take_the_post(
    campaign, annotator, other_annotator
):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    assignment_skip(assignment=lease)
    # otto alone can give it one rating of the two it needs.
    assert stuck_posts(campaign=campaign).total == 1
    campaign.overlap = 1
    campaign.save()
    assert stuck_posts(campaign=campaign).total == 0  # otto alone can finish it
    third = user_create_annotator(username="tess", password="x" * 12)
    campaign.overlap = 2
    campaign.save()
    campaign_add_members(campaign=campaign, members=[third])
    assert stuck_posts(campaign=campaign).total == 0  # otto and tess can finish it


def test_fewer_members_than_k_leaves_every_unfinished_post_stuck(dataset, annotator):
    miko_batch(dataset=dataset, posts=3)
    campaign = campaign_create(name="small", dataset=dataset, overlap=3, members=[annotator])
    _rate(campaign, annotator)
    report = stuck_posts(campaign=campaign, limit=2)
    assert (report.k, report.members, report.total, len(report.posts)) == (3, 1, 3, 2)
    assert sorted(p.missing for p in report.posts) == [2, 2]  # the rated one, and an untouched
    empty = campaign_create(name="nobody", dataset=dataset, overlap=1)
    assert stuck_posts(campaign=empty).total == 3


def test_an_inactive_member_does_not_count(campaign, annotator, other_annotator):
    other_annotator.is_active = False
    other_annotator.save()
    assert stuck_posts(campaign=campaign).total == 4  # k = 2 with one active member


def test_expired_leases_keep_their_annotator_off_the_post_too(campaign, annotator, skipped):
    Assignment.objects.filter(pk=skipped.pk).update(status=Assignment.Status.EXPIRED)
    [post] = stuck_posts(campaign=campaign).posts
    assert (post.skipped, post.expired) == (0, 1)


def test_reopening_gives_the_post_back_and_the_campaign_can_finish(campaign, annotator, skipped):
    assert assignments_reopen(campaign=campaign, post_id=skipped.post_id) == 1
    assert stuck_posts(campaign=campaign).total == 0
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    assert lease.post_id == skipped.post_id  # offered again, closest to completion
    assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))
    assert campaign_progress(campaign=campaign).posts_finished == 1


def test_reopen_refuses_a_post_without_skips_and_a_post_of_another_campaign(
    campaign, dataset, skipped
):
    assignments_reopen(campaign=campaign, post_id=skipped.post_id)
    with pytest.raises(AnnotationError, match="has no skipped or expired assignment") as error:
        assignments_reopen(campaign=campaign, post_id=skipped.post_id)
    assert error.value.status == 409
    outside = miko_batch(dataset=dataset, posts=1).items.first().post_id
    with pytest.raises(AnnotationError, match="is not in campaign 'pilot'") as error:
        assignments_reopen(campaign=campaign, post_id=outside)
    assert error.value.status == 404


def test_adding_members_counts_only_new_ones_and_refuses_none(campaign, annotator):
    tess = user_create_annotator(username="tess", password="x" * 12)
    assert campaign_add_members(campaign=campaign, members=[annotator, tess]) == 1
    assert set(campaign.members.values_list("username", flat=True)) == {"anna", "otto", "tess"}
    with pytest.raises(AnnotationError, match="choose at least one annotator"):
        campaign_add_members(campaign=campaign, members=[])


# --- API -----------------------------------------------------------------------------------------


def test_api_lists_stuck_posts_and_reopens_one(admin_api, campaign, skipped):
    url = reverse("api-campaign-stuck-posts", args=[campaign.pk])
    body = admin_api.get(url).json()
    assert body["k"] == 2 and body["members"] == 2 and body["total"] == 1
    assert body["posts"] == [
        {
            "post": skipped.post_id,
            "external_id": skipped.post.external_id,
            "done": 1,
            "leased": 0,
            "skipped": 1,
            "expired": 0,
            "available": 0,
            "missing": 1,
        }
    ]
    reopen = reverse("api-campaign-post-reopen", args=[campaign.pk, skipped.post_id])
    answer = admin_api.post(reopen)
    assert answer.status_code == 200
    assert answer.json() == {"post": skipped.post_id, "reopened": 1}
    assert admin_api.get(url).json()["total"] == 0
    again = admin_api.post(reopen)
    assert again.status_code == 409 and "no skipped or expired" in again.json()["detail"]


def test_api_reopen_of_a_post_outside_the_campaign_is_a_404(admin_api, campaign, dataset):
    outside = miko_batch(dataset=dataset, posts=1).items.first().post_id
    answer = admin_api.post(reverse("api-campaign-post-reopen", args=[campaign.pk, outside]))
    assert answer.status_code == 404
    assert admin_api.post(f"/api/campaigns/{campaign.pk}/posts/²/reopen/").status_code == 404


def test_api_adds_members_and_refuses_broken_input(admin_api, campaign, skipped):
    user_create_annotator(username="tess", password="x" * 12)
    url = reverse("api-campaign-members", args=[campaign.pk])
    answer = admin_api.post(url, {"members": ["tess", "anna"]}, format="json")
    assert answer.status_code == 200
    assert answer.json() == {"added": 1, "members": ["anna", "otto", "tess"]}
    stuck = reverse("api-campaign-stuck-posts", args=[campaign.pk])
    assert admin_api.get(stuck).json()["total"] == 0  # tess can take the skipped post
    for body in ({"members": []}, {"members": ["nobody"]}, {"members": "tess"}, {}, []):
        answer = admin_api.post(url, body, format="json")
        assert answer.status_code == 400, body
    assert campaign.members.count() == 3


def test_api_is_for_admins_only(annotator_api, campaign, skipped):
    for method, url in [
        ("get", reverse("api-campaign-stuck-posts", args=[campaign.pk])),
        ("post", reverse("api-campaign-members", args=[campaign.pk])),
        ("post", reverse("api-campaign-post-reopen", args=[campaign.pk, skipped.post_id])),
    ]:
        assert getattr(annotator_api, method)(url, {}, format="json").status_code == 403
    assert Assignment.objects.filter(pk=skipped.pk).exists()


# --- the campaign page ---------------------------------------------------------------------------


def test_the_campaign_page_lists_stuck_posts_with_a_way_out(admin_client, campaign, skipped):
    detail = reverse("annotation:campaign-detail", args=[campaign.pk])
    page = admin_client.get(detail).content.decode()
    assert "Posts that cannot reach k" in page and skipped.post.external_id in page
    reopen = reverse("annotation:campaign-post-reopen", args=[campaign.pk, skipped.post_id])
    assert f'action="{reopen}"' in page and 'id="add-members"' in page
    response = admin_client.post(reopen, follow=True)
    assert "reopened: 1 annotator who skipped it" in response.content.decode()
    assert "Posts that cannot reach k" not in response.content.decode()
    response = admin_client.post(reopen, follow=True)
    assert "has no skipped or expired assignment to reopen" in response.content.decode()


def test_the_campaign_page_adds_annotators_and_refuses_none(admin_client, campaign, skipped):
    tess = user_create_annotator(username="tess", password="x" * 12)
    url = reverse("annotation:campaign-members-add", args=[campaign.pk])
    response = admin_client.post(url, {}, follow=True)
    assert "Choose at least one annotator to add." in response.content.decode()
    response = admin_client.post(url, {"members": [campaign.members.first().pk]}, follow=True)
    assert "Select a valid choice." in response.content.decode()  # already a member
    response = admin_client.post(url, {"members": [tess.pk]}, follow=True)
    assert "1 annotator added: tess." in response.content.decode()
    assert "Posts that cannot reach k" not in response.content.decode()


def test_page_actions_are_for_admins_only(annotator_client, campaign, skipped):
    reopen = reverse("annotation:campaign-post-reopen", args=[campaign.pk, skipped.post_id])
    assert annotator_client.post(reopen).status_code == 403
    members = reverse("annotation:campaign-members-add", args=[campaign.pk])
    assert annotator_client.post(members, {"members": [1]}).status_code == 403
    assert Assignment.objects.filter(pk=skipped.pk).exists()
