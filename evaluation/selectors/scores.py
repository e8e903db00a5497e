"""Item scores: the SQL builder that streams each rated item's packed value counts through the
filters (exports and the dashboard), their summaries (ratings, mean, median, spread per question),
and the dashboard's page of item scores."""

from collections.abc import Iterator

import numpy as np
from django.db import connection

from annotation.models import Campaign, GoldAnswer, Question, Rating
from annotation.selectors import campaign_items
from evaluation.extensions import split_conditions
from evaluation.selectors.campaigns import campaign_questions, question_domain
from evaluation.selectors.exclusions import Exclusions
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.packing import packed_sum, unpack, unpacked
from generation.models import KnowledgeItem

# Means are compared in integers: Σ value·count × 10,000 ≥ round(threshold × 10,000) × n.
MEAN_SCALE = 10_000


def _item_columns(questions: list[Question], filters: ItemFilters) -> list[str]:
    """Per question j, `n{j}` (ratings) and `s{j}` (sum of values) unpacked from `p{j}`; where the
    filters ask, `lo{j}` and `hi{j}` (the two middle values, whose mean is the median) and `a{j}`
    (ratings at or above the `min_agree` value)."""
    columns = []
    for j, question in enumerate(questions):
        counts = unpacked(f"p{j}", question)
        n = " + ".join(sql for _, sql in counts)
        columns.append(f"{n} AS n{j}")
        columns.append(f"{' + '.join(f'{int(v)} * {sql}' for v, sql in counts)} AS s{j}")
        if question.name in filters.min_median:
            # The k-th smallest value (from 0) is the first whose cumulative count exceeds k; the
            # middle two are k = (n − 1) / 2 and n / 2 (integer division, as `score_summaries`).
            # No rating: no branch matches and the column is null.
            for name, k in ((f"lo{j}", f"({n} - 1) / 2"), (f"hi{j}", f"({n}) / 2")):
                branches = " ".join(
                    f"WHEN {' + '.join(sql for _, sql in counts[: i + 1])} > {k} THEN {int(v)}"
                    for i, (v, _) in enumerate(counts)
                )
                columns.append(f"CASE {branches} END AS {name}")
        if question.name in filters.min_agree:
            bound = filters.min_agree[question.name].value
            above = [sql for v, sql in counts if v >= bound]
            columns.append(f"{' + '.join(above) or '0'} AS a{j}")
    return columns


def _item_conditions(questions: list[Question], filters: ItemFilters) -> list[str]:
    """Conditions on the columns of `_item_columns` and `p{j}`; numbers only (validated as
    numbers)."""
    conditions = []
    for j, question in enumerate(questions):
        if filters.min_ratings:
            conditions.append(f"n{j} >= {int(filters.min_ratings)}")
        if question.name in filters.min_mean:
            # mean ≥ x ⟺ Σ value·count ≥ x·n, with n ≥ 1 (an unrated question fails).
            threshold = round(float(filters.min_mean[question.name]) * MEAN_SCALE)
            conditions.append(f"n{j} >= 1 AND s{j} * {MEAN_SCALE} >= {threshold} * n{j}")
        if question.name in filters.min_median:
            # median ≥ x ⟺ lo + hi ≥ 2x; null (unrated) fails.
            threshold = round(2 * float(filters.min_median[question.name]) * MEAN_SCALE)
            conditions.append(f"(lo{j} + hi{j}) * {MEAN_SCALE} >= {threshold}")
        if question.name in filters.min_agree:
            conditions.append(f"a{j} >= {int(filters.min_agree[question.name].count)}")
        if filters.max_spread is not None:
            filled = unpacked(f"COALESCE(p{j}, 0)", question)
            for a, (va, sa) in enumerate(filled):
                for vb, sb in filled[a + 1 :]:
                    if abs(vb - va) > filters.max_spread:
                        conditions.append(f"NOT ({sa} > 0 AND {sb} > 0)")
    return conditions


def _item_scores_sql(
    *,
    campaign: Campaign,
    filters: ItemFilters,
    by_post: bool = False,
    item_ids: list[int] | None = None,
    exclusions: Exclusions | None = None,
) -> tuple[list[Question], str, list] | None:
    """The campaign's questions and the statement of `item_scores` (and `item_count`),
    unordered, with its parameters; None when the campaign has no question. Filters naming a
    question the campaign does not have are refused."""
    questions = campaign_questions(campaign=campaign)
    filters.check_questions([q.name for q in questions])
    if not questions:
        return None
    rating_table = Rating._meta.db_table
    item_table = KnowledgeItem._meta.db_table
    sums = ", ".join(f"{packed_sum(q, 'r.value')} AS p{j}" for j, q in enumerate(questions))
    where, params = ["r.campaign_id = %s"], [campaign.pk]
    kinds = filters.kinds or tuple(campaign.kinds or ())
    if kinds:
        where.append(f"i.kind IN ({', '.join(['%s'] * len(kinds))})")
        params += list(kinds)
    if item_ids is not None:
        where.append(f"r.item_id IN ({', '.join(['%s'] * len(item_ids))})" if item_ids else "1 = 0")
        params += list(item_ids)
    by_split = bool(filters.splits or filters.held_out)
    if by_split:
        in_split, split_params = split_conditions(
            post_column="i.post_id", splits=filters.splits, held_out=filters.held_out
        )
        where += in_split
        params += split_params
    excluded, excluded_params = (
        exclusions or filters.exclusions(campaign=campaign)
    ).rating_conditions("r")
    where += excluded
    params += excluded_params
    conditions = _item_conditions(questions, filters)
    # Items are joined only where needed (kinds, order by post): joining every rating costs more
    # than the aggregation itself; otherwise `post_id` is null and callers read it from the item.
    if kinds or by_post or by_split:
        source = f"{rating_table} r JOIN {item_table} i ON i.id = r.item_id"
        post, group = "i.post_id", "r.item_id, i.post_id"
    else:
        source, post, group = f"{rating_table} r", "NULL", "r.item_id"
    packed = ", ".join(f"v.p{j}" for j in range(len(questions)))
    # OFFSET 0 keeps PostgreSQL from inlining the unpacking into every condition (and so
    # computing it several times per item).
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    sql = (
        f"SELECT v.item_id, v.post_id, {packed} FROM (SELECT u.*, "
        f"{', '.join(_item_columns(questions, filters))} FROM ("
        f"SELECT r.item_id, {post} AS post_id, {sums} FROM {source} "
        f"WHERE {' AND '.join(where)} GROUP BY {group}) u{fence}) v"
        + (f" WHERE {' AND '.join(conditions)}" if conditions else "")
    )
    return questions, sql, params


def item_scores(
    *,
    campaign: Campaign,
    filters: ItemFilters,
    by_post: bool = False,
    item_ids: list[int] | None = None,
    chunk_size: int = 2000,
    exclusions: Exclusions | None = None,
) -> Iterator[dict]:
    """Stream one row per rated item that passes `filters`: `item_id`, `post_id` (with `by_post`
    or kinds; else null) and per question j `p{j}`, its value counts packed in one integer
    (`score_summary` reads them). Ordered by item, or by post then item with `by_post`.

    Gold items and the ratings of annotators below the filters' gold accuracy are left out unless
    the filters include them (`exclusions`, when given, is what `filters.exclusions` returned).
    The database sums one packed integer per question and item and filters on them, so the rows
    can be streamed from a server-side cursor and the per-row work stays small.
    """
    statement = _item_scores_sql(
        campaign=campaign,
        filters=filters,
        by_post=by_post,
        item_ids=item_ids,
        exclusions=exclusions,
    )
    if statement is None:
        return
    questions, sql, params = statement
    sql += " ORDER BY v.post_id, v.item_id" if by_post else " ORDER BY v.item_id"
    columns = ["item_id", "post_id", *(f"p{j}" for j in range(len(questions)))]
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                yield dict(zip(columns, row, strict=True))


def item_count(*, campaign: Campaign, filters: ItemFilters) -> int:
    """How many items an export with `filters` keeps (the export form's preview): the rows of
    `item_scores`' own statement, counted by the database."""
    statement = _item_scores_sql(campaign=campaign, filters=filters)
    if statement is None:
        return 0
    _, sql, params = statement
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) kept", params)
        return cursor.fetchone()[0]


def score_summary(row: dict, questions: list[Question]) -> dict[str, dict]:
    """Ratings, mean, median and spread (max − min) per question from an `item_scores` row."""
    return score_summaries([row], questions)[0]


def score_summaries(rows: list[dict], questions: list[Question]) -> list[dict[str, dict]]:
    """`score_summary` for many rows at once, unpacking the counts with numpy."""
    per_question = []
    for j, question in enumerate(questions):
        domain = np.array(question_domain(question))
        counts = unpack([row[f"p{j}"] for row in rows], question_domain(question))
        n = counts.sum(axis=1)
        rated = n > 0
        safe_n = np.where(rated, n, 1)
        means = np.round(counts @ domain / safe_n, 4)
        cumulative = counts.cumsum(axis=1)
        low = (cumulative > ((n - 1) // 2)[:, None]).argmax(axis=1)
        high = (cumulative > (n // 2)[:, None]).argmax(axis=1)
        medians = (domain[low] + domain[high]) / 2
        present = counts > 0
        top = len(domain) - 1 - present[:, ::-1].argmax(axis=1)
        spreads = domain[top] - domain[present.argmax(axis=1)]
        per_question.append(
            (question.name, rated.tolist(), n.tolist(), means.tolist(), medians.tolist(),
             spreads.tolist())
        )  # fmt: skip
    summaries = []
    for i in range(len(rows)):
        scores = {}
        for name, rated, n, means, medians, spreads in per_question:
            if rated[i]:
                scores[name] = {
                    "n": n[i], "mean": means[i], "median": medians[i], "spread": spreads[i]
                }  # fmt: skip
            else:
                scores[name] = {"n": 0, "mean": None, "median": None, "spread": None}
        summaries.append(scores)
    return summaries


def item_score_page(*, campaign: Campaign, after: int = 0, size: int = 25) -> dict:
    """A page of the campaign's items (by id, after `after`) with their scores per question, and
    whether each is a gold item.

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
    ids = [item["id"] for item in items]
    # Gold items are listed (marked) with their scores; low-accuracy annotators' ratings are not
    # counted, as in exports.
    rows = item_scores(
        campaign=campaign,
        filters=ItemFilters(min_mean={}, min_ratings=0, include_gold=True),
        item_ids=ids,
    )
    scored = {row["item_id"]: score_summary(row, questions) for row in rows}
    gold = set(
        GoldAnswer.objects.filter(campaign=campaign, item_id__in=ids).values_list(
            "item_id", flat=True
        )
    )
    for item in items:
        scores = scored.get(item["id"], {})
        item["scores"] = [(q.name, scores.get(q.name, unrated)) for q in questions]
        item["gold"] = item["id"] in gold
    return {
        "items": items,
        "questions": [q.name for q in questions],
        "next_after": items[-1]["id"] if has_next else None,
    }
