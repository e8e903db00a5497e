"""Reads of comparisons: the report (each run's mean rating per question with its interval, and a
paired test for each pair of runs), the runs a new comparison may take, and a dataset's comparisons.

A post's score for a run, on a question, is the mean of the mean ratings of the run's items on that
post; a run's mean is the mean of its posts' scores, so every post weighs the same and the
bootstrap resamples posts. Item ratings are read with the exports' own aggregation
(`evaluation.selectors.scores.item_scores`): gold items and the ratings of annotators below the
gold accuracy bound are left out, as in exports.
"""

from collections import defaultdict
from itertools import combinations

from django.db.models import QuerySet

from comparisons.models import ComparedItem, ComparedRun, Comparison
from comparisons.statistics import BOOTSTRAP_SAMPLES, bootstrap_interval, holm, paired_test
from evaluation.selectors.campaigns import campaign_questions
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.scores import item_scores, score_summaries
from generation.models import Dataset
from students.models import EvaluationRun


def comparable_runs(*, dataset: Dataset, split: str) -> QuerySet[EvaluationRun]:
    """The done runs of a dataset's split, newest first (what the form offers)."""
    return (
        EvaluationRun.objects.filter(dataset=dataset, split=split, status=EvaluationRun.Status.DONE)
        .defer("answers", "manifest")
        .order_by("-id")
    )


def dataset_comparisons(*, dataset: Dataset, split: str | None = None) -> QuerySet[Comparison]:
    comparisons = Comparison.objects.filter(dataset=dataset)
    if split is not None:
        comparisons = comparisons.filter(split=split)
    return comparisons.select_related("campaign").prefetch_related("runs")


def run_name(compared: ComparedRun) -> str:
    """How the report names a run: its endpoint and id (one endpoint may be compared twice)."""
    return f"{compared.label} (run {compared.run_id})" if compared.run_id else compared.label


def _run_summary(compared: ComparedRun, items: set[int], shared: set[int]) -> dict:
    return {
        "run": compared.run_id,
        "name": run_name(compared),
        "endpoint": compared.label,
        "answers": compared.answers,
        "failed": compared.failed,
        "items": len(items),
        "shared_items": len(items & shared),
    }


def _post_scores(
    items_by_run: list[dict[int, list[int]]], summaries: dict[int, dict], question: str
) -> list[tuple[dict[int, float], int, int]]:
    """Per run: ({post id: score}, items rated, ratings) on the question."""
    scored = []
    for items_by_post in items_by_run:
        scores, items, ratings = {}, 0, 0
        for post, item_ids in items_by_post.items():
            means = []
            for item_id in item_ids:
                figures = summaries.get(item_id, {}).get(question)
                if figures and figures["n"]:
                    means.append(figures["mean"])
                    ratings += figures["n"]
            if means:
                scores[post] = sum(means) / len(means)
                items += len(means)
        scored.append((scores, items, ratings))
    return scored


def comparison_report(*, comparison: Comparison) -> dict:
    """The comparison's figures, as the API answers them and the page shows them."""
    campaign = comparison.campaign
    questions = campaign_questions(campaign=campaign)
    compared = list(comparison.runs.all())
    position = {run.pk: index for index, run in enumerate(compared)}
    items_by_run: list[dict[int, list[int]]] = [defaultdict(list) for _ in compared]
    runs_of_item: dict[int, int] = defaultdict(int)
    links = ComparedItem.objects.filter(compared_run__comparison=comparison).values_list(
        "compared_run_id", "item_id", "item__post_id"
    )
    for run_pk, item_id, post_id in links.order_by("item__post_id", "item_id"):
        items_by_run[position[run_pk]][post_id].append(item_id)
        runs_of_item[item_id] += 1
    shared = {item_id for item_id, count in runs_of_item.items() if count > 1}
    # Every rated item of the campaign is one of the comparison's: no list of ids to send.
    rows = list(item_scores(campaign=campaign, filters=ItemFilters(min_mean={}, min_ratings=0)))
    summaries = dict(
        zip((row["item_id"] for row in rows), score_summaries(rows, questions), strict=True)
    )
    report_questions = []
    for question in questions:
        scored = _post_scores(items_by_run, summaries, question.name)
        runs = [
            {
                "run": run.run_id,
                "name": run_name(run),
                "mean": round(sum(scores.values()) / len(scores), 4) if scores else None,
                "ci95": bootstrap_interval(list(scores.values()), seed=comparison.seed),
                "posts": len(scores),
                "items": items,
                "ratings": ratings,
            }
            for run, (scores, items, ratings) in zip(compared, scored, strict=True)
        ]
        pairs = []
        for i, j in combinations(range(len(compared)), 2):
            first, second = scored[i][0], scored[j][0]
            posts = sorted(set(first) & set(second))
            test = paired_test(
                [first[p] for p in posts], [second[p] for p in posts], seed=comparison.seed
            )
            names = [run_name(compared[i]), run_name(compared[j])]
            pairs.append({"runs": [compared[i].run_id, compared[j].run_id], "names": names} | test)
        adjusted = holm([pair["p_value"] for pair in pairs])
        for pair, p in zip(pairs, adjusted, strict=True):
            pair["p_holm"] = p
        report_questions.append(
            {"name": question.name, "scale": question.scale, "runs": runs, "pairs": pairs}
        )
    all_items = {item for per_post in items_by_run for ids in per_post.values() for item in ids}
    return {
        "id": comparison.pk,
        "campaign": {"id": campaign.pk, "name": campaign.name},
        "dataset": {"id": comparison.dataset_id, "name": comparison.dataset.name},
        "split": comparison.split,
        "seed": comparison.seed,
        "bootstrap_samples": BOOTSTRAP_SAMPLES,
        "posts": {"compared": comparison.posts_compared, "left_out": comparison.posts_left_out},
        "items": len(all_items),
        "runs": [
            _run_summary(run, {i for ids in items_by_run[k].values() for i in ids}, shared)
            for k, run in enumerate(compared)
        ],
        "questions": report_questions,
        "created_at": comparison.created_at,
    }
