"""Reads for critics: the labelled items a critic learns from (the human item scores exports
use), the item texts it reads (in id ranges for scoring), critics by name, and the items an export
takes from a critic."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import QuerySet

from annotation.models import Campaign, Question, Rating
from config.errors import ApplicationError
from config.sql import in_ids
from critics.models import Critic, CriticScore
from evaluation.extensions import split_conditions
from evaluation.selectors.exclusions import gold_items_sql
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.scores import item_scores, score_summaries
from generation.models import KnowledgeItem, Post
from generation.selectors.items import result_descriptions

SCORE_CHUNK = 20_000


@dataclass(frozen=True)
class ItemText:
    """What a critic reads of an item: its kind and text, and its post's text with the image
    description its own run read (the context)."""

    item_id: int
    post_id: int
    kind: str
    text: str
    context: str


@dataclass
class TrainingData:
    """The campaign's items rated on the question, with their mean (as exports compute it) and
    whether it reaches the threshold."""

    item_ids: np.ndarray
    posts: np.ndarray
    means: np.ndarray
    labels: np.ndarray


def training_data(*, critic: Critic) -> TrainingData:
    """The human item scores of the critic's question (gold items and low-accuracy annotators
    left out as its `exclusions` say, as in exports), labelled "mean ≥ threshold"."""
    filters = ItemFilters(min_mean={}, min_ratings=0, **critic.exclusions)
    questions = list(Question.objects.filter(campaign=critic.campaign).order_by("position", "id"))
    item_ids, posts, means = [], [], []
    chunk: list[dict] = []

    def flush() -> None:
        for row, scores in zip(chunk, score_summaries(chunk, questions), strict=True):
            score = scores[critic.question.name]
            if score["n"]:
                item_ids.append(row["item_id"])
                posts.append(row["post_id"])
                means.append(score["mean"])
        chunk.clear()

    for row in item_scores(campaign=critic.campaign, filters=filters, by_post=True):
        chunk.append(row)
        if len(chunk) >= 5000:
            flush()
    flush()
    means_array = np.array(means, dtype=np.float64)
    return TrainingData(
        item_ids=np.array(item_ids, dtype=np.int64),
        posts=np.array(posts, dtype=np.int64),
        means=means_array,
        labels=(means_array >= critic.threshold).astype(np.int64),
    )


_TEXT_COLUMNS = "i.id, i.post_id, i.kind, i.text, i.description_result_id, p.text"


def _texts(rows: list[tuple]) -> list[ItemText]:
    descriptions = result_descriptions(result_ids={row[4] for row in rows} - {None})
    found = []
    for item_id, post_id, kind, text, description_id, post_text in rows:
        description = descriptions.get(description_id, "")
        context = f"{post_text}\n{description}" if description else post_text
        found.append(ItemText(item_id, post_id, kind, text, context))
    return found


def item_texts(*, item_ids: list[int]) -> list[ItemText]:
    """The texts of these items, in the order of `item_ids`."""
    found: dict[int, ItemText] = {}
    for start in range(0, len(item_ids), SCORE_CHUNK):
        condition, params = in_ids("i.id", item_ids[start : start + SCORE_CHUNK])
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {_TEXT_COLUMNS} FROM {KnowledgeItem._meta.db_table} i "
                f"JOIN {Post._meta.db_table} p ON p.id = i.post_id WHERE {condition}",
                params,
            )
            found.update((text.item_id, text) for text in _texts(cursor.fetchall()))
    return [found[pk] for pk in item_ids]


def dataset_items_after(*, dataset_id: int, after: int, limit: int = SCORE_CHUNK) -> list[ItemText]:
    """The next `limit` items of the dataset by id after `after`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_TEXT_COLUMNS} FROM {KnowledgeItem._meta.db_table} i "
            f"JOIN {Post._meta.db_table} p ON p.id = i.post_id "
            "WHERE p.dataset_id = %s AND i.id > %s ORDER BY i.id LIMIT %s",
            [dataset_id, after, limit],
        )
        return _texts(cursor.fetchall())


def dataset_item_count(*, dataset_id: int, after: int = 0) -> int:
    return KnowledgeItem.objects.filter(post__dataset_id=dataset_id, id__gt=after).count()


def critic_named(name: str, *, done: bool = True) -> Critic:
    """The latest version of the critic `NAME`, or version N of `NAME:vN`; trained (`done`)
    unless asked otherwise."""
    base, _, version = name.partition(":v")
    critics = Critic.objects.filter(name=base).select_related("campaign", "question")
    if done:
        critics = critics.filter(status=Critic.Status.DONE)
    if version:
        if not version.isdigit():
            raise ApplicationError(f"a critic version is NAME:vN, not {name!r}", field="critic")
        critics = critics.filter(version=int(version))
    critic = critics.order_by("-version").first()
    if critic is None:
        state = "trained critic" if done else "critic"
        raise ApplicationError(f"no {state} named {name!r}", field="critic")
    return critic


def critic_versions(*, critic: Critic) -> QuerySet[Critic]:
    """Every version of the critic's name, oldest first (before and after each round)."""
    return Critic.objects.filter(name=critic.name).select_related("question").order_by("version")


def critic_export_rows(
    *,
    critic: Critic,
    campaign: Campaign,
    threshold: float,
    kinds: tuple[str, ...],
    exclusions,
    splits: tuple[str, ...] = (),
    held_out: tuple[str, ...] = (),
    chunk_size: int = 2000,
) -> Iterator[dict]:
    """The items an export takes from the critic, by id: scored at or above `threshold`, of the
    export's kinds, and with no rating the export counts (people's scores win where they exist:
    those items pass or fail on the human filters). Gold items stay out unless the export
    includes them; only posts of `splits` (when any) and none of `held_out`, as in the export.
    Rows are shaped as `item_scores` rows (no packed counts) plus `critic_score`.
    """
    item_table = KnowledgeItem._meta.db_table
    where = ["s.critic_id = %s", "s.score >= %s"]
    params: list = [critic.pk, threshold]
    if kinds:
        where.append(f"i.kind IN ({', '.join(['%s'] * len(kinds))})")
        params += list(kinds)
    rated = ["r.campaign_id = %s", "r.item_id = s.item_id"]
    rated_params: list = [campaign.pk]
    if exclusions.annotator_ids:
        rated.append(
            f"r.annotator_id NOT IN ({', '.join(str(int(a)) for a in exclusions.annotator_ids)})"
        )
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {Rating._meta.db_table} r WHERE {' AND '.join(rated)})"
    )
    params += rated_params
    if exclusions.excludes_gold:
        where.append(f"s.item_id NOT IN ({gold_items_sql()})")
        params.append(campaign.pk)
    in_split, split_params = split_conditions(
        post_column="i.post_id", splits=splits, held_out=held_out
    )
    where += in_split
    params += split_params
    join = f" JOIN {item_table} i ON i.id = s.item_id" if kinds or in_split else ""
    sql = (
        f"SELECT s.item_id, s.score FROM {CriticScore._meta.db_table} s{join} "
        f"WHERE {' AND '.join(where)} ORDER BY s.item_id"
    )
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            for item_id, score in rows:
                yield {"item_id": item_id, "post_id": None, "critic_score": float(score)}


def uncertain_posts(*, critic: Critic, post_ids: list[int]) -> list[tuple[int, float]]:
    """(post, uncertainty) for these posts, most uncertain first: the mean over the post's items
    in the campaign of |p − 0.5| (smaller is more uncertain); posts without scores last."""
    if not post_ids:
        return []
    condition, params = in_ids("i.post_id", post_ids)
    kinds = tuple(critic.campaign.kinds or ())
    kind_sql = f" AND i.kind IN ({', '.join(['%s'] * len(kinds))})" if kinds else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.post_id, AVG(ABS(s.score - 0.5)) FROM {CriticScore._meta.db_table} s "
            f"JOIN {KnowledgeItem._meta.db_table} i ON i.id = s.item_id "
            f"WHERE s.critic_id = %s AND {condition}{kind_sql} GROUP BY i.post_id",
            [critic.pk, *params, *kinds],
        )
        found = {post: float(distance) for post, distance in cursor.fetchall()}
    return sorted(
        ((post, found.get(post, 1.0)) for post in post_ids), key=lambda pair: (pair[1], pair[0])
    )
