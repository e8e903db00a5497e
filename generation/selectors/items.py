"""Reads of knowledge items: which batches' items, and what each item was built from.

An item names the stage results its run read (`provenance["stage_results"]`, and
`description_result` for the image description or caption), so what is shown and exported
beside it is what its own run used, never "the latest description of the post".
"""

import json
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from config.sql import in_ids
from generation.models import BatchItem, KnowledgeItem, StageResult


def items_of_batches(*, batch_ids: Iterable[int] | QuerySet) -> QuerySet[KnowledgeItem]:
    """The distinct items the batches produced or reused (each (post, kind, text) once).

    `batch_ids` may be a queryset of ids (it then stays a subquery)."""
    if not isinstance(batch_ids, QuerySet):
        batch_ids = list(batch_ids)
    return KnowledgeItem.objects.filter(
        Exists(BatchItem.objects.filter(item=OuterRef("pk"), batch_id__in=batch_ids))
    )


def source_ids(stage_results: Any) -> dict[str, int]:
    """{stage: result id} from an item's `provenance["stage_results"]` (anything else: none)."""
    if not isinstance(stage_results, dict):
        return {}
    return {stage: pk for stage, pk in stage_results.items() if isinstance(pk, int)}


def item_descriptions(*, item_ids: list[int]) -> dict[int, str]:
    """{item id: the image description or caption its own run read}; "" where it read none."""
    with connection.cursor() as cursor:
        condition, params = in_ids("id", item_ids)
        cursor.execute(
            f"SELECT id, description_result_id FROM {KnowledgeItem._meta.db_table} "
            f"WHERE {condition}",
            params,
        )
        described = dict(cursor.fetchall())
    texts = result_descriptions(result_ids={pk for pk in described.values() if pk})
    return {item_id: texts.get(result_id, "") for item_id, result_id in described.items()}


def result_descriptions(*, result_ids: Iterable[int]) -> dict[int, str]:
    """{stage result id: its description or caption text} (read once however many items share
    it: the items of a post usually share one)."""
    return {pk: description_text(parsed) for pk, parsed in _parsed_results(result_ids).items()}


def _parsed_results(result_ids: Iterable[int]) -> dict[int, Any]:
    """{stage result id: its parsed output}, by primary key in one query."""
    result_ids = list(result_ids)
    if not result_ids:
        return {}
    with connection.cursor() as cursor:
        condition, params = in_ids("id", result_ids)
        cursor.execute(
            f"SELECT id, parsed FROM {StageResult._meta.db_table} WHERE {condition}", params
        )
        rows = cursor.fetchall()
    # A raw cursor returns JSON as text (Django decodes it in the field, on either database).
    return {pk: json.loads(p) if isinstance(p, str) else p for pk, p in rows}


def description_text(parsed: Any) -> str:
    """The text of a description or caption stage's parsed output."""
    if not isinstance(parsed, dict):
        return ""
    value = parsed.get("description") or parsed.get("caption") or ""
    return value if isinstance(value, str) else ""
