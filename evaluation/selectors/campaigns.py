"""Plain reads of a campaign: its questions and their value domains, the details of items for an
export, and the pipelines, prompts and models behind its items."""

import json
from collections import defaultdict
from collections.abc import Iterable

from django.db import connection

from annotation.models import Campaign, Question
from annotation.scales import get_scale
from config.sql import in_ids
from generation.models import Batch, KnowledgeItem, Post, StageResult


def question_domain(question: Question) -> tuple[int, ...]:
    return tuple(get_scale(question.scale).values)


def campaign_questions(*, campaign: Campaign) -> list[Question]:
    return list(Question.objects.filter(campaign=campaign).order_by("position", "id"))


def item_details(*, item_ids: list[int]) -> dict[int, dict]:
    """Kind, position, text, post (id, external id, text, image) and provenance (batch, own and
    description stage result, `stage_results`) of each item, by id.

    Two look-ups by primary key rather than a join, which PostgreSQL would answer by scanning
    every post for each chunk of a large export. Of the provenance only `stage_results` is read.
    """
    item_table = KnowledgeItem._meta.db_table
    post_table = Post._meta.db_table
    keys = (
        "id", "kind", "position", "text", "post_id", "batch_id", "stage_result_id",
        "description_result_id", "stage_results",
    )  # fmt: skip
    sources = (
        "provenance -> 'stage_results'"
        if connection.vendor == "postgresql"
        else "json_extract(provenance, '$.stage_results')"
    )
    with connection.cursor() as cursor:
        condition, params = in_ids("id", item_ids)
        cursor.execute(
            f"SELECT id, kind, position, text, post_id, batch_id, stage_result_id, "
            f"description_result_id, {sources} FROM {item_table} WHERE {condition}",
            params,
        )
        items = {row[0]: dict(zip(keys, row, strict=True)) for row in cursor.fetchall()}
        condition, params = in_ids("id", {item["post_id"] for item in items.values()})
        cursor.execute(
            f"SELECT id, external_id, text, image FROM {post_table} WHERE {condition}", params
        )
        posts = {row[0]: row[1:] for row in cursor.fetchall()}
    for item in items.values():
        item["external_id"], item["post_text"], item["image"] = posts[item["post_id"]]
        if isinstance(item["stage_results"], str):  # a raw cursor returns JSON as text
            item["stage_results"] = json.loads(item["stage_results"])
    return items


def stage_keys(
    *,
    result_ids: Iterable[int] = (),
    posts: Iterable[int] = (),
    batches: Iterable[int] = (),
    stages: Iterable[str] = (),
) -> set[tuple]:
    """How stage results were produced: (stage, pipeline, model, template hash, parameters as
    sorted JSON, endpoint id) of the results with these ids, or, given posts, of the OK results of
    these stages for these posts in these batches. One query led by primary keys or by the
    results' unique key (post first)."""
    result_table = StageResult._meta.db_table
    batch_table = Batch._meta.db_table
    if posts:
        post_condition, params = in_ids("s.post_id", posts)
        batch_condition, batch_params = in_ids("s.batch_id", batches)
        stage_condition, stage_params = in_ids("s.stage", stages)
        where = f"{post_condition} AND {batch_condition} AND {stage_condition} AND s.status = %s"
        params += batch_params + stage_params + [StageResult.Status.OK]
    else:
        result_ids = list(result_ids)
        if not result_ids:
            return set()
        where, params = in_ids("s.id", result_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT s.stage, b.pipeline, s.model, s.template_hash, s.parameters, "
            f"s.endpoint_id FROM {result_table} s LEFT JOIN {batch_table} b ON b.id = s.batch_id "
            f"WHERE {where}",
            params,
        )
        rows = cursor.fetchall()
    keys = set()
    for stage, pipeline, model, template_hash, parameters, endpoint_id in rows:
        if isinstance(parameters, str):  # a raw cursor returns JSON as text
            parameters = json.loads(parameters)
        keys.add(
            (stage, pipeline or "", model, template_hash,
             json.dumps(parameters or {}, sort_keys=True), endpoint_id)
        )  # fmt: skip
    return keys


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
