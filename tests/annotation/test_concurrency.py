"""The claim under real concurrency: PostgreSQL, many threads, each with its own connection."""

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from accounts.services import user_create_annotator
from annotation.models import Assignment, Rating, Task
from annotation.selectors import task_view, tasks_with_done
from annotation.services import (
    assignment_claim,
    assignment_submit,
    campaign_create,
    leases_expire,
)
from tests.factories import DatasetFactory, miko_batch
from tests.helpers import full_ratings

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 12


def run_in_threads(target, args_list) -> list:
    barrier = threading.Barrier(len(args_list))
    results, errors = [None] * len(args_list), []

    def run(index, args):
        try:
            barrier.wait()
            results[index] = target(*args)
        except Exception as error:  # reported by the test, not swallowed
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_many_threads_claim_and_submit_quotas_exact():
    assert connection.vendor == "postgresql"
    dataset = DatasetFactory(name="race")
    miko_batch(dataset=dataset, posts=10, kinds=["xWant", "oWant"])
    users = [user_create_annotator(username=f"a{i}", password="x") for i in range(THREADS)]
    campaign = campaign_create(name="race", dataset=dataset, overlap=3, members=users)

    def work(user):
        got = []
        while (lease := assignment_claim(campaign=campaign, annotator=user)) is not None:
            got.append(lease.task_id)
            assignment_submit(assignment=lease, ratings=full_ratings(task_view(assignment=lease)))
        return got

    results = run_in_threads(work, [(u,) for u in users])
    for got in results:
        assert len(got) == len(set(got)), "an annotator received the same post twice"
    per_task = Counter(task for got in results for task in got)
    assert set(per_task.values()) == {3}
    assert len(per_task) == 10
    assert all(
        t.taken == 3 and t.done == 3
        for t in tasks_with_done(Task.objects.filter(campaign=campaign))
    )
    per_item = Counter(Rating.objects.values_list("item_id", "question_id"))
    assert set(per_item.values()) == {3}


def test_concurrent_claims_of_one_annotator_share_one_lease():
    dataset = DatasetFactory(name="reload")
    miko_batch(dataset=dataset, posts=3, kinds=["xWant"])
    user = user_create_annotator(username="reloader", password="x")
    campaign = campaign_create(name="reload", dataset=dataset, members=[user])
    leases = run_in_threads(
        lambda: assignment_claim(campaign=campaign, annotator=user).pk, [()] * 8
    )
    assert len(set(leases)) == 1
    assert Assignment.objects.count() == 1
    assert sum(Task.objects.values_list("taken", flat=True)) == 1


def test_concurrent_double_submit_counts_once():
    dataset = DatasetFactory(name="double")
    miko_batch(dataset=dataset, posts=1)
    user = user_create_annotator(username="clicker", password="x")
    campaign = campaign_create(name="double", dataset=dataset, members=[user])
    lease = assignment_claim(campaign=campaign, annotator=user)
    ratings = full_ratings(task_view(assignment=lease))
    run_in_threads(lambda: assignment_submit(assignment=lease, ratings=ratings).status, [()] * 6)
    task = tasks_with_done(Task.objects).get(pk=lease.task_id)
    assert (task.taken, task.done) == (1, 1)
    assert Rating.objects.count() == 20


def test_expiry_racing_with_claims_keeps_counters_exact():
    from datetime import timedelta

    from django.utils import timezone

    dataset = DatasetFactory(name="expiry")
    miko_batch(dataset=dataset, posts=12, kinds=["xWant"])
    users = [user_create_annotator(username=f"e{i}", password="x") for i in range(8)]
    campaign = campaign_create(name="expiry", dataset=dataset, overlap=1, members=users)
    for user in users:
        assignment_claim(campaign=campaign, annotator=user)
    Assignment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    leases = run_in_threads(
        lambda user: assignment_claim(campaign=campaign, annotator=user).task_id,
        [(u,) for u in users],
    )
    assert len(set(leases)) == len(users), "two annotators got the same post with k = 1"
    assert Assignment.objects.filter(status="expired").count() == len(users)
    for task in Task.objects.filter(campaign=campaign):
        open_or_done = task.assignments.filter(status__in=["leased", "done"]).count()
        assert task.taken == open_or_done <= 1

    # Bulk expiries racing each other return each of the new leases exactly once.
    later = timezone.now() + timedelta(hours=1)
    counts = run_in_threads(lambda: leases_expire(campaign=campaign, now=later), [()] * 6)
    assert sum(counts) == len(users)
    assert not Task.objects.filter(campaign=campaign, taken__gt=0).exists()
