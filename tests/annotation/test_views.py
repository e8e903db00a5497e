from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from accounts.services import user_create_annotator
from annotation.models import Assignment, Campaign, Rating, Task
from annotation.selectors import task_view, tasks_with_done
from annotation.services import assignment_claim
from tests.factories import miko_batch
from tests.helpers import PASSWORD


def form_data(view, value="3"):
    return {
        f"r-{item.item.pk}-{q.question.pk}": value for item in view.items for q in view.questions
    }


def test_home_lists_my_campaigns_with_progress(annotator_client, campaign):
    page = annotator_client.get(reverse("annotation:home"))
    assert page.status_code == 200
    assert b"pilot" in page.content
    assert b"0 / 8" in page.content


def test_rate_page_shows_post_items_and_questions(annotator_client, campaign, annotator):
    page = annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    assert page.status_code == 200
    lease = Assignment.objects.get(annotator=annotator)
    html = page.content.decode()
    assert lease.post.text in html
    assert f"A photo that goes with {lease.post.external_id}." in html
    assert "What the user wants after posting" in html
    assert html.count('type="radio"') == 10 * 2 * 5
    assert "<strong>every</strong>" in html and "<script>alert" not in html
    # A reload hands back the same lease.
    annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_plain_form_submit_then_next_post(annotator_client, campaign, annotator):
    annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    lease = Assignment.objects.get(annotator=annotator)
    # The time the browser reports is trusted up to the time since the lease began.
    Assignment.objects.filter(pk=lease.pk).update(leased_at=lease.leased_at - timedelta(minutes=1))
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    data = form_data(task_view(assignment=lease)) | {"seconds": "12.5"}
    response = annotator_client.post(url, data)
    assert response.status_code == 302
    assert response.url == reverse("annotation:task-next", args=[campaign.pk])
    again = annotator_client.post(url, data)  # a double click or a reload
    assert again.status_code == 302
    assert Rating.objects.filter(annotator=annotator).count() == 20
    lease.refresh_from_db()
    assert lease.status == "done" and lease.seconds_spent == pytest.approx(12.5, abs=0.01)
    assert tasks_with_done(Task.objects).get(pk=lease.task_id).done == 1
    annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    assert Assignment.objects.filter(annotator=annotator, status="leased").exclude(pk=lease.pk)


def test_htmx_submit_swaps_in_the_next_post(annotator_client, campaign, annotator):
    annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    lease = Assignment.objects.get(annotator=annotator)
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    response = annotator_client.post(
        url, form_data(task_view(assignment=lease)), headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("annotation:task-next", args=[campaign.pk])
    nxt = Assignment.objects.get(annotator=annotator, status="leased")
    assert nxt.post.text.encode() in response.content
    assert b"<html" not in response.content


def test_previous_post_can_be_changed(annotator_client, campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    annotator_client.post(url, form_data(task_view(assignment=lease), "2"))
    page = annotator_client.get(reverse("annotation:task-next", args=[campaign.pk]))
    assert url.encode() in page.content  # the "Previous post" link
    edit = annotator_client.get(url)
    assert b"Changing your answers" in edit.content and b"checked" in edit.content
    annotator_client.post(url, form_data(task_view(assignment=lease), "4"))
    assert set(Rating.objects.values_list("value", flat=True)) == {4}
    assert tasks_with_done(Task.objects).get(pk=lease.task_id).done == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d, view, other: d.update({next(iter(d)): "9"}), "9 is not on the Likert 1–5 scale"),
        (
            lambda d, view, other: d.update({f"r-999999-{view.questions[0].question.pk}": "3"}),
            "item 999999 is not an item of this post",
        ),
        (
            lambda d, view, other: d.update({f"r-{other}-{view.questions[0].question.pk}": "3"}),
            "is not an item of this post",
        ),
        (lambda d, view, other: d.update({next(iter(d)): "abc"}), "is not a valid rating"),
    ],
)
def test_invalid_form_submissions_are_refused(
    annotator_client, campaign, annotator, mutate, message
):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=lease)
    other = Task.objects.exclude(pk=lease.task_id).first().post.items.first().pk
    data = form_data(view)
    mutate(data, view, other)
    response = annotator_client.post(
        reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk]), data
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Rating.objects.exists()


def test_skip_asks_first_then_skips(annotator_client, campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    url = reverse("annotation:assignment-skip", args=[campaign.pk, lease.pk])
    # Without the page's script the skip button posts unconfirmed: the page asks first.
    asked = annotator_client.post(url)
    assert asked.status_code == 200 and b"Skip this post?" in asked.content
    lease.refresh_from_db()
    assert lease.status == "leased"
    assert annotator_client.post(url, {"confirm": "maybe"}).status_code == 200
    lease.refresh_from_db()
    assert lease.status == "leased"
    response = annotator_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302
    lease.refresh_from_db()
    assert lease.status == "skipped"
    # A skipped post is not offered for skipping again.
    assert annotator_client.post(url).status_code == 404


def test_annotator_outside_the_campaign_gets_404(client, campaign, dataset):
    stranger = user_create_annotator(username="stranger", password=PASSWORD)
    client.force_login(stranger)
    assert client.get(reverse("annotation:task-next", args=[campaign.pk])).status_code == 404
    assert b"pilot" not in client.get(reverse("annotation:home")).content


def test_annotator_cannot_open_another_annotators_post(
    client, campaign, annotator, other_annotator
):
    lease = assignment_claim(campaign=campaign, annotator=other_annotator)
    client.force_login(annotator)
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {}).status_code == 404
    assert (
        client.post(reverse("annotation:assignment-skip", args=[campaign.pk, lease.pk])).status_code
        == 404
    )


def test_annotator_cannot_open_admin_pages(annotator_client, campaign):
    for name, args in [
        ("annotation:campaign-list", []),
        ("annotation:campaign-create", []),
        ("annotation:campaign-detail", [campaign.pk]),
        ("annotation:campaign-progress", [campaign.pk]),
    ]:
        assert annotator_client.get(reverse(name, args=args)).status_code == 403


def test_csrf_is_enforced(campaign, annotator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    data = form_data(task_view(assignment=lease))
    url = reverse("annotation:assignment-rate", args=[campaign.pk, lease.pk])
    assert client.post(url, data).status_code == 403
    assert not Rating.objects.exists()
    page = client.get(url)
    token = page.cookies["csrftoken"].value
    assert client.post(url, data | {"csrfmiddlewaretoken": token}).status_code == 302
    assert Rating.objects.count() == 20


def test_admin_creates_a_campaign_and_watches_progress(admin_client, dataset, annotator):
    miko_batch(dataset=dataset, posts=3)
    response = admin_client.post(
        reverse("annotation:campaign-create"),
        {
            "name": "web",
            "dataset": dataset.pk,
            "kinds": ["xWant", "oWant"],
            "questions": ["plausibility"],
            "scale": "miko-3",
            "overlap": 2,
            "lease_minutes": 10,
            "gold_rate": 0,
            "instructions": "# Hello",
            "members": [annotator.pk],
        },
    )
    campaign = Campaign.objects.get(name="web")
    assert response.status_code == 302
    assert campaign.tasks.count() == 3 and campaign.kinds == ["xWant", "oWant"]
    assert campaign.questions.get().scale == "miko-3"
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    detail = admin_client.get(reverse("annotation:campaign-detail", args=[campaign.pk]))
    assert b"<h1>Hello</h1>" in detail.content and b'hx-trigger="every 5s"' in detail.content
    progress = admin_client.get(reverse("annotation:campaign-progress", args=[campaign.pk]))
    assert b"anna" in progress.content and b"1 leased now" in progress.content
    assert lease.task.campaign_id == campaign.pk
    listing = admin_client.get(reverse("annotation:campaign-list"))
    assert b"web" in listing.content
    edit = reverse("annotation:campaign-edit", args=[campaign.pk])
    assert f'<a href="{edit}" aria-label="Edit web">Edit</a>'.encode() in listing.content
    bad = admin_client.post(reverse("annotation:campaign-create"), {"name": "web"})
    assert bad.status_code == 400


def test_campaign_made_in_the_django_admin_gets_its_tasks(admin_client, dataset):
    batch = miko_batch(dataset=dataset, posts=2)
    response = admin_client.post(
        "/admin/annotation/campaign/add/",
        {
            "name": "from-admin",
            "dataset": dataset.pk,
            "batches": [batch.pk],
            "kinds": '["xWant"]',
            "overlap": 3,
            "lease_minutes": 15,
            "instructions": "",
            "gold_rate": 0,
            "is_active": "on",
            "questions-TOTAL_FORMS": 1,
            "questions-INITIAL_FORMS": 0,
            "questions-0-name": "plausibility",
            "questions-0-prompt": "Plausible?",
            "questions-0-scale": "1-5",
            "questions-0-position": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Campaign.objects.get(name="from-admin").tasks.count() == 2


def test_gold_answer_added_in_the_django_admin_marks_a_gold_post(admin_client, campaign):
    item = campaign.tasks.first().post.items.get(kind="xWant")
    question = campaign.questions.get(name="plausibility")
    response = admin_client.post(
        "/admin/annotation/goldanswer/add/",
        {"campaign": campaign.pk, "item": item.pk, "question": question.pk, "value": 4},
    )
    assert response.status_code == 302
    assert campaign.tasks.get(post=item.post).is_gold
