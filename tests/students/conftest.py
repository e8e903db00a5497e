"""Fixtures of the students tests: the fake model that answers the student's prompt, and a
campaign whose test posts have accepted references."""

import pytest

from evaluation.exports.training import chat_prompt
from evaluation.models import ExportJob
from evaluation.selectors.filters import ItemFilters
from evaluation.services import export_create, export_run
from generation.fake_openai import FakeOpenAIServer
from students.models import SplitAssignment
from students.services import splits_keep
from tests.factories import annotators, campaign_create, posts_with_items, rate
from tests.students.data import ANSWERS


@pytest.fixture
def server():
    def answer(stage, body):
        user = body["messages"][-1]["content"]
        kind = next(k for k in ANSWERS if chat_prompt("", k)[1]["content"].strip() in user)
        return ANSWERS[kind]

    with FakeOpenAIServer(latency=0.0, answers=answer) as server:
        yield server


@pytest.fixture
def campaign(db):
    """Four posts with xWant, xIntent and open items; posts 2 and 3 in test. In test, the xWant
    items are accepted (mean plausibility 4.5), the xIntent item of post 2 is (4), of post 3 not
    (2.5); every open item is accepted."""
    campaign = campaign_create(name="c")
    items = posts_with_items(campaign, posts=4, kinds=["xWant", "xIntent", "open"])
    texts = {
        6: "after posting this tweet the user wants to go home now",
        7: "the user posts this because the user is sad",
        9: "after posting this tweet the user wants to sleep",
        10: "the user posts this because the user is happy",
    }
    for index, text in texts.items():
        items[index].text = text
        items[index].save(update_fields=["text"])
    low = {10: [2, 3]}
    matrix = [[low.get(u, [4, 5])[c] for u in range(len(items))] for c in range(2)]
    rate(campaign, items, "plausibility", annotators(2), matrix)
    kept = SplitAssignment.objects.create(dataset=campaign.dataset, source="import")
    posts = sorted({i.post.external_id for i in items[6:]})
    splits_keep(assignment=kept, name="test", external_ids=posts)
    splits_keep(
        assignment=kept, name="train", external_ids=sorted({i.post.external_id for i in items[:6]})
    )
    campaign.items = items
    return campaign


@pytest.fixture
def export(db) -> ExportJob:
    """A done sft-chat export of a campaign with two rated posts."""
    campaign = campaign_create(name="c")
    items = posts_with_items(campaign, posts=2, kinds=["xWant"])
    rate(campaign, items, "plausibility", annotators(2), [[5, 5], [4, 4]])
    job = export_create(
        campaign=campaign, fmt="sft-chat", filters=ItemFilters(min_mean={}, min_ratings=0)
    )
    return export_run(job_id=job.pk)


@pytest.fixture
def base_model(tmp_path) -> str:
    """What the service checks of a base model folder: its config.json."""
    (tmp_path / "config.json").write_text("{}")
    return str(tmp_path)
