"""Knowledge once per (post, kind, text), keyed by the server that answered, with its provenance.

Batches run for real against fake OpenAI-compatible servers on 127.0.0.1; the rating page and the
API read what annotators would see.
"""

import pytest

from annotation.hot_path import task_data
from annotation.models import Assignment
from annotation.selectors import campaign_items, task_view
from annotation.services import assignment_claim, campaign_create
from generation.fake_openai import FakeOpenAIServer
from generation.models import Batch, BatchItem, KnowledgeItem, StageResult
from generation.runner.run import batch_execute
from generation.selectors.datasets import dataset_get
from generation.selectors.items import item_descriptions, items_of_batches, source_ids
from generation.services.batches import batch_launch, batch_retry_failed
from generation.services.endpoints import endpoint_create
from tests.factories import fake_endpoint, make_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


def launch(dataset, endpoint, **extra) -> Batch:
    return batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False, **extra)


def run(dataset, endpoint, **extra) -> Batch:
    return batch_execute(batch_id=launch(dataset, endpoint, **extra).pk)


def test_a_second_batch_over_cached_answers_reuses_the_items(fake_server) -> None:
    dataset = make_posts("twice", 5)
    endpoint = fake_endpoint(fake_server)
    first = run(dataset, endpoint)
    second = run(dataset, endpoint)

    assert second.status == Batch.Status.DONE
    assert second.stage_progress["intentions"]["cached"] == 5
    assert KnowledgeItem.objects.filter(post__dataset=dataset).count() == 50
    assert dataset_get(dataset_id=dataset.pk).item_count == 50
    # Both batches link the same fifty items.
    for batch in (first, second):
        assert BatchItem.objects.filter(batch=batch).count() == 50
    assert items_of_batches(batch_ids=[first.pk, second.pk]).count() == 50


def test_a_campaign_over_several_batches_rates_each_item_once(fake_server, annotator) -> None:
    dataset = make_posts("once", 3)
    endpoint = fake_endpoint(fake_server)
    run(dataset, endpoint)
    run(dataset, endpoint)
    # The default: every batch of the dataset.
    campaign = campaign_create(name="once", dataset=dataset, members=[annotator])

    assert campaign.batches.count() == 2
    assert campaign_items(campaign=campaign).count() == 30
    assignment = assignment_claim(campaign=campaign, annotator=annotator)
    view = task_view(assignment=assignment)
    assert len(view.items) == 10
    assert len({item.item.text for item in view.items}) == 10
    assert len(task_data(assignment=assignment)["items"]) == 10


def test_the_cache_key_names_the_server_that_answered(fake_server, call_log) -> None:
    dataset = make_posts("servers", 2)
    run(dataset, fake_endpoint(fake_server))
    # Same model name, another address where nothing listens: nothing may come from the cache.
    elsewhere = endpoint_create(
        name="elsewhere",
        backend="openai",
        base_url="http://127.0.0.1:9/v1",
        model="fake-model",
        concurrency=2,
    )
    batch = run(dataset, elsewhere)

    assert batch.stage_progress["describe_image"]["cached"] == 0
    assert batch.posts_done == 0
    assert batch.posts_failed == 2
    assert StageResult.objects.filter(batch=batch, status=StageResult.Status.FAILED).count() == 2


def test_endpoints_that_opt_in_share_answers(fake_server) -> None:
    dataset = make_posts("shared", 2)
    run(dataset, fake_endpoint(fake_server, parameters={"share_cache": True}))
    twin = endpoint_create(
        name="twin",
        backend="openai",
        base_url="http://127.0.0.1:9/v1",
        model="fake-model",
        parameters={"share_cache": True},
    )
    batch = run(dataset, twin)

    assert batch.status == Batch.Status.DONE
    assert batch.posts_done == 2
    assert batch.stage_progress["intentions"]["cached"] == 2


def _server_saying(description: str, intention_word: str) -> FakeOpenAIServer:
    """A fake server whose image descriptions and intentions are its own."""

    def answers(stage, body):
        if stage == "describe_image":
            return description
        if stage == "intentions":
            return "\n".join(
                f"Intention{n}: {intention_word} reason number {n}." for n in range(1, 11)
            )
        return None

    return FakeOpenAIServer(latency=0.01, answers=answers)


def test_each_item_shows_and_exports_the_description_its_own_run_read(annotator) -> None:
    dataset = make_posts("provenance", 2)
    with (
        _server_saying("A red bicycle.", "Red") as red,
        _server_saying("A blue boat.", "Blue") as blue,
    ):
        red_batch = run(dataset, endpoint_create(name="red", backend="openai",
                                                 base_url=red.base_url, model="m"))  # fmt: skip
        # Run second: its descriptions are the posts' latest.
        run(dataset, endpoint_create(name="blue", backend="openai", base_url=blue.base_url,
                                     model="m"))  # fmt: skip

    red_items = list(items_of_batches(batch_ids=[red_batch.pk]))
    assert len(red_items) == 20
    assert all("red reason" in item.text.lower() for item in red_items)
    descriptions = item_descriptions(item_ids=[item.pk for item in red_items])
    assert set(descriptions.values()) == {"A red bicycle."}
    sources = source_ids(red_items[0].provenance["stage_results"])
    assert set(sources) == {"describe_image", "key_info", "intentions"}
    assert StageResult.objects.get(pk=sources["describe_image"]).parsed == {
        "description": "A red bicycle."
    }
    assert sources["intentions"] == red_items[0].stage_result_id

    campaign = campaign_create(
        name="red", dataset=dataset, batches=[red_batch], members=[annotator]
    )
    assignment = assignment_claim(campaign=campaign, annotator=annotator)
    assert task_view(assignment=assignment).description == "A red bicycle."
    assert task_data(assignment=assignment)["description"] == "A red bicycle."
    assert assignment.status == Assignment.Status.LEASED


NINE = "\n".join(
    f"Intention{n}: The user posts this Tweet because of reason {n}."
    for n in range(1, 11)
    if n != 7
)


def test_a_partial_answer_keeps_its_slots_and_retry_asks_for_the_missing_ones() -> None:
    dataset = make_posts("partial", 1)
    answers = {"intentions": NINE}

    def answer(stage, body):
        return answers.get(stage)

    with FakeOpenAIServer(latency=0.01, answers=answer) as server:
        endpoint = endpoint_create(name="p", backend="openai", base_url=server.base_url, model="m")
        batch = run(dataset, endpoint)

        result = StageResult.objects.get(batch=batch, stage="intentions")
        assert result.status == StageResult.Status.PARTIAL
        assert result.parsed["missing"] == ["oWant"]
        assert batch.stage_progress["intentions"]["partial"] == 1
        assert KnowledgeItem.objects.filter(post__dataset=dataset).count() == 9

        answers["intentions"] = "\n".join(
            f"Intention{n}: The user posts this Tweet because of another reason {n}."
            for n in range(1, 11)
        )
        batch_retry_failed(batch=batch)
        batch = batch_execute(batch_id=batch.pk, retry_failed=True)

    result.refresh_from_db()
    assert result.status == StageResult.Status.OK
    assert "missing" not in result.parsed
    # The nine slots it had are kept; only the seventh comes from the new answer.
    assert "reason 1." in result.parsed["xWant"]
    assert "another reason 7" in result.parsed["oWant"]
    assert "retry of missing oWant" in result.raw_answer
    items = KnowledgeItem.objects.filter(post__dataset=dataset)
    assert items.count() == 10
    assert sorted(items.values_list("position", flat=True)) == list(range(1, 11))
    assert batch.status == Batch.Status.DONE


def test_a_failed_retry_of_a_partial_answer_loses_nothing() -> None:
    dataset = make_posts("partial-kept", 1)
    answers = {"intentions": NINE}

    with FakeOpenAIServer(latency=0.01, answers=lambda s, b: answers.get(s)) as server:
        endpoint = endpoint_create(name="q", backend="openai", base_url=server.base_url, model="m")
        batch = run(dataset, endpoint)
        answers["intentions"] = "I cannot help with that."
        batch_retry_failed(batch=batch)
        batch_execute(batch_id=batch.pk, retry_failed=True)

    result = StageResult.objects.get(stage="intentions", post__dataset=dataset)
    assert result.status == StageResult.Status.PARTIAL
    assert result.parsed["missing"] == ["oWant"]
    assert "Intention9" in result.raw_answer and "I cannot help" in result.raw_answer
    assert KnowledgeItem.objects.filter(post__dataset=dataset).count() == 9
