"""`judge` on the command line: a run end to end, and broken input refused with a clear message."""

import json

import pytest
from django.core.management import CommandError, call_command

from generation.models import Endpoint
from judges.models import JudgeRun
from tests.factories import (
    BatchFactory,
    annotators,
    campaign_create,
    fake_endpoint,
    posts_with_items,
    rate,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_retries")]


@pytest.fixture
def campaign():
    campaign = campaign_create(name="cli")
    items = posts_with_items(campaign, posts=3, kinds=["xIntent", "open"])
    rate(campaign, items, "plausibility", annotators(2), [[1, 2, 3, 4, 5, 4], [2, 2, 3, 5, 4, 4]])
    return campaign


def judge(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("judge", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_judge_runs_and_prints_the_agreement(fake_server, campaign) -> None:
    fake_endpoint(fake_server)
    out = judge("--campaign", "cli", "--endpoint", "fake", "--questions", "plausibility")
    run = JudgeRun.objects.get()
    assert run.status == "done" and run.ratings_done == 6
    assert f"Judge run {run.pk} done: 6 ratings, 0 failed" in out
    assert "plausibility (6 items rated by both): alpha people" in out

    found = json.loads(judge("--campaign", "cli", "--endpoint", "fake", "--json"))
    assert set(found["questions"]) == {"plausibility", "typicality"}
    assert "no item was rated by both" in found["questions"]["typicality"]["reason"]
    second = JudgeRun.objects.first()
    assert second.ratings_cached == 6 and second.calls == 6  # only typicality was asked
    assert fake_server.requests == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--campaign", "nope", "--endpoint", "fake"], "No campaign named 'nope'"),
        (["--campaign", "cli", "--endpoint", "nope"], "No endpoint named 'nope'"),
        (
            ["--campaign", "cli", "--endpoint", "fake", "--questions", "plausibility,fun"],
            "Campaign cli has no question 'fun' (its questions: plausibility, typicality)",
        ),
        (
            ["--campaign", "cli", "--endpoint", "fake", "--template-version", "v9"],
            "no judge template version 'v9' (known: v1)",
        ),
        (
            ["--campaign", "cli", "--endpoint", "fake", "--template-version", "../v1"],
            "no judge template version '../v1'",
        ),
        (["--campaign", "cli", "--endpoint", "fake", "--batch", "999999"], "No batch 999999"),
        (
            ["--campaign", "cli", "--endpoint", "fake", "--token-budget", "-1"],
            "token budget must be at least 1",
        ),
        (["--campaign", "cli", "--endpoint", "local"], "judges ask OpenAI-compatible endpoints"),
    ],
)
def test_broken_input_is_refused_with_a_message(fake_server, campaign, args, message) -> None:
    fake_endpoint(fake_server)
    Endpoint.objects.create(name="local", backend="transformers", model_path="/m", model="m")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        judge(*args)
    assert not JudgeRun.objects.exists() and fake_server.requests == 0


def test_a_batch_outside_the_campaign_is_refused(fake_server, campaign) -> None:
    fake_endpoint(fake_server)
    other = BatchFactory()
    with pytest.raises(CommandError, match=f"Batch {other.pk} is not one of campaign cli"):
        judge("--campaign", "cli", "--endpoint", "fake", "--batch", str(other.pk))
