"""Krippendorff's alpha of a campaign: per question, overall and per item kind, from value-count
profiles the database aggregates (see `packing`), with what was left out and alpha on the gold
items alone; and the fingerprint that tells whether a cached result is still current."""

from collections import defaultdict
from dataclasses import replace

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, Max, Sum

from annotation.models import Campaign, GoldAnswer, Question, Rating
from annotation.scales import get_scale
from config.errors import ApplicationError
from evaluation.alpha import LEVELS, alpha_from_profiles
from evaluation.relations import kind_sort_key
from evaluation.selectors.campaigns import campaign_questions, question_domain
from evaluation.selectors.exclusions import (
    MIN_GOLD_ACCURACY,
    gold_items_sql,
    rating_exclusions,
)
from evaluation.selectors.packing import aggregation_memory, packed_sum, unpack
from generation.models import KnowledgeItem

# Questions aggregated together in one scan of the ratings (their profiles are grouped jointly).
QUESTIONS_PER_SCAN = 3


def check_level(level: str) -> None:
    """Refuse a level of measurement alpha does not know ("" is each scale's own level)."""
    if level and level not in LEVELS:
        raise ApplicationError(
            f"unknown level {level!r}; known levels: {', '.join(LEVELS)}", field="level"
        )


def ratings_fingerprint(*, campaign: Campaign) -> tuple[str, int]:
    """(fingerprint, number of ratings). The fingerprint changes whenever a rating is added,
    removed or changed, or a question's scale changes."""
    stats = Rating.objects.filter(campaign=campaign).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    questions = ",".join(f"{q.id}:{q.scale}" for q in campaign_questions(campaign=campaign))
    last = stats["last"].isoformat() if stats["last"] else "-"
    # Gold answers decide which items and annotators are left out: a new or changed one changes
    # the result as much as a rating does.
    gold = GoldAnswer.objects.filter(campaign=campaign).aggregate(
        n=Count("id"), top=Max("id"), total=Sum("value")
    )
    gold_part = f"g{gold['n']}:{gold['top'] or 0}:{gold['total'] or 0}:{MIN_GOLD_ACCURACY}"
    return f"{stats['n']}|{last}|{questions}|{gold_part}", stats["n"]


def _value_count_profiles(
    *,
    campaign: Campaign,
    questions: list[Question],
    conditions: tuple[list[str], list] = ([], []),
) -> list[tuple[int, str, tuple[int, ...], int]]:
    """(question id, kind, counts per scale value, units with those counts), from SQL.

    One packed SUM per question and item (see `packing`); units are then grouped by kind and
    packed counts, so what comes back is a few hundred rows whatever the number of items or
    annotators. `conditions` (SQL on the ratings' columns, and their parameters) narrow the
    ratings read.
    """
    found: list[tuple[int, str, tuple[int, ...], int]] = []
    for start in range(0, len(questions), QUESTIONS_PER_SCAN):
        found += _profiles_of(campaign, questions[start : start + QUESTIONS_PER_SCAN], conditions)
    return found


def _profiles_of(
    campaign: Campaign, questions: list[Question], conditions: tuple[list[str], list]
) -> list:
    rating_table = Rating._meta.db_table
    item_table = KnowledgeItem._meta.db_table
    sums = [f"{packed_sum(question)} p{j}" for j, question in enumerate(questions)]
    packed = ", ".join(f"u.p{j}" for j in range(len(questions)))
    where = " AND ".join(["campaign_id = %s", *conditions[0]])
    sql = (
        f"SELECT i.kind, {packed}, COUNT(*) FROM ("
        f"SELECT item_id, {', '.join(sums)} FROM {rating_table} "
        f"WHERE {where} GROUP BY item_id) u "
        f"JOIN {item_table} i ON i.id = u.item_id GROUP BY i.kind, {packed}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        aggregation_memory()
        cursor.execute(sql, [campaign.pk, *conditions[1]])
        rows = cursor.fetchall()
    units: dict[tuple[int, str, int], int] = defaultdict(int)
    for row in rows:
        kind, count = row[0], row[-1]
        for j, question in enumerate(questions):
            if row[1 + j]:
                units[(question.id, kind, int(row[1 + j]))] += count
    domains = {question.id: question_domain(question) for question in questions}
    return [
        (question_id, kind, tuple(unpack([code], domains[question_id])[0].tolist()), count)
        for (question_id, kind, code), count in units.items()
    ]


def _alpha_figures(entries: list, domain: tuple[int, ...], level: str, extra: dict) -> dict:
    """Alpha and value counts of (profile, units) entries."""
    if entries:
        profiles = np.array([c for c, _ in entries], dtype=np.int64)
        weights = np.array([u for _, u in entries], dtype=np.int64)
    else:
        profiles = np.zeros((0, len(domain)), dtype=np.int64)
        weights = np.zeros(0, dtype=np.int64)
    found = alpha_from_profiles(profiles, weights, domain, level, **extra)
    counts = weights @ profiles if len(weights) else np.zeros(len(domain), dtype=np.int64)
    values = {str(v): int(n) for v, n in zip(domain, counts, strict=True)}
    return {"level": level, **found.as_dict(), "values": values}


def campaign_agreement(
    *,
    campaign: Campaign,
    level: str = "",
    bootstrap_samples: int | None = None,
    min_gold_accuracy: float = MIN_GOLD_ACCURACY,
    include_gold: bool = False,
    include_low_accuracy: bool = False,
) -> dict:
    """Alpha per question, overall and per item kind, at `level` or the level of each scale.

    Gold items and the ratings of annotators below `min_gold_accuracy` are left out unless the
    `include_*` flags keep them; `excluded` says what was left out, and `gold` holds alpha on the
    gold items alone (per question, from the annotators kept), whichever way they were counted.
    """
    check_level(level)
    questions = campaign_questions(campaign=campaign)
    domains = {q.id: question_domain(q) for q in questions}
    exclusions = rating_exclusions(
        campaign=campaign,
        min_gold_accuracy=min_gold_accuracy,
        include_gold=include_gold,
        include_low_accuracy=include_low_accuracy,
    )
    rows = _value_count_profiles(
        campaign=campaign, questions=questions, conditions=exclusions.rating_conditions()
    )
    by_question: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for question_id, kind, counts, units in rows:
        by_question[question_id][kind].append((counts, units))
    gold_rows: dict[int, list] = defaultdict(list)
    if exclusions.gold_items:
        conditions, params = replace(exclusions, include_gold=True).rating_conditions()
        conditions = [
            *conditions,
            f"item_id IN ({gold_items_sql()})",
        ]
        for question_id, _, counts, units in _value_count_profiles(
            campaign=campaign, questions=questions, conditions=(conditions, [*params, campaign.pk])
        ):
            gold_rows[question_id].append((counts, units))

    extra = {} if bootstrap_samples is None else {"bootstrap_samples": bootstrap_samples}
    result_questions = {}
    gold = {}
    for question in questions:
        q_level = level or get_scale(question.scale).level
        domain = domains[question.id]
        kinds = by_question.get(question.id, {})
        all_kinds = [entry for entries in kinds.values() for entry in entries]
        summary = _alpha_figures(all_kinds, domain, q_level, extra)
        summary["scale"] = question.scale
        summary["kinds"] = {
            kind: _alpha_figures(kinds[kind], domain, q_level, extra)
            for kind in sorted(kinds, key=kind_sort_key)
        }
        result_questions[question.name] = summary
        if exclusions.gold_items:
            gold[question.name] = _alpha_figures(gold_rows[question.id], domain, q_level, extra)
    return {
        "campaign": campaign.name,
        "level": level or None,
        "questions": result_questions,
        "excluded": exclusions.as_dict(),
        "gold": gold,
    }
