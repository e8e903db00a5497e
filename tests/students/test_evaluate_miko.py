"""`evaluate --pipeline miko`: the teacher's staged pipeline answers the split's posts that have
references (a batch on those posts only, over real HTTP to the fake server); its items are scored
as `direct` answers are; failed posts and missing kinds count as failures."""

import io
import json

import pytest
from django.core.management import call_command

from generation.models import Batch, KnowledgeItem, StageResult
from students.models import EvaluationRun, SplitAssignment
from students.scoring import ScoredAnswer, scores_of
from students.services import splits_keep
from tests.factories import annotators, campaign_create, fake_endpoint, posts_with_items, rate

pytestmark = pytest.mark.usefixtures("fast_retries")

TEXTS = ["alpha went to the beach today", "bravo lost the keys again", "charlie baked bread"]
# bravo's intentions name one kind only (a partial answer); charlie's key information is not
# readable (its post fails at that stage); alpha gets the sample answers.
PARTIAL = "Intention 1 (xWant): After posting this Tweet, the user wants to find the keys."


@pytest.fixture
def campaign(db):
    """Five posts: alpha, bravo and charlie in test with accepted xWant, xIntent and open items;
    a fourth test post whose items are all rejected; a train post."""
    campaign = campaign_create(name="c")
    items = posts_with_items(campaign, posts=5, kinds=["xWant", "xIntent", "open"])
    posts = sorted({item.post for item in items}, key=lambda post: post.pk)
    for post, text in zip(posts, [*TEXTS, "delta has no references", "echo trains"], strict=True):
        post.text = text
        post.save(update_fields=["text"])
    rejected = {item.pk for item in items if item.post == posts[3]}
    matrix = [[2 if item.pk in rejected else 5 for item in items] for _ in range(2)]
    rate(campaign, items, "plausibility", annotators(2), matrix)
    kept = SplitAssignment.objects.create(dataset=campaign.dataset, source="import")
    splits_keep(assignment=kept, name="test", external_ids=[p.external_id for p in posts[:4]])
    splits_keep(assignment=kept, name="train", external_ids=[posts[4].external_id])
    campaign.posts = posts
    campaign.items = items
    return campaign


@pytest.fixture
def teacher(fake_server):
    def answer(stage, body):
        prompt = json.dumps(body["messages"])
        if stage == "key_info" and TEXTS[2] in prompt:
            return "nothing readable here"
        if stage == "intentions" and TEXTS[1] in prompt:
            return PARTIAL
        return None

    fake_server.answers = answer
    return fake_endpoint(fake_server, name="teacher")


def evaluate(*args: str) -> EvaluationRun:
    out = io.StringIO()
    call_command(
        "evaluate", "--dataset", "c-data", "--split", "test", *args, "--json",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    return EvaluationRun.objects.get(pk=json.loads(out.getvalue())["run"])


def test_the_staged_pipeline_answers_the_posts_with_references(campaign, teacher, fake_server):
    run = evaluate("--endpoint", "teacher", "--pipeline", "miko")
    assert run.status == "done", run.error
    alpha, bravo, charlie, delta, _ = campaign.posts

    # A batch of the teacher's pipeline on the three test posts with references, and no other.
    batch = run.batch
    assert batch.pipeline == "miko" and batch.endpoint == teacher
    assert batch.post_ids == [alpha.pk, bravo.pk, charlie.pk]
    assert set(StageResult.objects.filter(batch=batch).values_list("post_id", flat=True)) == {
        alpha.pk, bravo.pk, charlie.pk
    }  # fmt: skip
    assert run.manifest["batch"] == batch.pk and run.manifest["pipeline"] == "miko"
    assert run.prompt_tokens == batch.prompt_tokens == fake_server.prompt_tokens
    assert run.completion_tokens == batch.completion_tokens > 0
    assert (run.done, run.total) == (3, 3)  # posts

    # The answers: alpha's items of each kind; bravo's xWant, and failures for what it lacks;
    # charlie failed at key_info, each of its kinds a failure naming the stage.
    texts = {
        (item.post_id, item.kind): item.text
        for item in KnowledgeItem.objects.filter(batch_links__batch=batch)
    }
    answers = {(a["post"], a["kind"]): a for a in run.answers}
    assert len(run.answers) == 9
    for kind in ("xWant", "xIntent", "open"):
        assert answers[(alpha.external_id, kind)]["text"] == texts[(alpha.pk, kind)].strip()
        assert answers[(alpha.external_id, kind)]["error"] == ""
        assert answers[(charlie.external_id, kind)]["text"] == ""
        assert answers[(charlie.external_id, kind)]["error"].startswith("key_info: ")
    assert answers[(bravo.external_id, "xWant")]["text"] == texts[(bravo.pk, "xWant")]
    assert "wants to find the keys" in answers[(bravo.external_id, "xWant")]["text"]
    assert answers[(bravo.external_id, "open")]["error"] == "the pipeline gave no open item"

    # Scored exactly as direct answers: each against its (post, kind)'s accepted references.
    references = {(i.post.external_id, i.kind): (i.text,) for i in campaign.items}
    expected = scores_of(
        [
            ScoredAnswer(a["kind"], a["text"], references[(a["post"], a["kind"])], not a["text"])
            for a in run.answers
        ]
    )
    assert run.scores == expected
    assert run.scores["overall"]["failure_rate"] == pytest.approx(5 / 9)
    assert run.scores["kinds"]["xWant"]["failure_rate"] == pytest.approx(1 / 3)


def test_a_run_whose_every_post_fails_is_done_with_every_answer_failed(
    campaign, teacher, fake_server
):
    fake_server.faults["bad_request"] = 1.0  # every call answers 400
    run = evaluate("--endpoint", "teacher", "--pipeline", "miko")
    assert run.status == "done"
    assert run.batch.status == Batch.Status.FAILED
    assert run.scores["overall"]["failure_rate"] == 1.0
    assert len(run.answers) == 9 and all("400" in a["error"] for a in run.answers)


def test_the_direct_pipeline_leaves_the_batch_empty(campaign, teacher):
    run = evaluate("--endpoint", "teacher")
    assert run.status == "done" and run.batch is None and run.manifest["batch"] is None
    assert (run.done, run.total) == (9, 9)  # answers
    assert not Batch.objects.exclude(pk__in=campaign.batches.values("pk")).exists()
