"""The migration that makes knowledge unique merges the copies earlier versions made, keeping
their batch links, ratings and gold answers."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("generation", "0002_batch_progress_and_lease"),
    ("annotation", "0004_fewer_indexes_on_hot_tables"),
]
AFTER = [("generation", "0004_knowledge_once"), ("annotation", "0005_merge_duplicate_items")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_duplicate_items_are_merged_with_their_ratings() -> None:
    old = _migrate(BEFORE)
    try:
        dataset = old.get_model("generation", "Dataset").objects.create(name="old")
        post = old.get_model("generation", "Post").objects.create(
            dataset=dataset, external_id="1", text="A post"
        )
        batch_model = old.get_model("generation", "Batch")
        first = batch_model.objects.create(dataset=dataset, pipeline="miko")
        second = batch_model.objects.create(dataset=dataset, pipeline="miko")
        item_model = old.get_model("generation", "KnowledgeItem")
        kept = item_model.objects.create(post=post, batch=first, kind="xWant", text="To rest.")
        copy = item_model.objects.create(post=post, batch=second, kind="xWant", text="To rest.")
        other = item_model.objects.create(post=post, batch=second, kind="xNeed", text="To sleep.")
        user = old.get_model("auth", "User").objects.create(username="rater")
        campaign = old.get_model("annotation", "Campaign").objects.create(name="c", dataset=dataset)
        question = old.get_model("annotation", "Question").objects.create(
            campaign=campaign, name="plausibility", prompt="?", scale="1-5"
        )
        rating = old.get_model("annotation", "Rating")
        rating.objects.create(
            campaign=campaign, item=copy, question=question, annotator=user, value=4
        )

        new = _migrate(AFTER)
        items = new.get_model("generation", "KnowledgeItem").objects.order_by("id")
        assert list(items.values_list("id", flat=True)) == [kept.pk, other.pk]
        links = new.get_model("generation", "BatchItem").objects
        assert set(links.filter(item_id=kept.pk).values_list("batch_id", flat=True)) == {
            first.pk,
            second.pk,
        }
        assert list(links.filter(item_id=other.pk).values_list("batch_id", flat=True)) == [
            second.pk
        ]
        moved = new.get_model("annotation", "Rating").objects.get()
        assert moved.item_id == kept.pk and moved.value == 4
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
