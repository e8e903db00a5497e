"""Per-annotator statistics of the dashboard: ratings, time per post, gold accuracy and agreement
with the other annotators."""

from collections import defaultdict

import numpy as np
from django.db import connection, transaction
from django.db.models import Count

from annotation.models import Assignment, Campaign, Rating
from annotation.scales import get_scale
from annotation.selectors import gold_accuracies
from evaluation.alpha import distances
from evaluation.selectors.campaigns import campaign_questions, question_domain
from evaluation.selectors.exclusions import MIN_GOLD_ACCURACY
from evaluation.selectors.packing import aggregation_memory


def annotator_statistics(*, campaign: Campaign) -> list[dict]:
    """Per annotator: ratings, median seconds per post, gold accuracy (and whether it is below
    `MIN_GOLD_ACCURACY`, which leaves the annotator's ratings out of alpha and item scores by
    default), agreement with the rest.

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
            "below_gold_accuracy": False,
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

    for annotator_id, (correct, total) in gold_accuracies(campaign=campaign).items():
        if annotator_id in stats:
            accuracy = round(correct / total, 4)
            stats[annotator_id]["gold_ratings"] = total
            stats[annotator_id]["gold_accuracy"] = accuracy
            stats[annotator_id]["below_gold_accuracy"] = correct / total < MIN_GOLD_ACCURACY

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
        with transaction.atomic(), connection.cursor() as cursor:
            aggregation_memory()
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
