"""The judge against the people on a small fixed case, each figure against an independent
computation: krippendorff on the reliability matrix, scipy's Spearman, counts by hand, and the
post bootstrap redone by expanding every resample."""

import krippendorff
import numpy as np
import pytest
from scipy import stats

from judges.agreement import judge_agreement
from judges.models import JudgeRating
from judges.services import judge_run_create
from tests.factories import annotators, campaign_create, fake_endpoint, gold, posts_with_items, rate

pytestmark = pytest.mark.django_db

# Coders x items (two items per post: items 2k and 2k+1 share post k); None: not rated.
PEOPLE = [
    [1, 2, 3, 4, 5, 4, 2, 3, 5, 1, 4, 3],
    [1, 3, 3, 5, 4, 4, 1, 3, 5, 2, 5, 3],
    [2, 2, None, 4, 5, 3, 2, 4, 4, 1, 4, None],
]
JUDGE = [1, 3, 2, 5, 5, 3, 2, 2, 4, 1, 5, 4]


@pytest.fixture
def judged(fake_server):
    campaign = campaign_create(name="fixed", questions=("plausibility",))
    items = posts_with_items(campaign, posts=6, kinds=["xIntent", "xWant"], described=False)
    rate(campaign, items, "plausibility", annotators(3), PEOPLE)
    run = judge_run_create(campaign=campaign, endpoint=fake_endpoint(fake_server), enqueue=False)
    question = campaign.questions.get()
    JudgeRating.objects.bulk_create(
        JudgeRating(run=run, item=item, question=question, call_key=str(i), status="ok", value=v)
        for i, (item, v) in enumerate(zip(items, JUDGE, strict=True))
    )
    return run, items


def ratio(hits: int, total: int):
    return None if total == 0 else pytest.approx(hits / total)


def test_the_figures_match_an_independent_computation(judged) -> None:
    run, _ = judged
    figures = judge_agreement(run=run, bootstrap_samples=100)["questions"]["plausibility"]

    people = np.array(PEOPLE, dtype=float)
    alpha_people = krippendorff.alpha(reliability_data=people, level_of_measurement="ordinal")
    alpha_with = krippendorff.alpha(
        reliability_data=np.vstack([people, JUDGE]), level_of_measurement="ordinal"
    )
    mean = np.nanmean(people, axis=0)
    judge = np.array(JUDGE)
    assert figures["n_items"] == 12 and figures["n_posts"] == 6
    assert figures["n_human_ratings"] == 34
    assert figures["alpha_people"]["value"] == pytest.approx(alpha_people)
    assert figures["alpha_with_judge"]["value"] == pytest.approx(alpha_with)
    assert figures["spearman"]["value"] == pytest.approx(stats.spearmanr(judge, mean).statistic)
    assert figures["mae"]["value"] == pytest.approx(np.abs(judge - mean).mean())
    for row in figures["thresholds"]:
        x = row["x"]
        hits = ((judge >= x) & (mean >= x)).sum()
        assert row["judge_positive"] == (judge >= x).sum()
        assert row["people_positive"] == (mean >= x).sum()
        assert row["precision"]["value"] == ratio(hits, (judge >= x).sum())
        assert row["recall"]["value"] == ratio(hits, (mean >= x).sum())
    # No mean reaches 5: the recall of "judge >= 5" is undefined, not 0.
    assert figures["thresholds"][4]["recall"] == {"value": None, "ci95": None}
    assert [row["x"] for row in figures["thresholds"]] == [1, 2, 3, 4, 5]


def test_the_intervals_resample_posts_as_an_expanded_bootstrap_does(judged) -> None:
    run, _ = judged
    found = judge_agreement(run=run, bootstrap_samples=100, seed=7)
    assert found == judge_agreement(run=run, bootstrap_samples=100, seed=7)  # seeded
    figures = found["questions"]["plausibility"]

    people = np.array(PEOPLE, dtype=float)
    judge = np.array(JUDGE, dtype=float)
    mean = np.nanmean(people, axis=0)
    drawn = np.random.default_rng(7).multinomial(6, np.full(6, 1 / 6), size=100)
    maes, rhos, alphas, precisions = [], [], [], []
    for counts in drawn:
        units = [
            u for post, n in enumerate(counts) for u in (2 * post, 2 * post + 1) for _ in range(n)
        ]
        maes.append(np.abs(judge[units] - mean[units]).mean())
        rhos.append(stats.spearmanr(judge[units], mean[units]).statistic)
        sample = np.vstack([people[:, units], judge[units]])
        alphas.append(krippendorff.alpha(reliability_data=sample, level_of_measurement="ordinal"))
        predicted, actual = judge[units] >= 4, mean[units] >= 4
        precisions.append(
            (predicted & actual).sum() / predicted.sum() if predicted.any() else np.nan
        )

    def interval(samples):
        samples = np.asarray(samples, dtype=float)
        return pytest.approx(list(np.percentile(samples[np.isfinite(samples)], [2.5, 97.5])))

    assert figures["mae"]["ci95"] == interval(maes)
    assert figures["spearman"]["ci95"] == interval(rhos)
    assert figures["alpha_with_judge"]["ci95"] == interval(alphas)
    assert figures["thresholds"][3]["precision"]["ci95"] == interval(precisions)
    low, high = figures["mae"]["ci95"]
    assert low <= figures["mae"]["value"] <= high


def test_gold_items_are_left_out_and_nothing_shared_gives_a_reason(judged, fake_server) -> None:
    run, items = judged
    gold(run.campaign, items[0], "plausibility", 1)
    figures = judge_agreement(run=run, bootstrap_samples=10)["questions"]["plausibility"]
    assert figures["n_items"] == 11

    JudgeRating.objects.filter(run=run).delete()
    empty = judge_agreement(run=run, bootstrap_samples=10)["questions"]["plausibility"]
    assert empty["n_items"] == 0 and "no item was rated by both" in empty["reason"]
