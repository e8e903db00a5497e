"""Export by critic (people's scores win where they exist; the rest by the critic at a threshold
picked on the held-out curve), and ordering the next round by the critic's uncertainty."""

import json
from collections import defaultdict

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotation.models import Assignment, Rating, Task
from critics.models import Critic, CriticScore
from students.models import PostSplit
from students.services import splits_draw
from tests.factories import gold, signal_campaign


@pytest.fixture
def campaign(db):
    campaign = signal_campaign(name="signal", posts=60, rated_posts=40)
    call_command("train_critic", "--campaign", "signal", "--question", "plausibility",
                 "--threshold", "3.5", "--name", "sunny", "--no-progress")  # fmt: skip
    return campaign


def export(tmp_path, *args):
    output = tmp_path / "out.jsonl"
    call_command("export_dataset", "--campaign", "signal", "--format", "jsonl",
                 "--output", str(output), "--no-progress", *args)  # fmt: skip
    records = [json.loads(line) for line in output.read_text().splitlines()]
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    return records, manifest


def test_export_counts_people_and_critic_items_as_computed_independently(campaign, tmp_path):
    # A gold item nobody rated stays out, as gold items do.
    unrated_gold = campaign.items[-1]
    gold(campaign, unrated_gold, "plausibility", 5)
    records, manifest = export(
        tmp_path, "--min-plausibility", "4", "--critic", "sunny", "--min-precision", "0.8"
    )
    critic = Critic.objects.get(name="sunny")
    # The threshold: the lowest on the stored held-out curve whose precision reaches 0.8.
    curve = critic.metrics["pr_curve"]
    expected = min(
        t for t, p in zip(curve["threshold"], curve["precision"], strict=True) if p >= 0.8
    )
    chosen = manifest["critic"]
    assert chosen["threshold"] == expected and chosen["expected_precision"] >= 0.8
    assert chosen["name"] == "sunny" and chosen["version"] == 1
    assert chosen["metrics"]["roc_auc"] == critic.metrics["roc_auc"]
    values = defaultdict(list)
    for item_id, value in Rating.objects.filter(campaign=campaign).values_list("item_id", "value"):
        values[item_id].append(value)
    people = {i for i, v in values.items() if sum(v) / len(v) >= 4}
    by_critic = {
        item_id
        for item_id, score in CriticScore.objects.filter(critic=critic).values_list(
            "item_id", "score"
        )
        if score >= expected and item_id not in values and item_id != unrated_gold.id
    }
    assert people and by_critic
    assert chosen["items_from_people"] == len(people)
    assert chosen["items_from_critic"] == len(by_critic)
    assert {r["item_id"] for r in records} == people | by_critic
    assert manifest["counts"]["items"] == len(people) + len(by_critic)
    # Records are in item order, people's and the critic's merged.
    assert [r["item_id"] for r in records] == sorted(people | by_critic)
    assert all(r["scores"]["plausibility"]["n"] == 0 for r in records if r["item_id"] in by_critic)


def test_a_raw_score_threshold(campaign, tmp_path):
    records, manifest = export(tmp_path, "--critic", "sunny:v1", "--critic-threshold", "0.5")
    critic = Critic.objects.get(name="sunny")
    rated = set(Rating.objects.filter(campaign=campaign).values_list("item_id", flat=True))
    kept = set(
        CriticScore.objects.filter(critic=critic, score__gte=0.5)
        .exclude(item_id__in=rated)
        .values_list("item_id", flat=True)
    )
    assert manifest["critic"]["items_from_critic"] == len(kept)
    assert manifest["critic"]["items_from_people"] == len(rated)
    assert manifest["critic"]["min_precision"] is None and len(records) == len(rated | kept)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--critic", "nope", "--min-precision", "0.9"], "no trained critic named 'nope'"),
        (["--critic", "sunny"], "either a minimum precision or a score threshold"),
        (["--critic", "sunny", "--min-precision", "0.9", "--critic-threshold", "0.5"],
         "either a minimum precision or a score threshold"),
        (["--critic", "sunny", "--min-precision", "1.5"], "between 0 and 1"),
        (["--critic", "sunny", "--critic-threshold", "-1"], "between 0 and 1"),
        (["--critic", "sunny:vx", "--critic-threshold", "0.5"], "NAME:vN"),
        (["--min-precision", "0.9"], "go with --critic"),
    ],
)  # fmt: skip
def test_broken_critic_options_are_refused(campaign, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        export(tmp_path, *args)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_critic_still_scoring_or_cotpd_is_refused(campaign, tmp_path):
    with pytest.raises(CommandError, match="cotpd"):
        call_command("export_dataset", "--campaign", "signal", "--format", "cotpd",
                     "--output", str(tmp_path / "c.jsonl"), "--critic", "sunny",
                     "--critic-threshold", "0.5", "--no-progress")  # fmt: skip
    Critic.objects.update(scoring_status=Critic.Status.RUNNING)
    with pytest.raises(CommandError, match="has scored 240 of 240 items; wait"):
        export(tmp_path, "--critic", "sunny", "--critic-threshold", "0.5")


def test_unclaimed_posts_are_ordered_by_uncertainty(campaign, capsys):
    posts = sorted({item.post_id for item in campaign.items})
    tasks = [Task.objects.create(campaign=campaign, post_id=post) for post in posts]
    held = tasks[5]
    Assignment.objects.create(campaign=campaign, task=held, post_id=held.post_id,
                              annotator=campaign.coders[0], leased_at=timezone.now(),
                              expires_at=timezone.now())  # fmt: skip
    Task.objects.filter(pk=held.pk).update(taken=1)
    call_command("order_tasks", "--critic", "sunny")
    assert "Ordered 59 unclaimed posts" in capsys.readouterr().out
    critic = Critic.objects.get(name="sunny")
    distance = defaultdict(list)
    for item in campaign.items:
        score = CriticScore.objects.get(critic=critic, item=item).score
        distance[item.post_id].append(abs(score - 0.5))
    moved = Task.objects.filter(campaign=campaign).exclude(pk=held.pk).order_by("id")
    order = list(moved.values_list("post_id", flat=True))
    assert sorted(order) == [p for p in posts if p != held.post_id]
    means = [sum(distance[p]) / len(distance[p]) for p in order]
    assert all(a <= b + 1e-6 for a, b in zip(means, means[1:], strict=False))
    assert means[0] < means[-1]
    # The post someone holds keeps its task (and its assignment).
    assert Task.objects.get(pk=held.pk).post_id == held.post_id
    assert Assignment.objects.get().task_id == held.pk


def test_ordering_needs_a_scored_critic(campaign):
    Critic.objects.update(scoring_status=Critic.Status.RUNNING)
    with pytest.raises(CommandError, match="has not scored its dataset yet"):
        call_command("order_tasks", "--critic", "sunny")
    with pytest.raises(CommandError, match="no trained critic named 'other'"):
        call_command("order_tasks", "--critic", "other")


def test_the_critic_s_items_keep_to_the_export_s_split(campaign, tmp_path):
    splits_draw(dataset=campaign.dataset, fractions={"train": 0.5, "test": 0.5}, seed=1)
    records, manifest = export(tmp_path, "--critic", "sunny", "--critic-threshold", "0.5",
                               "--split", "train")  # fmt: skip
    train = set(PostSplit.objects.filter(name="train").values_list("post_id", flat=True))
    items = {item.id: item.post_id for item in campaign.items}
    critic = Critic.objects.get(name="sunny")
    rated = set(Rating.objects.filter(campaign=campaign).values_list("item_id", flat=True))
    kept = {
        item_id
        for item_id in CriticScore.objects.filter(critic=critic, score__gte=0.5)
        .exclude(item_id__in=rated)
        .values_list("item_id", flat=True)
        if items[item_id] in train
    }
    assert kept and manifest["critic"]["items_from_critic"] == len(kept)
    assert all(items[r["item_id"]] in train for r in records)
