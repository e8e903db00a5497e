"""Reads: agreement from aggregated ratings, item scores, annotator statistics."""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum

from annotation.models import Assignment, Campaign, GoldAnswer, Question, Rating
from annotation.scales import get_scale
from annotation.selectors import campaign_items
from evaluation.alpha import LEVELS, alpha_from_profiles, distances
from evaluation.relations import kind_sort_key
from generation.models import KnowledgeItem, StageResult

DESCRIPTION_STAGES = ("describe_image", "caption")


def question_domain(question: Question) -> tuple[int, ...]:
    return tuple(get_scale(question.scale).values)


def campaign_questions(*, campaign: Campaign) -> list[Question]:
    return list(Question.objects.filter(campaign=campaign).order_by("position", "id"))


def ratings_fingerprint(*, campaign: Campaign) -> tuple[str, int]:
    """(fingerprint, number of ratings). The fingerprint changes whenever a rating is added,
    removed or changed, or a question's scale changes."""
    stats = Rating.objects.filter(campaign=campaign).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    questions = ",".join(f"{q.id}:{q.scale}" for q in campaign_questions(campaign=campaign))
    last = stats["last"].isoformat() if stats["last"] else "-"
    return f"{stats['n']}|{last}|{questions}", stats["n"]


# Memory PostgreSQL may use per hash aggregate in the campaign-wide queries (SET LOCAL, so only
# inside their transaction): about 200 bytes a unit, so 256 MB keeps MIKO's in memory.
AGGREGATION_WORK_MEM = "256MB"


def aggregation_memory() -> None:
    """Let PostgreSQL hash a campaign's aggregates in memory rather than spill them to disk.

    Call inside `transaction.atomic()`; it lasts until the transaction ends.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{AGGREGATION_WORK_MEM}'")


def _value_count_profiles(
    *, campaign: Campaign, domain: tuple[int, ...]
) -> list[tuple[int, str, tuple[int, ...], int]]:
    """(question id, kind, counts per value of `domain`, units with those counts), from SQL.

    Ratings are counted per unit (item × question) in the database and the units are grouped by
    their counts, so what comes back is a few hundred rows whatever the number of ratings or
    annotators.
    """
    rating_table = Rating._meta.db_table
    item_table = KnowledgeItem._meta.db_table
    cols = [f"c{i}" for i in range(len(domain))]
    inner = ", ".join(f"SUM(CASE WHEN value = %s THEN 1 ELSE 0 END) AS {col}" for col in cols)
    outer = ", ".join(f"u.{col}" for col in cols)
    sql = (
        f"SELECT u.question_id, i.kind, {outer}, COUNT(*) FROM ("
        f"SELECT item_id, question_id, {inner} FROM {rating_table} "
        f"WHERE campaign_id = %s GROUP BY item_id, question_id) u "
        f"JOIN {item_table} i ON i.id = u.item_id "
        f"GROUP BY u.question_id, i.kind, {outer}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        aggregation_memory()
        cursor.execute(sql, [*domain, campaign.pk])
        return [(row[0], row[1], tuple(row[2:-1]), row[-1]) for row in cursor.fetchall()]


def campaign_agreement(
    *, campaign: Campaign, level: str = "", bootstrap_samples: int | None = None
) -> dict:
    """Alpha per question, overall and per item kind, at `level` or the level of each scale."""
    if level and level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known levels: {', '.join(LEVELS)}")
    questions = campaign_questions(campaign=campaign)
    domains = {q.id: question_domain(q) for q in questions}
    union = tuple(sorted({v for domain in domains.values() for v in domain}))
    rows = _value_count_profiles(campaign=campaign, domain=union) if questions else []
    by_question: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for question_id, kind, counts, units in rows:
        by_question[question_id][kind].append((counts, units))

    extra = {} if bootstrap_samples is None else {"bootstrap_samples": bootstrap_samples}
    result_questions = {}
    for question in questions:
        q_level = level or get_scale(question.scale).level
        domain = domains[question.id]
        columns = [union.index(v) for v in domain]

        def alpha_of(entries: list, domain=domain, columns=columns, q_level=q_level) -> dict:
            if entries:
                profiles = np.array([c for c, _ in entries], dtype=np.int64)[:, columns]
                weights = np.array([u for _, u in entries], dtype=np.int64)
            else:
                profiles = np.zeros((0, len(domain)), dtype=np.int64)
                weights = np.zeros(0, dtype=np.int64)
            found = alpha_from_profiles(profiles, weights, domain, q_level, **extra)
            counts = weights @ profiles if len(weights) else np.zeros(len(domain), dtype=np.int64)
            values = {str(v): int(n) for v, n in zip(domain, counts, strict=True)}
            return {"level": q_level, **found.as_dict(), "values": values}

        kinds = by_question.get(question.id, {})
        summary = alpha_of([entry for entries in kinds.values() for entry in entries])
        summary["scale"] = question.scale
        summary["kinds"] = {
            kind: alpha_of(kinds[kind]) for kind in sorted(kinds, key=kind_sort_key)
        }
        result_questions[question.name] = summary
    return {"campaign": campaign.name, "level": level or None, "questions": result_questions}


@dataclass(frozen=True)
class ItemFilters:
    """Which items an export keeps. Means are per question name; every bound is inclusive."""

    min_mean: dict[str, float]
    kinds: tuple[str, ...] = ()
    min_ratings: int = 1
    max_spread: float | None = None

    def as_dict(self) -> dict:
        return {
            "min_mean": dict(self.min_mean),
            "kinds": list(self.kinds),
            "min_ratings": self.min_ratings,
            "max_spread": self.max_spread,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ItemFilters":
        return cls(
            min_mean={k: float(v) for k, v in (data.get("min_mean") or {}).items()},
            kinds=tuple(data.get("kinds") or ()),
            min_ratings=int(data.get("min_ratings") or 0),
            max_spread=None if data.get("max_spread") is None else float(data["max_spread"]),
        )


def item_scores(*, campaign: Campaign, filters: ItemFilters, by_post: bool = False) -> QuerySet:
    """One row per rated item that passes `filters`: `item_id`, and per question j the aggregates
    `n{j}`, `sum{j}`, `min{j}`, `max{j}` and `c{j}_{value}` (counts per scale value, from which the
    median is read without sorting). Ordered by item, or by post then item with `by_post`.

    Aggregation and filtering both happen in the database (HAVING), so the rows can be streamed.
    Ratings are grouped on their own table; items are joined only to filter kinds or order by post.
    """
    questions = campaign_questions(campaign=campaign)
    unknown = set(filters.min_mean) - {q.name for q in questions}
    if unknown:
        known = ", ".join(q.name for q in questions) or "none"
        raise ValueError(f"unknown question(s) {', '.join(sorted(unknown))}; questions: {known}")
    rows = Rating.objects.filter(campaign=campaign)
    kinds = filters.kinds or tuple(campaign.kinds or ())
    if kinds:
        rows = rows.filter(item_id__in=KnowledgeItem.objects.filter(kind__in=kinds).values("id"))
    aggregates = {}
    having = Q()
    for j, question in enumerate(questions):
        in_q = Q(question_id=question.id)
        aggregates[f"n{j}"] = Count("id", filter=in_q)
        aggregates[f"sum{j}"] = Sum("value", filter=in_q)
        aggregates[f"min{j}"] = Min("value", filter=in_q)
        aggregates[f"max{j}"] = Max("value", filter=in_q)
        for value in question_domain(question):
            aggregates[f"c{j}_{value}"] = Count("id", filter=in_q & Q(value=value))
        if filters.min_ratings:
            having &= Q(**{f"n{j}__gte": filters.min_ratings})
        if question.name in filters.min_mean:
            # mean ≥ x ⟺ sum ≥ x·n, with n ≥ 1 (an unrated question fails the threshold).
            threshold = filters.min_mean[question.name]
            having &= Q(**{f"n{j}__gte": 1}) & Q(**{f"sum{j}__gte": F(f"n{j}") * threshold})
        if filters.max_spread is not None:
            having &= Q(**{f"max{j}__lte": F(f"min{j}") + filters.max_spread}) | Q(**{f"n{j}": 0})
    if by_post:
        grouped = rows.values("item_id", "item__post_id").order_by("item__post_id", "item_id")
    else:
        grouped = rows.values("item_id").order_by("item_id")
    return grouped.annotate(**aggregates).filter(having)


def score_summary(row: dict, questions: list[Question]) -> dict[str, dict]:
    """Ratings, mean, median and spread (max − min) per question from an `item_scores` row."""
    scores = {}
    for j, question in enumerate(questions):
        n = row[f"n{j}"]
        if not n:
            scores[question.name] = {"n": 0, "mean": None, "median": None, "spread": None}
            continue
        counts = [(value, row[f"c{j}_{value}"]) for value in question_domain(question)]
        scores[question.name] = {
            "n": n,
            "mean": round(row[f"sum{j}"] / n, 4),
            "median": _median_from_counts(counts),
            "spread": row[f"max{j}"] - row[f"min{j}"],
        }
    return scores


def _median_from_counts(counts: list[tuple[int, int]]) -> float | None:
    total = sum(c for _, c in counts)
    if not total:
        return None
    expanded_at = []
    for rank in ((total - 1) // 2, total // 2):
        seen = 0
        for value, count in counts:
            seen += count
            if rank < seen:
                expanded_at.append(value)
                break
    return sum(expanded_at) / 2


def post_descriptions(*, post_ids: list[int]) -> dict[int, str]:
    """The image description of each post: the latest OK `describe_image` or `caption` result."""
    found: dict[int, str] = {}
    results = (
        StageResult.objects.filter(
            post_id__in=post_ids, stage__in=DESCRIPTION_STAGES, status=StageResult.Status.OK
        )
        .order_by("post_id", "-created_at", "-id")
        .values_list("post_id", "parsed")
    )
    for post_id, parsed in results:
        if post_id not in found and isinstance(parsed, dict) and parsed.get("description"):
            found[post_id] = str(parsed["description"])
    return found


def campaign_provenance(*, campaign: Campaign) -> dict:
    """Pipelines, prompt template hashes per stage and models behind the campaign's items."""
    batches = campaign.batches.all()
    pipelines = sorted(set(batches.values_list("pipeline", flat=True)))
    stages = (
        StageResult.objects.filter(batch__in=batches)
        .values_list("stage", "template_hash", "model")
        .distinct()
    )
    prompt_hashes: dict[str, set[str]] = defaultdict(set)
    models = set()
    for stage, template_hash, model in stages:
        prompt_hashes[stage].add(template_hash)
        if model:
            models.add(model)
    endpoint_models = batches.exclude(endpoint=None).values_list("endpoint__model", flat=True)
    models.update(m for m in endpoint_models if m)
    return {
        "pipelines": pipelines,
        "prompt_hashes": {stage: sorted(h) for stage, h in sorted(prompt_hashes.items())},
        "models": sorted(models),
    }


def annotator_statistics(*, campaign: Campaign) -> list[dict]:
    """Per annotator: ratings, median seconds per post, gold accuracy, agreement with the rest.

    Agreement with the rest is, per question, 1 − D_a / D_e: D_a is the mean disagreement of the
    annotator's ratings with the other ratings of the same items, D_e the disagreement expected by
    chance from all pairable ratings (the same δ as the campaign's alpha). It is averaged over the
    questions, weighted by the annotator's pairable ratings.
    """
    stats: dict[int, dict] = {}
    for row in (
        Rating.objects.filter(campaign=campaign)
        .values("annotator_id", "annotator__username")
        .annotate(n=Count("id"))
        .order_by("annotator__username")
    ):
        stats[row["annotator_id"]] = {
            "annotator": row["annotator__username"],
            "ratings": row["n"],
            "median_seconds_per_post": None,
            "posts_done": 0,
            "gold_ratings": 0,
            "gold_accuracy": None,
            "agreement_with_rest": None,
        }

    seconds: dict[int, list[float]] = defaultdict(list)
    done = Assignment.objects.filter(campaign=campaign, status=Assignment.Status.DONE)
    for annotator_id, spent in done.values_list("annotator_id", "seconds_spent").iterator(5000):
        if annotator_id in stats:
            stats[annotator_id]["posts_done"] += 1
            if spent is not None:
                seconds[annotator_id].append(spent)
    for annotator_id, values in seconds.items():
        stats[annotator_id]["median_seconds_per_post"] = round(float(np.median(values)), 1)

    gold = GoldAnswer.objects.filter(campaign=campaign)
    gold_values = {(g.item_id, g.question_id): g.value for g in gold}
    if gold_values:
        gold_rows = Rating.objects.filter(
            campaign=campaign, item_id__in=gold.values("item_id")
        ).values_list("annotator_id", "item_id", "question_id", "value")
        hits: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for annotator_id, item_id, question_id, value in gold_rows.iterator(5000):
            expected = gold_values.get((item_id, question_id))
            if expected is not None:
                hits[annotator_id][0] += int(value == expected)
                hits[annotator_id][1] += 1
        for annotator_id, (correct, total) in hits.items():
            stats[annotator_id]["gold_ratings"] = total
            stats[annotator_id]["gold_accuracy"] = round(correct / total, 4)

    for annotator_id, value in _agreement_with_rest(campaign=campaign).items():
        if annotator_id in stats:
            stats[annotator_id]["agreement_with_rest"] = value
    return list(stats.values())


def _agreement_with_rest(*, campaign: Campaign) -> dict[int, float | None]:
    questions = campaign_questions(campaign=campaign)
    weighted: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    rating_table = Rating._meta.db_table
    for question in questions:
        domain = question_domain(question)
        level = get_scale(question.scale).level
        cols = [f"c{i}" for i in range(len(domain))]
        inner = ", ".join(f"SUM(CASE WHEN value = %s THEN 1 ELSE 0 END) AS {c}" for c in cols)
        outer = ", ".join(f"u.{c}" for c in cols)
        # Each rating joined to its unit's value counts: the others' counts are the unit's minus
        # the rating itself. Grouped, so the rows are annotators × values × profiles.
        sql = (
            f"SELECT r.annotator_id, r.value, {outer}, COUNT(*) FROM {rating_table} r JOIN ("
            f"SELECT item_id, {inner}, COUNT(*) AS m FROM {rating_table} "
            f"WHERE campaign_id = %s AND question_id = %s GROUP BY item_id) u "
            f"ON u.item_id = r.item_id WHERE r.campaign_id = %s AND r.question_id = %s "
            f"AND u.m >= 2 GROUP BY r.annotator_id, r.value, {outer}"
        )
        with connection.cursor() as cursor:
            params = [*domain, campaign.pk, question.id, campaign.pk, question.id]
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            continue
        annotators = np.array([r[0] for r in rows])
        own = np.array([domain.index(r[1]) if r[1] in domain else -1 for r in rows])
        keep = own >= 0
        counts = np.array([r[2:-1] for r in rows], dtype=float)[keep]
        times = np.array([r[-1] for r in rows], dtype=float)[keep]
        annotators, own = annotators[keep], own[keep]
        # Every rating of a unit appears once as "own", so the unit totals add up to n_v.
        n_v = (counts * (times / counts.sum(axis=1))[:, None]).sum(axis=0)
        delta = distances(np.array(domain), level, n_v)
        n = n_v.sum()
        expected = (n_v @ delta @ n_v) / (n * (n - 1)) if n > 1 else 0.0
        others = counts.copy()
        others[np.arange(len(own)), own] -= 1
        disagreement = (others * delta[own]).sum(axis=1) / others.sum(axis=1)
        for annotator_id in np.unique(annotators):
            mine = annotators == annotator_id
            if expected > 0:
                observed = float((disagreement[mine] * times[mine]).sum() / times[mine].sum())
                weighted[int(annotator_id)][0] += (1 - observed / expected) * times[mine].sum()
            weighted[int(annotator_id)][1] += times[mine].sum() if expected > 0 else 0
    return {
        annotator_id: (round(float(total / weight), 4) if weight else None)
        for annotator_id, (total, weight) in weighted.items()
    }


def item_score_page(*, campaign: Campaign, after: int = 0, size: int = 25) -> dict:
    """A page of the campaign's items (by id, after `after`) with their scores per question.

    Keyset pagination and scores aggregated for the page's items only, so a page of a campaign of
    millions of ratings costs a few index look-ups.
    """
    questions = campaign_questions(campaign=campaign)
    items = list(
        campaign_items(campaign=campaign)
        .filter(id__gt=after)
        .order_by("id")
        .values("id", "kind", "text", "post__external_id")[: size + 1]
    )
    has_next = len(items) > size
    items = items[:size]
    unrated = {"n": 0, "mean": None, "median": None, "spread": None}
    scored = {
        row["item_id"]: score_summary(row, questions)
        for row in item_scores(
            campaign=campaign, filters=ItemFilters(min_mean={}, min_ratings=0)
        ).filter(item_id__in=[item["id"] for item in items])
    }
    for item in items:
        scores = scored.get(item["id"], {})
        item["scores"] = [(q.name, scores.get(q.name, unrated)) for q in questions]
    return {
        "items": items,
        "questions": [q.name for q in questions],
        "next_after": items[-1]["id"] if has_next else None,
    }
