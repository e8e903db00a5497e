"""A batch restricted to some posts of its dataset (`batch_launch(post_ids=...)`): the runner
asks the model about those posts only; posts of another dataset or none at all are refused."""

import pytest
from django.core.exceptions import ValidationError

from generation.models import Batch, KnowledgeItem, StageResult
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch, batch_retry_failed
from tests.factories import fake_endpoint, make_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def launch(dataset, endpoint, **extra) -> Batch:
    return batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False, **extra)


def test_only_the_chosen_posts_are_run(fake_server) -> None:
    dataset = make_posts("subset", 6)
    chosen = list(dataset.posts.order_by("id").values_list("pk", flat=True))[1::2]
    batch = launch(dataset, fake_endpoint(fake_server), post_ids=[chosen[2], *chosen, chosen[0]])
    assert batch.post_ids == chosen and batch.posts_total == 3  # sorted, each once

    batch = batch_execute(batch_id=batch.pk)
    assert batch.status == Batch.Status.DONE
    assert (batch.posts_done, batch.posts_failed) == (3, 0)
    asked = set(StageResult.objects.filter(batch=batch).values_list("post_id", flat=True))
    assert asked == set(chosen)
    assert set(KnowledgeItem.objects.filter(batch=batch).values_list("post_id", flat=True)) == (
        set(chosen)
    )
    assert fake_server.requests == 3 * 3  # three stages of three posts


def test_the_limit_applies_within_the_chosen_posts(fake_server) -> None:
    dataset = make_posts("subset", 5)
    chosen = list(dataset.posts.order_by("id").values_list("pk", flat=True))[2:]
    batch = batch_execute(
        batch_id=launch(dataset, fake_endpoint(fake_server), post_ids=chosen, limit=2).pk
    )
    assert batch.posts_total == batch.posts_done == 2
    assert set(StageResult.objects.filter(batch=batch).values_list("post_id", flat=True)) == set(
        chosen[:2]
    )


def test_a_retry_keeps_to_the_chosen_posts(fake_server) -> None:
    dataset = make_posts("subset", 4)
    chosen = list(dataset.posts.order_by("id").values_list("pk", flat=True))[:2]
    fake_server.fail_next("bad_request", 2)  # each post's first call fails: both posts fail
    batch = batch_execute(batch_id=launch(dataset, fake_endpoint(fake_server), post_ids=chosen).pk)
    assert batch.posts_failed == 2
    batch_retry_failed(batch=batch)
    batch = batch_execute(batch_id=batch.pk, retry_failed=True)
    assert batch.status == Batch.Status.DONE and batch.posts_done == 2
    assert set(StageResult.objects.filter(batch=batch).values_list("post_id", flat=True)) == set(
        chosen
    )


def test_every_post_when_none_are_chosen(fake_server) -> None:
    dataset = make_posts("subset", 3)
    batch = launch(dataset, fake_endpoint(fake_server))
    assert batch.post_ids is None and batch.posts_total == 3


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("elsewhere", "1 of the posts are not in dataset subset"),
        ("unknown", "1 of the posts are not in dataset subset"),
        ("none", "No posts chosen"),
    ],
)
def test_posts_of_another_dataset_or_none_are_refused(fake_server, choice, message) -> None:
    dataset = make_posts("subset", 2)
    other = make_posts("other", 1)
    mine = list(dataset.posts.values_list("pk", flat=True))
    post_ids = {
        "elsewhere": [*mine, other.posts.get().pk],
        "unknown": [*mine, 10**12],
        "none": [],
    }[choice]
    with pytest.raises(ValidationError, match=message) as refused:
        launch(dataset, fake_endpoint(fake_server), post_ids=post_ids)
    assert "post_ids" in refused.value.message_dict
    assert not Batch.objects.exists()
