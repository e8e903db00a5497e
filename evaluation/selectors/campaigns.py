"""Plain reads of a campaign: its questions and their value domains, the details of items for an
export, and the pipelines, prompts and models behind its items."""

from collections import defaultdict

from django.db import connection

from annotation.models import Campaign, Question
from annotation.scales import get_scale
from generation.models import KnowledgeItem, Post, StageResult


def question_domain(question: Question) -> tuple[int, ...]:
    return tuple(get_scale(question.scale).values)


def campaign_questions(*, campaign: Campaign) -> list[Question]:
    return list(Question.objects.filter(campaign=campaign).order_by("position", "id"))


def in_ids(column: str, ids: list[int]) -> tuple[str, list]:
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
        condition, params = in_ids("id", item_ids)
        cursor.execute(
            f"SELECT id, kind, position, text, post_id FROM {item_table} WHERE {condition}", params
        )
        items = {row[0]: dict(zip(keys, row, strict=True)) for row in cursor.fetchall()}
        condition, params = in_ids("id", list({item["post_id"] for item in items.values()}))
        cursor.execute(
            f"SELECT id, external_id, text, image FROM {post_table} WHERE {condition}", params
        )
        posts = {row[0]: row[1:] for row in cursor.fetchall()}
    for item in items.values():
        item["external_id"], item["post_text"], item["image"] = posts[item["post_id"]]
    return items


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
