"""Exports and splits: `--split` selects posts, a training format never takes test posts unless
`--force-split`, and the manifest records the splits and their seed."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from evaluation.models import ExportJob
from evaluation.tasks import export_run_task
from students.models import SplitAssignment
from students.services import splits_draw, splits_keep
from tests.factories import annotators, campaign_create, posts_with_items, rate

KINDS = ["xWant", "open"]


@pytest.fixture
def campaign(db):
    """Six posts of two items, every item rated 4 and 5 by two coders; posts 0-3 in train (drawn
    from a seed), 4-5 in test (kept from a file)."""
    campaign = campaign_create(name="c")
    items = posts_with_items(campaign, posts=6, kinds=KINDS)
    coders = annotators(2)
    for question in ("plausibility", "typicality"):
        rate(campaign, items, question, coders, [[4] * len(items), [5] * len(items)])
    posts = sorted({item.post for item in items}, key=lambda post: post.pk)
    kept = SplitAssignment.objects.create(
        dataset=campaign.dataset, source="import", origin="test.jsonl"
    )
    splits_keep(assignment=kept, name="test", external_ids=[p.external_id for p in posts[4:]])
    splits_draw(dataset=campaign.dataset, fractions={"train": 1.0}, seed=13)
    campaign.train_posts = {p.external_id for p in posts[:4]}
    campaign.test_posts = {p.external_id for p in posts[4:]}
    return campaign


def export(tmp_path: Path, fmt: str, *args: str) -> Path:
    output = tmp_path / f"out-{fmt}"
    call_command(
        "export_dataset", "--campaign", "c", "--format", fmt, "--output", str(output),
        "--no-progress", *args, stdout=io.StringIO(),
    )  # fmt: skip
    return output


def manifest(output: Path) -> dict:
    return json.loads(output.with_name(output.name + ".manifest.json").read_text())


def jsonl_posts(output: Path) -> set[str]:
    return {json.loads(line)["post_id"] for line in output.read_text().splitlines()}


def test_a_training_export_leaves_the_test_posts_out(campaign, tmp_path):
    output = export(tmp_path, "sft-chat")
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(records) == 8
    texts = " ".join(r["messages"][2]["content"] for r in records)
    assert all(post in texts for post in campaign.train_posts)
    assert not any(f"({post})" in texts for post in campaign.test_posts)
    splits = manifest(output)["splits"]
    assert splits["held_out"] == ["test"] and splits["forced"] is False
    assert splits["posts"] == {"train": 4, "test": 2}
    assert [(a["source"], a["seed"], a["fractions"]) for a in splits["assignments"]] == [
        ("import", None, ""),
        ("seed", 13, "train=1"),
    ]
    assert manifest(output)["counts"]["posts"] == 4


def test_asking_a_training_export_for_test_posts_is_refused_unless_forced(campaign, tmp_path):
    with pytest.raises(CommandError, match="the test posts never go into a training export"):
        export(tmp_path, "alpaca", "--split", "test")
    assert not list(tmp_path.iterdir())
    output = export(tmp_path, "alpaca", "--split", "test", "--force-split")
    assert len(output.read_text().splitlines()) == 4
    assert manifest(output)["splits"]["forced"] is True
    forced_all = export(tmp_path, "cotpd", "--force-split")
    assert len(forced_all.read_text().splitlines()) == 6


def test_other_formats_take_any_split_and_every_post_by_default(campaign, tmp_path):
    assert jsonl_posts(export(tmp_path, "jsonl")) == campaign.train_posts | campaign.test_posts
    output = export(tmp_path, "jsonl", "--split", "test")
    assert jsonl_posts(output) == campaign.test_posts
    assert manifest(output)["splits"]["selected"] == ["test"]
    assert manifest(output)["splits"]["held_out"] == []


def test_an_unknown_split_is_refused_naming_the_dataset_splits(campaign, tmp_path):
    with pytest.raises(CommandError, match="has no split valid; its splits: test, train"):
        export(tmp_path, "jsonl", "--split", "valid")


def test_the_export_api_takes_splits(campaign, admin_api):
    body = {"campaign": campaign.pk, "format": "sft-chat", "splits": ["test"]}
    refused = admin_api.post("/api/exports/", body, format="json")
    assert refused.status_code == 400
    assert "never go into a training export" in refused.json()["split"][0]
    assert not ExportJob.objects.exists()
    answer = admin_api.post("/api/exports/", {**body, "splits": ["train"]}, format="json")
    assert answer.status_code == 201, answer.json()
    export_run_task(answer.json()["id"])  # what the worker runs
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.DONE, job.error
    assert job.filters["splits"] == ["train"] and job.filters["held_out"] == ["test"]
    assert job.manifest["counts"]["posts"] == 4
    unknown = admin_api.post(
        "/api/exports/", {**body, "format": "jsonl", "splits": ["nope"]}, format="json"
    )
    assert unknown.status_code == 400 and "has no split nope" in unknown.json()["split"][0]
