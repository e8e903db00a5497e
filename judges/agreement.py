"""How a judge agrees with the people, on the items both rated (per question of the run).

- Krippendorff's alpha of the people alone, and with the judge added as one more rater
  (`evaluation.alpha`, at the level of the question's scale), both on the items at least two
  people rated, so that the two differ only by the judge;
- the judge against the people's mean: Spearman's rho and the mean absolute error;
- for each value x of the scale, precision and recall of "judge >= x" against "mean >= x".

Every figure has a 95% bootstrap interval that resamples *posts* (an item's ratings move with its
post's other items), seeded, so a page and the API show the same numbers. Human ratings are the
ones agreement counts: gold items and annotators below the gold accuracy are left out.
"""

import functools
from collections import defaultdict

import numpy as np

from annotation.models import Rating
from annotation.scales import get_scale
from evaluation.alpha import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    alpha_from_profiles,
    alpha_weighted,
)
from evaluation.selectors.campaigns import question_domain
from evaluation.selectors.exclusions import rating_exclusions
from generation.models import KnowledgeItem
from judges.models import JudgeRating, JudgeRun

# Bootstrap samples evaluated together: memory is samples x items floats per array.
SAMPLES_PER_BLOCK = 100


def _interval(samples: np.ndarray) -> list[float] | None:
    samples = samples[np.isfinite(samples)]
    if not samples.size:
        return None
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def figure_text(figure: dict | None) -> str:
    """ "0.812 [0.702, 0.894]": a figure and its interval, or "n/a" where it is undefined."""
    if not figure or figure.get("value") is None:
        return "n/a"
    ci = figure.get("ci95")
    interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"{figure['value']:.3f}{interval}"


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) of `values` repeated `weights` times each.

    `weights` is (B, P); the result is (B, P): what `scipy.stats.rankdata` gives each unit of
    the expanded sample, without expanding it.
    """
    levels, codes = np.unique(values, return_inverse=True)
    onehot = np.zeros((len(values), len(levels)))
    onehot[np.arange(len(values)), codes] = 1.0
    per_level = weights @ onehot  # (B, K)
    below = np.cumsum(per_level, axis=1) - per_level
    rank_of_level = below + (per_level + 1) / 2
    return rank_of_level[:, codes]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum(axis=1, keepdims=True)
    mx = (w * x).sum(axis=1, keepdims=True) / total
    my = (w * y).sum(axis=1, keepdims=True) / total
    cov = (w * (x - mx) * (y - my)).sum(axis=1)
    vx = (w * (x - mx) ** 2).sum(axis=1)
    vy = (w * (y - my) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / np.sqrt(vx * vy)


def _figures(
    *,
    weights: np.ndarray,
    judge: np.ndarray,
    mean: np.ndarray,
    people: np.ndarray,
    with_judge: np.ndarray,
    domain: tuple[int, ...],
    level: str,
) -> dict[str, np.ndarray]:
    """Every figure for each row of item weights (B, P)."""
    pairable = people.sum(axis=1) >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "alpha_people": alpha_weighted(people[pairable], weights[:, pairable], domain, level),
            "alpha_with_judge": alpha_weighted(
                with_judge[pairable], weights[:, pairable], domain, level
            ),
            "spearman": _weighted_pearson(
                _weighted_ranks(judge, weights), _weighted_ranks(mean, weights), weights
            ),
            "mae": (weights * np.abs(judge - mean)).sum(axis=1) / weights.sum(axis=1),
        }
        for x in domain:
            predicted, actual = judge >= x, mean >= x
            hits = weights @ (predicted & actual)
            out[f"precision_{x}"] = hits / (weights @ predicted)
            out[f"recall_{x}"] = hits / (weights @ actual)
    return out


def question_agreement(
    *,
    items: list[tuple[int, int, int, list[int]]],
    domain: tuple[int, ...],
    level: str,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """The figures of one question from (item, post, judge value, human values) per item."""
    items = [row for row in items if row[3]]
    n_posts = len({post for _, post, _, _ in items})
    base = {"n_items": len(items), "n_posts": n_posts, "n_human_ratings": 0}
    if not items:
        return {**base, "reason": "no item was rated by both the judge and people"}
    index = {value: i for i, value in enumerate(domain)}
    people = np.zeros((len(items), len(domain)), dtype=np.int64)
    for row, (_, _, _, values) in enumerate(items):
        for value in values:
            people[row, index[value]] += 1
    with_judge = people.copy()
    judge = np.array([value for _, _, value, _ in items], dtype=float)
    with_judge[np.arange(len(items)), [index[int(v)] for v in judge]] += 1
    mean = np.array([np.mean(values) for *_, values in items], dtype=float)
    base["n_human_ratings"] = int(people.sum())

    figures = functools.partial(
        _figures,
        judge=judge,
        mean=mean,
        people=people,
        with_judge=with_judge,
        domain=domain,
        level=level,
    )
    ones = np.ones((1, len(items)))
    point = figures(weights=ones)
    # Alpha's point values come from the krippendorff package, as evaluation's do.
    pairable = people.sum(axis=1) >= 2
    for name, profiles in (("alpha_people", people), ("alpha_with_judge", with_judge)):
        found = alpha_from_profiles(
            profiles[pairable], ones[0, pairable], domain, level, bootstrap_samples=0
        )
        point[name] = np.array([np.nan if found.alpha is None else found.alpha])
    from scipy import stats  # loaded only to compute agreement, not with every page

    point["spearman"] = np.array([stats.spearmanr(judge, mean).statistic])

    posts = sorted({post for _, post, _, _ in items})
    post_index = {post: i for i, post in enumerate(posts)}
    item_post = np.array([post_index[post] for _, post, _, _ in items])
    rng = np.random.default_rng(seed)
    samples: dict[str, list[np.ndarray]] = defaultdict(list)
    for start in range(0, bootstrap_samples, SAMPLES_PER_BLOCK):
        size = min(SAMPLES_PER_BLOCK, bootstrap_samples - start)
        drawn = rng.multinomial(len(posts), np.full(len(posts), 1 / len(posts)), size=size)
        weights = drawn[:, item_post].astype(float)
        for name, values in figures(weights=weights).items():
            samples[name].append(values)

    def figure(name: str) -> dict:
        drawn = np.concatenate(samples[name]) if samples[name] else np.zeros(0)
        return {"value": _number(point[name][0]), "ci95": _interval(drawn)}

    return {
        **base,
        "alpha_people": figure("alpha_people"),
        "alpha_with_judge": figure("alpha_with_judge"),
        "spearman": figure("spearman"),
        "mae": figure("mae"),
        "thresholds": [
            {
                "x": x,
                "judge_positive": int((judge >= x).sum()),
                "people_positive": int((mean >= x).sum()),
                "precision": figure(f"precision_{x}"),
                "recall": figure(f"recall_{x}"),
            }
            for x in domain
        ],
    }


def judge_agreement(
    *,
    run: JudgeRun,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict:
    """The judge against the people, per question of the run (see the module docstring)."""
    campaign = run.campaign
    exclusions = rating_exclusions(campaign=campaign)
    result = {}
    for question in run.questions.order_by("position", "id"):
        judged = dict(
            JudgeRating.objects.filter(
                run=run, question=question, status=JudgeRating.Status.OK
            ).values_list("item_id", "value")
        )
        humans = Rating.objects.filter(
            campaign=campaign, question=question, item_id__in=list(judged)
        )
        if exclusions.excludes_gold:
            humans = humans.exclude(item_id__in=campaign.gold_answers.values("item_id"))
        if exclusions.annotator_ids:
            humans = humans.exclude(annotator_id__in=exclusions.annotator_ids)
        values: dict[int, list[int]] = defaultdict(list)
        for item_id, value in humans.values_list("item_id", "value"):
            values[item_id].append(value)
        posts = dict(KnowledgeItem.objects.filter(pk__in=list(values)).values_list("id", "post_id"))
        items = [
            (item_id, posts[item_id], judged[item_id], values[item_id])
            for item_id in sorted(values)
        ]
        scale = get_scale(question.scale)
        result[question.name] = {
            "scale": question.scale,
            "level": scale.level,
            **question_agreement(
                items=items,
                domain=question_domain(question),
                level=scale.level,
                bootstrap_samples=bootstrap_samples,
                seed=seed,
            ),
        }
    return {
        "run": run.pk,
        "campaign": campaign.name,
        "bootstrap_samples": bootstrap_samples,
        "seed": seed,
        "excluded": exclusions.as_dict(),
        "questions": result,
    }
