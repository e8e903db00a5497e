"""Reads: agreement from aggregated ratings, item scores, annotator statistics."""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from django.db import connection, transaction
from django.db.models import Count, Max, Sum

from annotation.models import Assignment, Campaign, GoldAnswer, Question, Rating
from annotation.scales import get_scale
from annotation.selectors import campaign_items
from evaluation.alpha import LEVELS, alpha_from_profiles, distances
from evaluation.relations import kind_sort_key
from generation.models import KnowledgeItem, Post, StageResult
from generation.services.items import DESCRIPTION_STAGES


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
    # Gold answers decide which items and annotators are left out: a new or changed one changes
    # the result as much as a rating does.
    gold = GoldAnswer.objects.filter(campaign=campaign).aggregate(
        n=Count("id"), top=Max("id"), total=Sum("value")
    )
    gold_part = f"g{gold['n']}:{gold['top'] or 0}:{gold['total'] or 0}:{MIN_GOLD_ACCURACY}"
    return f"{stats['n']}|{last}|{questions}|{gold_part}", stats["n"]


# Memory PostgreSQL may use per hash aggregate in the campaign-wide queries (SET LOCAL, so only
# inside their transaction): about 200 bytes a unit, so 256 MB keeps MIKO's in memory.
AGGREGATION_WORK_MEM = "256MB"


def aggregation_memory() -> None:
    """Let PostgreSQL hash a campaign's aggregates in memory in one pass, without JIT compilation.

    Call inside `transaction.atomic()`; it lasts until the transaction ends.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{AGGREGATION_WORK_MEM}'")
            # A one-off scan: compiling it (seconds for these many aggregates) never pays off.
            cursor.execute("SET LOCAL jit = off")
            # About one group per six rows: parallel workers would each build most of the hash
            # table and the leader merge them again, slower than one pass (measured on 2 cores).
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")


# Annotators whose gold accuracy is below this share are left out of alpha and item scores unless
# asked otherwise: 0.5 keeps anyone who matches at least half of the known answers (an annotator
# guessing on a 1-5 scale matches about one in five).
MIN_GOLD_ACCURACY = 0.5


def gold_accuracies(*, campaign: Campaign) -> dict[int, tuple[int, int]]:
    """Per annotator who rated a gold item: (ratings matching the expected answer, gold ratings).

    A gold rating is a rating of an item and question that has a gold answer in the campaign. One
    grouped join, led by the gold answers (few) through the ratings' unique (item, question,
    annotator) index.
    """
    sql = (
        f"SELECT r.annotator_id, SUM(CASE WHEN r.value = g.value THEN 1 ELSE 0 END), COUNT(*) "
        f"FROM {GoldAnswer._meta.db_table} g JOIN {Rating._meta.db_table} r "
        f"ON r.item_id = g.item_id AND r.question_id = g.question_id "
        f"AND r.campaign_id = g.campaign_id "
        f"WHERE g.campaign_id = %s GROUP BY r.annotator_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk])
        return {annotator: (int(hits), int(total)) for annotator, hits, total in cursor.fetchall()}


@dataclass(frozen=True)
class Exclusions:
    """What alpha and item scores leave out: the gold items (their answers are known, so they say
    nothing about the knowledge) and the ratings of annotators whose gold accuracy is below
    `min_gold_accuracy`. Only an annotator who rated a gold item can fall below it.

    `low_accuracy` lists every annotator below the threshold, excluded or not; the `include_*`
    flags keep what would otherwise be left out.
    """

    campaign_id: int
    min_gold_accuracy: float
    include_gold: bool
    include_low_accuracy: bool
    gold_items: int
    gold_item_ratings: int
    low_accuracy: tuple[dict, ...]

    @property
    def excludes_gold(self) -> bool:
        return bool(self.gold_items) and not self.include_gold

    @property
    def annotator_ids(self) -> list[int]:
        """The annotators whose ratings are left out."""
        return [] if self.include_low_accuracy else [a["id"] for a in self.low_accuracy]

    def rating_conditions(self, alias: str = "") -> tuple[list[str], list]:
        """SQL conditions on a ratings table (`alias.` before its columns) that leave out what is
        excluded, and their parameters. Nothing when nothing is excluded, so a campaign without
        gold answers runs the same query as before."""
        prefix = f"{alias}." if alias else ""
        conditions: list[str] = []
        params: list = []
        if self.excludes_gold:
            # NOT IN over a subquery: PostgreSQL hashes the gold items once (a hashed subplan).
            conditions.append(
                f"{prefix}item_id NOT IN (SELECT item_id FROM {GoldAnswer._meta.db_table} "
                f"WHERE campaign_id = %s)"
            )
            params.append(self.campaign_id)
        if self.annotator_ids:
            ids = ", ".join(str(int(i)) for i in self.annotator_ids)
            conditions.append(f"{prefix}annotator_id NOT IN ({ids})")
        return conditions, params

    def as_dict(self) -> dict:
        excluded = [] if self.include_low_accuracy else [a["annotator"] for a in self.low_accuracy]
        return {
            "min_gold_accuracy": self.min_gold_accuracy,
            "include_gold": self.include_gold,
            "include_low_accuracy": self.include_low_accuracy,
            "gold_items": self.gold_items,
            "gold_item_ratings": self.gold_item_ratings,
            "gold_items_excluded": self.gold_items if self.excludes_gold else 0,
            "annotators_excluded": excluded,
            "low_accuracy_annotators": [
                {key: value for key, value in a.items() if key != "id"} for a in self.low_accuracy
            ],
        }


def rating_exclusions(
    *,
    campaign: Campaign,
    min_gold_accuracy: float = MIN_GOLD_ACCURACY,
    include_gold: bool = False,
    include_low_accuracy: bool = False,
) -> Exclusions:
    """The campaign's gold items and its annotators below `min_gold_accuracy` (see `Exclusions`).

    One small query when the campaign has no gold answers; otherwise a few, each led by the gold
    answers or by the excluded annotators.
    """
    if not 0 <= min_gold_accuracy <= 1:
        raise ValueError(f"min_gold_accuracy must be between 0 and 1, not {min_gold_accuracy}")
    gold_item_ids = GoldAnswer.objects.filter(campaign=campaign).values("item_id")
    gold_items = gold_item_ids.distinct().count()
    low: list[dict] = []
    gold_item_ratings = 0
    if gold_items:
        gold_item_ratings = Rating.objects.filter(
            campaign=campaign, item_id__in=gold_item_ids
        ).count()
        below = {
            annotator_id: (hits, total)
            for annotator_id, (hits, total) in gold_accuracies(campaign=campaign).items()
            if total and hits / total < min_gold_accuracy
        }
        if below:
            rows = (
                Rating.objects.filter(campaign=campaign, annotator_id__in=below)
                .values_list("annotator_id", "annotator__username")
                .annotate(n=Count("id"))
                .order_by("annotator__username")
            )
            for annotator_id, username, n in rows:
                hits, total = below[annotator_id]
                low.append(
                    {
                        "id": annotator_id,
                        "annotator": username,
                        "gold_accuracy": round(hits / total, 4),
                        "gold_ratings": total,
                        "ratings": n,
                    }
                )
    return Exclusions(
        campaign_id=campaign.pk,
        min_gold_accuracy=float(min_gold_accuracy),
        include_gold=include_gold,
        include_low_accuracy=include_low_accuracy,
        gold_items=gold_items,
        gold_item_ratings=gold_item_ratings,
        low_accuracy=tuple(low),
    )


# Questions aggregated together in one scan of the ratings (their profiles are grouped jointly).
QUESTIONS_PER_SCAN = 3


def _packing_bits(domain: tuple[int, ...]) -> int:
    """Bits per value when a unit's counts are packed into one 63-bit integer: 12 for a 1-5 scale
    (up to 4,095 ratings of one value on one item), 8 for 1-7 (255)."""
    return min(16, 62 // len(domain))


def _value_count_profiles(
    *,
    campaign: Campaign,
    questions: list[Question],
    conditions: tuple[list[str], list] = ([], []),
) -> list[tuple[int, str, tuple[int, ...], int]]:
    """(question id, kind, counts per scale value, units with those counts), from SQL.

    Each rating adds 2^(bits × value index) to its unit, so one SUM per question packs the unit's
    value counts into one integer; units are then grouped by kind and packed counts. What comes
    back is a few hundred rows whatever the number of items or annotators, and the database hashes
    one integer per item and question instead of one counter per value. `conditions` (SQL on the
    ratings' columns, and their parameters) narrow the ratings read.
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
    sums = [f"{_packed_sum(question)} p{j}" for j, question in enumerate(questions)]
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
    found = []
    for (question_id, kind, code), count in units.items():
        question = next(q for q in questions if q.id == question_id)
        domain = question_domain(question)
        bits = _packing_bits(domain)
        mask = (1 << bits) - 1
        counts = tuple((code >> (bits * i)) & mask for i in range(len(domain)))
        found.append((question_id, kind, counts, count))
    return found


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
    if level and level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known levels: {', '.join(LEVELS)}")
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
            f"item_id IN (SELECT item_id FROM {GoldAnswer._meta.db_table} WHERE campaign_id = %s)",
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


@dataclass(frozen=True)
class AtLeast:
    """At least `count` of an item's ratings at or above `value` (e.g. 2 of 3 at 4 or more)."""

    value: float
    count: int

    def __post_init__(self) -> None:
        if int(self.count) != self.count or self.count < 1:
            raise ValueError(f"the count of ratings must be a whole number ≥ 1, not {self.count}")

    def as_dict(self) -> dict:
        return {"value": self.value, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict) -> "AtLeast":
        if not isinstance(data, dict) or set(data) != {"value", "count"}:
            raise ValueError(f'at-least filters are {{"value": x, "count": m}}, not {data!r}')
        return cls(value=float(data["value"]), count=int(data["count"]))


@dataclass(frozen=True)
class ItemFilters:
    """Which items an export keeps; every bound is inclusive.

    Per question name: `min_mean`, `min_median` (the median of an even number of ratings is the
    mean of the middle two), `min_agree` (at least m ratings at or above x). `min_ratings` and
    `max_spread` apply to every question. Gold items and the ratings of annotators whose gold
    accuracy is below `min_gold_accuracy` are left out unless `include_gold` or
    `include_low_accuracy` keep them (see `Exclusions`).
    """

    min_mean: dict[str, float]
    kinds: tuple[str, ...] = ()
    min_ratings: int = 1
    max_spread: float | None = None
    min_median: dict[str, float] = field(default_factory=dict)
    min_agree: dict[str, AtLeast] = field(default_factory=dict)
    include_gold: bool = False
    include_low_accuracy: bool = False
    min_gold_accuracy: float = MIN_GOLD_ACCURACY

    def __post_init__(self) -> None:
        if not 0 <= self.min_gold_accuracy <= 1:
            raise ValueError(
                f"min_gold_accuracy must be between 0 and 1, not {self.min_gold_accuracy}"
            )

    def questions(self) -> set[str]:
        """The question names the filters name."""
        return set(self.min_mean) | set(self.min_median) | set(self.min_agree)

    def as_dict(self) -> dict:
        return {
            "min_mean": dict(self.min_mean),
            "kinds": list(self.kinds),
            "min_ratings": self.min_ratings,
            "max_spread": self.max_spread,
            "min_median": dict(self.min_median),
            "min_agree": {name: rule.as_dict() for name, rule in self.min_agree.items()},
            "include_gold": self.include_gold,
            "include_low_accuracy": self.include_low_accuracy,
            "min_gold_accuracy": self.min_gold_accuracy,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ItemFilters":
        """The filters of `as_dict`; keys missing from older saved filters take their defaults."""
        accuracy = data.get("min_gold_accuracy")
        return cls(
            min_mean={k: float(v) for k, v in (data.get("min_mean") or {}).items()},
            kinds=tuple(data.get("kinds") or ()),
            min_ratings=int(data.get("min_ratings") or 0),
            max_spread=None if data.get("max_spread") is None else float(data["max_spread"]),
            min_median={k: float(v) for k, v in (data.get("min_median") or {}).items()},
            min_agree={k: AtLeast.from_dict(v) for k, v in (data.get("min_agree") or {}).items()},
            include_gold=bool(data.get("include_gold", False)),
            include_low_accuracy=bool(data.get("include_low_accuracy", False)),
            min_gold_accuracy=MIN_GOLD_ACCURACY if accuracy is None else float(accuracy),
        )

    def exclusions(self, *, campaign: Campaign) -> Exclusions:
        return rating_exclusions(
            campaign=campaign,
            min_gold_accuracy=self.min_gold_accuracy,
            include_gold=self.include_gold,
            include_low_accuracy=self.include_low_accuracy,
        )


def _packed_sum(question: Question, value_column: str = "value") -> str:
    """SQL adding 2^(bits × value index) for each rating of `question`: its unit's value counts,
    packed in one integer (see `_packing_bits`). The weights are integers computed here."""
    domain = question_domain(question)
    bits = _packing_bits(domain)
    code = " ".join(f"WHEN {int(v)} THEN {1 << (bits * i)}" for i, v in enumerate(domain))
    # PostgreSQL sums bigints into numeric, which has no bit operators: cast back.
    return (
        f"CAST(SUM(CASE WHEN question_id = {int(question.id)} "
        f"THEN (CASE {value_column} {code} END) END) AS BIGINT)"
    )


def _unpacked(column: str, question: Question) -> list[tuple[int, str]]:
    """(value, SQL for the number of ratings of that value) from a packed column."""
    domain = question_domain(question)
    bits = _packing_bits(domain)
    mask = (1 << bits) - 1
    return [(v, f"(({column} >> {bits * i}) & {mask})") for i, v in enumerate(domain)]


# Means are compared in integers: Σ value·count × 10,000 ≥ round(threshold × 10,000) × n.
MEAN_SCALE = 10_000


def _item_columns(questions: list[Question], filters: ItemFilters) -> list[str]:
    """Per question j, `n{j}` (ratings) and `s{j}` (sum of values) unpacked from `p{j}`; where the
    filters ask, `lo{j}` and `hi{j}` (the two middle values, whose mean is the median) and `a{j}`
    (ratings at or above the `min_agree` value)."""
    columns = []
    for j, question in enumerate(questions):
        counts = _unpacked(f"p{j}", question)
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
            filled = _unpacked(f"COALESCE(p{j}, 0)", question)
            for a, (va, sa) in enumerate(filled):
                for vb, sb in filled[a + 1 :]:
                    if abs(vb - va) > filters.max_spread:
                        conditions.append(f"NOT ({sa} > 0 AND {sb} > 0)")
    return conditions


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
    questions = campaign_questions(campaign=campaign)
    unknown = filters.questions() - {q.name for q in questions}
    if unknown:
        known = ", ".join(q.name for q in questions) or "none"
        raise ValueError(f"unknown question(s) {', '.join(sorted(unknown))}; questions: {known}")
    if not questions:
        return
    rating_table = Rating._meta.db_table
    item_table = KnowledgeItem._meta.db_table
    sums = ", ".join(f"{_packed_sum(q, 'r.value')} AS p{j}" for j, q in enumerate(questions))
    where, params = ["r.campaign_id = %s"], [campaign.pk]
    kinds = filters.kinds or tuple(campaign.kinds or ())
    if kinds:
        where.append(f"i.kind IN ({', '.join(['%s'] * len(kinds))})")
        params += list(kinds)
    if item_ids is not None:
        where.append(f"r.item_id IN ({', '.join(['%s'] * len(item_ids))})" if item_ids else "1 = 0")
        params += list(item_ids)
    excluded, excluded_params = (
        exclusions or filters.exclusions(campaign=campaign)
    ).rating_conditions("r")
    where += excluded
    params += excluded_params
    conditions = _item_conditions(questions, filters)
    # Items are joined only where needed (kinds, order by post): joining every rating costs more
    # than the aggregation itself; otherwise `post_id` is null and callers read it from the item.
    if kinds or by_post:
        source = f"{rating_table} r JOIN {item_table} i ON i.id = r.item_id"
        post, group = "i.post_id", "r.item_id, i.post_id"
    else:
        source, post, group = f"{rating_table} r", "NULL", "r.item_id"
    order = "u.post_id, u.item_id" if by_post else "u.item_id"
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
        + f" ORDER BY {order.replace('u.', 'v.')}"
    )
    columns = ["item_id", "post_id", *(f"p{j}" for j in range(len(questions)))]
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                yield dict(zip(columns, row, strict=True))


def score_summary(row: dict, questions: list[Question]) -> dict[str, dict]:
    """Ratings, mean, median and spread (max − min) per question from an `item_scores` row."""
    return score_summaries([row], questions)[0]


def score_summaries(rows: list[dict], questions: list[Question]) -> list[dict[str, dict]]:
    """`score_summary` for many rows at once, unpacking the counts with numpy."""
    per_question = []
    for j, question in enumerate(questions):
        domain = np.array(question_domain(question))
        bits = _packing_bits(tuple(domain))
        packed = np.array([int(row[f"p{j}"] or 0) for row in rows], dtype=np.int64)
        shifts = np.arange(len(domain), dtype=np.int64) * bits
        counts = (packed[:, None] >> shifts) & ((1 << bits) - 1)
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


def _in_ids(column: str, ids: list[int]) -> tuple[str, list]:
    """`column IN ids` as SQL: one array parameter on PostgreSQL (no query of 2,000 markers)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    return f"{column} IN ({', '.join(['%s'] * len(ids)) or 'NULL'})", list(ids)


def item_details(*, item_ids: list[int]) -> dict[int, dict]:
    """Kind, position, text and post (id, external id, text, image) of each item, by id.

    Two look-ups by primary key rather than a join, which PostgreSQL would answer by scanning
    every post for each chunk of a large export.
    """
    item_table = KnowledgeItem._meta.db_table
    post_table = Post._meta.db_table
    keys = ("id", "kind", "position", "text", "post_id")
    with connection.cursor() as cursor:
        condition, params = _in_ids("id", item_ids)
        cursor.execute(
            f"SELECT id, kind, position, text, post_id FROM {item_table} WHERE {condition}", params
        )
        items = {row[0]: dict(zip(keys, row, strict=True)) for row in cursor.fetchall()}
        condition, params = _in_ids("id", list({item["post_id"] for item in items.values()}))
        cursor.execute(
            f"SELECT id, external_id, text, image FROM {post_table} WHERE {condition}", params
        )
        posts = {row[0]: row[1:] for row in cursor.fetchall()}
    for item in items.values():
        item["external_id"], item["post_text"], item["image"] = posts[item["post_id"]]
    return items


def post_descriptions(*, post_ids: list[int]) -> dict[int, str]:
    """The image description of each post: the latest OK `describe_image` or `caption` result."""
    found: dict[int, str] = {}
    condition, params = _in_ids("post_id", post_ids)
    results = (
        StageResult.objects.filter(stage__in=DESCRIPTION_STAGES, status=StageResult.Status.OK)
        .extra(where=[condition], params=params)
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
