"""Model answers are untrusted input too: NUL characters, lone surrogates, markup and huge answers,
as plain text or escaped inside a JSON answer, never break a batch; what is stored is text that
PostgreSQL and SQLite both accept."""

import json

import pytest

from generation.models import Batch, KnowledgeItem, StageResult
from generation.pipelines.miko import parse_intentions
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch
from tests.factories import fake_endpoint, make_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]

POISONS = [
    pytest.param("\x00", id="nul"),
    pytest.param("\ud800", id="lone surrogate"),
    pytest.param("<script>alert(1)</script>", id="markup"),
    pytest.param("x" * 2_000_000, id="2 MB"),
]


def _run_with_poisoned_intentions(fake_server, poison: str, *, as_json: bool) -> Batch:
    """Four posts; the first post's intentions answer carries `poison` in its first sentence."""
    dataset = make_posts("miko", 4, images=False)
    target = dataset.posts.order_by("pk").first().text

    def answers(stage, body):
        if stage != "intentions" or target[:40] not in json.dumps(body["messages"]):
            return None
        lines = fake_server.record_for(target)["intention"].splitlines()
        lines[0] += poison
        answer = "\n".join(lines)
        # As JSON the poison travels escaped (\u0000, \ud800) and appears only once parsed.
        return json.dumps(parse_intentions(answer)) if as_json else answer

    fake_server.answers = answers
    endpoint = fake_endpoint(fake_server)
    batch = batch_launch(dataset=dataset, pipeline="miko", endpoint=endpoint, enqueue=False)
    return batch_execute(batch_id=batch.pk)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("poison", POISONS)
def test_a_poisoned_answer_never_breaks_the_batch(fake_server, poison, as_json) -> None:
    batch = _run_with_poisoned_intentions(fake_server, poison, as_json=as_json)
    assert batch.status == Batch.Status.DONE, batch.error
    assert (batch.posts_done, batch.posts_failed) == (4, 0)
    assert StageResult.objects.filter(batch=batch, stage="intentions", status="ok").count() == 4
    texts = [
        *KnowledgeItem.objects.filter(batch=batch).values_list("text", flat=True),
        *StageResult.objects.filter(batch=batch).values_list("raw_answer", flat=True),
    ]
    for text in texts:
        assert "\x00" not in text and "\ud800" not in text
    for parsed in StageResult.objects.filter(batch=batch).values_list("parsed", flat=True):
        assert "\\u0000" not in json.dumps(parsed) and "\\ud800" not in json.dumps(parsed)
