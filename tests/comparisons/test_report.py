"""The report on a small fixed case: means and counts by hand, the paired test against scipy on
the same vectors, Holm's adjustment, a bootstrap the seed fixes; the statistics module alone."""

import random

import numpy as np
import pytest
from scipy.stats import wilcoxon

from annotation.models import Question, Rating
from comparisons.models import ComparedItem
from comparisons.selectors import comparison_report
from comparisons.services import comparison_create
from comparisons.statistics import bootstrap_interval, holm, paired_test
from generation.models import KnowledgeItem
from tests.comparisons.runs import answer, make_run
from tests.factories import annotators, campaign_create, posts_with_items

NAMES = ("alpha", "beta", "gamma")
KINDS = ("xWant", "open")
POSTS = [f"p{i}" for i in range(8)]


@pytest.fixture
def rated(db):
    """Three runs answer both kinds on eight posts; beta's p0 xWant is alpha's sentence (one item).
    Two coders rate every item on both questions, except alpha's p3 open item on typicality, and
    gamma's items on p7, which nobody rated. Values are drawn from a seeded generator, gamma's one
    point higher (capped at 5)."""
    reference = campaign_create(name="references")
    posts_with_items(reference, posts=len(POSTS), kinds=list(KINDS))
    for index, post in enumerate(reference.dataset.posts.order_by("pk")):
        post.external_id = POSTS[index]
        post.save(update_fields=["external_id"])
    runs = []
    for name in NAMES:
        answers = [answer(p, k, f"{name} on {p} {k}") for p in POSTS for k in KINDS]
        if name == "beta":
            answers[0]["text"] = "alpha on p0 xWant"
        runs.append(make_run(reference.dataset, name, answers))
    comparison = comparison_create(runs=runs, name="blind", seed=5)
    coders = annotators(2)
    rng = random.Random(3)
    given: dict[tuple[str, str], list[int]] = {}
    items = KnowledgeItem.objects.filter(batch_links__batch=comparison.batch).order_by("id")
    for question in Question.objects.filter(campaign=comparison.campaign):
        for item in items:
            if item.text == "alpha on p3 open" and question.name == "typicality":
                continue
            if item.text.startswith("gamma on p7"):
                continue
            bonus = 1 if item.text.startswith("gamma") else 0
            values = [min(5, rng.randint(1, 4) + bonus) for _ in coders]
            given[(item.text, question.name)] = values
            Rating.objects.bulk_create(
                Rating(campaign=comparison.campaign, item=item, question=question,
                       annotator=coder, value=value)
                for coder, value in zip(coders, values, strict=True)
            )  # fmt: skip
    comparison.given = given
    return comparison


def _by_hand(given: dict, run: str, question: str) -> dict[str, float]:
    """{post: the mean of the run's item means} over the posts where the run has a rated item."""
    scores = {}
    for post in POSTS:
        means = []
        for kind in KINDS:
            text = f"{run} on {post} {kind}"
            if run == "beta" and (post, kind) == ("p0", "xWant"):
                text = "alpha on p0 xWant"
            values = given.get((text, question))
            if values:
                means.append(sum(values) / len(values))
        if means:
            scores[post] = sum(means) / len(means)
    return scores


def test_the_report_equals_a_computation_by_hand_and_scipy(rated):
    report = comparison_report(comparison=rated)
    assert report["posts"] == {"compared": 8, "left_out": 0}
    assert report["items"] == 47  # 48 answers, two of them one sentence
    assert [r["items"] for r in report["runs"]] == [16, 16, 16]
    assert [r["shared_items"] for r in report["runs"]] == [1, 1, 0]
    for question in report["questions"]:
        name = question["name"]
        scores = {run: _by_hand(rated.given, run, name) for run in NAMES}
        for run, figures in zip(NAMES, question["runs"], strict=True):
            expected = scores[run]
            assert figures["name"].startswith(f"{run} (run ")
            assert figures["mean"] == pytest.approx(np.mean(list(expected.values())), abs=1e-4)
            assert figures["posts"] == len(expected)
            rated_items = sum(
                1 for (text, q) in rated.given if q == name and text.startswith(run)
            ) + (1 if run == "beta" else 0)  # alpha's p0 sentence is beta's too
            assert figures["items"] == rated_items
            assert figures["ratings"] == 2 * rated_items
            low, high = figures["ci95"]
            assert low <= figures["mean"] <= high
        assert figures["posts"] == 7  # gamma: p7 unrated
        p_values = []
        for pair in question["pairs"]:
            first, second = (scores[n.split(" ")[0]] for n in pair["names"])
            posts = sorted(set(first) & set(second))
            a, b = [first[p] for p in posts], [second[p] for p in posts]
            assert pair["posts"] == len(posts)
            assert pair["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)), abs=1e-4)
            assert pair["p_value"] == pytest.approx(wilcoxon(a, b).pvalue, rel=1e-12)
            assert pair["statistic"] == wilcoxon(a, b).statistic
            p_values.append(pair["p_value"])
        # Holm over the three pairs, by hand.
        order = np.argsort(p_values)
        expected_holm, running = [0.0] * 3, 0.0
        for rank, index in enumerate(order):
            running = max(running, min(1.0, (3 - rank) * p_values[index]))
            expected_holm[index] = running
        assert [pair["p_holm"] for pair in question["pairs"]] == pytest.approx(expected_holm)
    # gamma, rated a point higher, comes out ahead of alpha on plausibility.
    plausibility = report["questions"][0]
    assert plausibility["pairs"][1]["names"][1].startswith("gamma")
    assert plausibility["pairs"][1]["mean_difference"] < 0


def test_the_bootstrap_is_fixed_by_the_seed(rated):
    first = comparison_report(comparison=rated)
    assert comparison_report(comparison=rated)["questions"] == first["questions"]
    rated.seed = 6
    other = comparison_report(comparison=rated)["questions"]
    assert [r["ci95"] for r in other[0]["runs"]] != [
        r["ci95"] for r in first["questions"][0]["runs"]
    ]
    assert [r["mean"] for r in other[0]["runs"]] == [
        r["mean"] for r in first["questions"][0]["runs"]
    ]


def test_a_run_deleted_since_keeps_its_label_and_items(rated):
    gamma = rated.runs.get(label="gamma")
    gamma.run.delete()
    report = comparison_report(comparison=rated)
    assert report["runs"][2]["run"] is None and report["runs"][2]["name"] == "gamma"
    assert ComparedItem.objects.filter(compared_run=gamma).count() == 16


def test_bootstrap_interval():
    values = [1.0, 2.0, 2.5, 4.0, 5.0, 3.0]
    interval = bootstrap_interval(values, seed=1)
    assert interval == bootstrap_interval(values, seed=1)
    assert interval[0] <= np.mean(values) <= interval[1]
    assert 1.0 <= interval[0] < interval[1] <= 5.0
    assert bootstrap_interval([], seed=1) is None
    assert bootstrap_interval([3.0], seed=1) == [3.0, 3.0]
    # By hand: the same draws from numpy's generator, the 2.5th and 97.5th percentiles.
    rng = np.random.default_rng(1)
    draws = np.concatenate(
        [rng.integers(0, 6, size=(250, 6)) for _ in range(8)]
    )  # 2,000 samples in the module's chunks of 250
    means = np.asarray(values)[draws].mean(axis=1)
    assert interval == pytest.approx(list(np.quantile(means, [0.025, 0.975])), abs=1e-4)


def test_paired_test_edge_cases():
    assert paired_test([], [], seed=1) == {
        "posts": 0, "mean_difference": None, "ci95": None, "statistic": None, "p_value": None,
    }  # fmt: skip
    same = paired_test([2.0, 3.0], [2.0, 3.0], seed=1)
    assert same["p_value"] == 1.0 and same["mean_difference"] == 0.0
    a, b = [4.0, 3.5, 5.0, 2.0, 4.5], [3.0, 3.0, 3.5, 2.5, 2.0]
    result = paired_test(a, b, seed=1)
    assert result["p_value"] == wilcoxon(a, b).pvalue and result["posts"] == 5


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.01]) == pytest.approx([0.5, None, 0.02])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []
