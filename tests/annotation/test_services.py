from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import user_create_annotator
from annotation.models import Assignment, Rating, Task
from annotation.selectors import (
    campaign_progress,
    previous_assignment,
    task_view,
    tasks_with_done,
)
from annotation.services import (
    AnnotationError,
    RatingInput,
    assignment_claim,
    assignment_skip,
    assignment_submit,
    campaign_create,
    gold_answers_set,
    leases_expire,
)
from tests.factories import DatasetFactory, miko_batch
from tests.helpers import full_ratings


def test_campaign_create_makes_one_task_per_post_with_items(dataset):
    batch = miko_batch(dataset=dataset, posts=3)
    miko_batch(dataset=DatasetFactory(name="other"), posts=2)
    campaign = campaign_create(name="c", dataset=dataset, batches=[batch], kinds=["xWant"])
    assert Task.objects.filter(campaign=campaign).count() == 3
    assert [q.name for q in campaign.questions.all()] == ["plausibility", "typicality"]
    assert campaign.overlap == 3 and campaign.lease_minutes == 15
    with pytest.raises(AnnotationError, match="already exists"):
        campaign_create(name="c", dataset=dataset)


def test_claim_returns_open_lease_on_reload(campaign, annotator):
    first = assignment_claim(campaign=campaign, annotator=annotator)
    again = assignment_claim(campaign=campaign, annotator=annotator)
    assert first.pk == again.pk
    assert Task.objects.get(pk=first.task_id).taken == 1


def test_claim_prefers_posts_closest_to_completion(campaign, annotator, other_annotator):
    first = assignment_claim(campaign=campaign, annotator=annotator)
    second = assignment_claim(campaign=campaign, annotator=other_annotator)
    # The post anna holds has one slot taken: otto gets that one, not a fresh post.
    assert second.task_id == first.task_id


def test_claim_never_gives_a_post_twice_nor_past_k(campaign, annotator, other_annotator):
    third = user_create_annotator(username="thea", password="x")
    campaign.members.add(third)
    seen = {annotator.pk: set(), other_annotator.pk: set(), third.pk: set()}
    while True:
        progressed = False
        for user in (annotator, other_annotator, third):
            lease = assignment_claim(campaign=campaign, annotator=user)
            if lease is None:
                continue
            assert lease.task_id not in seen[user.pk]
            seen[user.pk].add(lease.task_id)
            assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))
            progressed = True
        if not progressed:
            break
    tasks = tasks_with_done(Task.objects.filter(campaign=campaign))
    assert all(t.taken == 2 and t.done == 2 for t in tasks)
    assert campaign_progress(campaign=campaign).percent == 100
    assert Rating.objects.count() == 4 * 2 * 10 * 2


def test_progress_counts_a_post_finished_only_when_its_last_lease_is_done(
    campaign, annotator, other_annotator
):
    posts = Task.objects.filter(campaign=campaign).count()
    first = assignment_claim(campaign=campaign, annotator=annotator)
    second = assignment_claim(campaign=campaign, annotator=other_annotator)
    assert first.task_id == second.task_id  # k = 2: the post is full, nothing is done
    progress = campaign_progress(campaign=campaign)
    assert (progress.posts, progress.slots_goal) == (posts, posts * 2)
    assert (progress.slots_done, progress.slots_leased, progress.posts_finished) == (0, 2, 0)
    assignment_submit(assignment=first, ratings=full_ratings(task_view(assignment=first)))
    progress = campaign_progress(campaign=campaign)
    assert (progress.slots_done, progress.slots_leased, progress.posts_finished) == (1, 1, 0)
    assignment_submit(assignment=second, ratings=full_ratings(task_view(assignment=second)))
    progress = campaign_progress(campaign=campaign)
    assert (progress.slots_done, progress.slots_leased, progress.posts_finished) == (2, 0, 1)
    assert progress.percent == 100 * 2 / (posts * 2)


def test_expired_lease_returns_to_the_pool(campaign, annotator, other_annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    later = timezone.now() + timedelta(minutes=campaign.lease_minutes + 1)
    assert leases_expire(campaign=campaign, now=later) == 1
    assert leases_expire(campaign=campaign, now=later) == 0
    lease.refresh_from_db()
    assert lease.status == Assignment.Status.EXPIRED
    assert Task.objects.get(pk=lease.task_id).taken == 0
    # The annotator gets another post, never the one that expired.
    fresh = assignment_claim(campaign=campaign, annotator=annotator, now=later)
    assert fresh.task_id != lease.task_id


def test_lazy_expiry_at_claim_time(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    later = timezone.now() + timedelta(minutes=campaign.lease_minutes + 1)
    fresh = assignment_claim(campaign=campaign, annotator=annotator, now=later)
    assert fresh.pk != lease.pk
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.EXPIRED


def test_late_submission_accepted_while_room_then_refused(campaign, annotator, other_annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=lease)
    later = timezone.now() + timedelta(minutes=campaign.lease_minutes + 1)
    leases_expire(campaign=campaign, now=later)
    assignment_submit(assignment=lease, ratings=full_ratings(view), now=later)
    task = tasks_with_done(Task.objects).get(pk=lease.task_id)
    assert (task.taken, task.done) == (1, 1)

    campaign.overlap = 1
    campaign.save()
    other = assignment_claim(campaign=campaign, annotator=other_annotator)
    view = task_view(assignment=other)
    leases_expire(campaign=campaign, now=later)
    # Somebody else fills the post in the meantime.
    third = user_create_annotator(username="thea", password="x")
    taken = assignment_claim(campaign=campaign, annotator=third, now=later)
    assert taken.task_id == other.task_id
    with pytest.raises(AnnotationError, match="given to someone else"):
        assignment_submit(assignment=other, ratings=full_ratings(view), now=later)
    assert not Rating.objects.filter(annotator=other_annotator).exists()


def test_submit_is_idempotent_and_editable(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=lease)
    assignment_submit(assignment=lease, ratings=full_ratings(view, 3))
    assignment_submit(assignment=lease, ratings=full_ratings(view, 3))
    assert tasks_with_done(Task.objects).get(pk=lease.task_id).done == 1
    assert Rating.objects.count() == 20
    assignment_submit(assignment=lease, ratings=full_ratings(view, 5))
    assert set(Rating.objects.values_list("value", flat=True)) == {5}
    assert tasks_with_done(Task.objects).get(pk=lease.task_id).done == 1


def test_skip_gives_the_post_back(campaign, annotator):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    assignment_skip(assignment=lease)
    assert Task.objects.get(pk=lease.task_id).taken == 0
    nxt = assignment_claim(campaign=campaign, annotator=annotator)
    assert nxt.task_id != lease.task_id
    with pytest.raises(AnnotationError, match="skipped"):
        assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("value", "not on the Likert 1–5 scale"),
        # An unknown item and another post's item get the same answer (issue 13, point 8).
        ("unknown", r"^item 1000000000 is not an item of this post$"),
        ("other_post", r"^item [0-9]+ is not an item of this post$"),
        ("missing", "2 rating.s. missing"),
    ],
)
def test_invalid_submissions_store_nothing(campaign, annotator, change, message):
    lease = assignment_claim(campaign=campaign, annotator=annotator)
    ratings = full_ratings(task_view(assignment=lease))
    first = ratings[0]
    if change == "value":
        ratings[0] = RatingInput(first.item_id, first.question_id, 9)
    elif change == "unknown":
        ratings[0] = RatingInput(10**9, first.question_id, 3)
    elif change == "other_post":
        other_item = Task.objects.exclude(pk=lease.task_id).first().post.items.first()
        ratings[0] = RatingInput(other_item.pk, first.question_id, 3)
    else:
        ratings = ratings[2:]
    with pytest.raises(AnnotationError, match=message):
        assignment_submit(assignment=lease, ratings=ratings)
    assert not Rating.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.LEASED


def test_previous_assignment_walks_back(campaign, annotator):
    done = []
    for _ in range(2):
        lease = assignment_claim(campaign=campaign, annotator=annotator)
        assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))
        done.append(lease)
    assert previous_assignment(campaign=campaign, annotator=annotator).pk == done[1].pk
    back = previous_assignment(campaign=campaign, annotator=annotator, before=done[1])
    assert back.pk == done[0].pk


def test_gold_posts_are_mixed_in_for_everyone(campaign, annotator, other_annotator):
    item = campaign_items_first(campaign)
    question = campaign.questions.get(name="plausibility")
    gold_answers_set(campaign=campaign, answers=[(item.pk, "plausibility", 4)])
    campaign.gold_rate = 1.0
    campaign.overlap = 1
    campaign.save()
    for user in (annotator, other_annotator):
        lease = assignment_claim(campaign=campaign, annotator=user)
        assert lease.task.is_gold
        assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease), 4))
    assert Rating.objects.filter(item=item, question=question).count() == 2


def campaign_items_first(campaign):
    from annotation.selectors import campaign_items

    return campaign_items(campaign=campaign).order_by("id").first()
