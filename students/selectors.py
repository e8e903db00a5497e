"""Reads of the students app: a dataset's splits, their posts, and the split rules of exports."""

import dataclasses

from django.db.models import Count, QuerySet

from config.errors import ApplicationError, NotFound
from config.sql import in_ids
from generation.models import Dataset, Post
from students.models import PostSplit, SplitAssignment
from students.splits import HELD_OUT, fractions_text


def split_counts(*, dataset: Dataset) -> dict[str, int]:
    """Posts per split, largest split first."""
    rows = (
        PostSplit.objects.filter(dataset=dataset)
        .values("name")
        .annotate(posts=Count("post_id"))
        .order_by("-posts", "name")
    )
    return {row["name"]: row["posts"] for row in rows}


def split_assignments(*, dataset: Dataset) -> list[dict]:
    """How the dataset's posts got their splits, oldest first, with posts per split of each."""
    counts: dict[int, dict[str, int]] = {}
    rows = (
        PostSplit.objects.filter(dataset=dataset)
        .values("assignment_id", "name")
        .annotate(posts=Count("post_id"))
        .order_by("assignment_id", "name")
    )
    for row in rows:
        counts.setdefault(row["assignment_id"], {})[row["name"]] = row["posts"]
    return [
        {
            "id": assignment.pk,
            "source": assignment.source,
            "seed": assignment.seed,
            "fractions": assignment.fraction_map,
            "fractions_text": fractions_text(assignment.fraction_map),
            "origin": assignment.origin,
            "created_at": assignment.created_at.isoformat(),
            "posts": counts.get(assignment.pk, {}),
        }
        for assignment in SplitAssignment.objects.filter(dataset=dataset).order_by("id")
    ]


def dataset_splits(*, dataset: Dataset) -> dict:
    """What the dataset page and the API show: posts per split, posts without one, and how the
    splits were made."""
    counts = split_counts(dataset=dataset)
    return {
        "dataset": dataset.pk,
        "splits": counts,
        "unsplit": Post.objects.filter(dataset=dataset).count() - sum(counts.values()),
        "assignments": split_assignments(dataset=dataset),
    }


def posts_in_split(*, dataset: Dataset, split: str) -> QuerySet[Post]:
    """The dataset's posts in `split`, in import order; an unknown split is refused, naming the
    dataset's splits."""
    names = split_counts(dataset=dataset)
    if split not in names:
        raise NotFound(
            f"dataset {dataset.name!r} has no split {split!r}; "
            f"its splits: {', '.join(sorted(names)) or 'none (split it first)'}",
        )
    return Post.objects.filter(dataset=dataset, split__name=split).order_by("id")


def export_split_filters(*, dataset: Dataset, training: bool, filters):
    """An export's filters with the split rule applied (`filters` is an evaluation `ItemFilters`).
    Registered with evaluation, with `split_conditions` and `splits_manifest`, by
    `StudentsConfig.ready` (`evaluation.extensions.SplitRule`).

    `filters.splits` must be splits of the dataset. A training format never takes the posts of a
    held-out split (`test`): they are left out (`held_out`), and asking for them is refused, unless
    `filters.force_split`.
    """
    names = split_counts(dataset=dataset)
    unknown = sorted(set(filters.splits) - set(names))
    if unknown:
        raise ApplicationError(
            f"dataset {dataset.name!r} has no split {', '.join(unknown)}; "
            f"its splits: {', '.join(sorted(names)) or 'none (split it first)'}",
            field="split",
        )
    held_out: tuple[str, ...] = ()
    if training and not filters.force_split:
        asked = sorted(set(filters.splits) & set(HELD_OUT))
        if asked:
            raise ApplicationError(
                f"the {', '.join(asked)} posts never go into a training export; "
                f"force the split to export them anyway",
                field="split",
            )
        held_out = tuple(name for name in HELD_OUT if name in names)
    return dataclasses.replace(filters, held_out=held_out)


def split_conditions(*, post_column: str, splits, held_out) -> tuple[list[str], list]:
    """SQL conditions (and parameters) on a post id column for an export's splits: in one of
    `splits` (when any), in none of `held_out`."""
    table = PostSplit._meta.db_table
    conditions: list[str] = []
    params: list = []
    for names, negate in ((splits, ""), (held_out, "NOT ")):
        if names:
            inside, inside_params = in_ids("s.name", names)
            conditions.append(
                f"{post_column} {negate}IN (SELECT s.post_id FROM {table} s WHERE {inside})"
            )
            params += inside_params
    return conditions, params


def splits_manifest(*, dataset: Dataset, filters) -> dict:
    """The splits part of an export's manifest: what was asked, what was left out, and the
    seeds and files the dataset's splits come from."""
    return {
        "selected": list(filters.splits),
        "held_out": list(filters.held_out),
        "forced": filters.force_split,
        "posts": split_counts(dataset=dataset),
        # Fractions as text, in their order (the manifest is stored as jsonb, which sorts keys).
        "assignments": [
            {
                "source": a["source"],
                "seed": a["seed"],
                "fractions": a["fractions_text"],
                "origin": a["origin"],
                "created_at": a["created_at"],
                "posts": a["posts"],
            }
            for a in split_assignments(dataset=dataset)
        ],
    }


LEADERBOARD_METRICS = {
    "rouge_l": "ROUGE-L",
    "bleu": "BLEU",
    "bertscore": "BERTScore",
    "failure_rate": "failures",
    "distinct_2": "distinct-2",
}


def leaderboard(*, dataset: Dataset, split: str, metric: str) -> dict:
    """The done evaluation runs of a dataset's split side by side: one row a run (newest first),
    one column a kind (in MIKO's order) and overall, each cell the run's `metric` for that kind."""
    from evaluation.relations import KIND_ORDER
    from students.models import EvaluationRun

    if metric not in LEADERBOARD_METRICS:
        raise ApplicationError(
            f"unknown metric {metric!r}; metrics: {', '.join(LEADERBOARD_METRICS)}", field="metric"
        )
    runs = list(
        EvaluationRun.objects.filter(
            dataset=dataset, split=split, status=EvaluationRun.Status.DONE
        ).order_by("-id")
    )
    kinds = sorted(
        {kind for run in runs for kind in run.scores.get("kinds", {})},
        key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k),
    )
    rows = [
        {
            "run": run,
            "cells": [run.scores["kinds"].get(kind, {}).get(metric) for kind in kinds],
            "overall": run.scores.get("overall", {}).get(metric),
        }
        for run in runs
    ]
    splits = sorted(
        EvaluationRun.objects.filter(dataset=dataset).values_list("split", flat=True).distinct()
    )
    return {"kinds": kinds, "rows": rows, "splits": splits}
