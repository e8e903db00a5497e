"""Storing knowledge items: each (post, kind, text) once, linked to every batch that produced it.

A batch that reuses cached answers (or produces a sentence another batch already produced) links
the existing item instead of making a copy, so a campaign over several batches rates each distinct
piece of knowledge once, and its ratings stay with it.
"""

import json
from typing import Any

from django.db import connection
from psycopg import sql

from generation import copying
from generation.copying import (
    KNOWLEDGE_ITEM_FIELDS,
    KnowledgeItemRow,
    column_list,
    execute,
    table,
)
from generation.models import BatchItem, KnowledgeItem

#: Stages whose answer is the image description (MIKO) or caption (CoTPD) shown beside items.
DESCRIPTION_STAGES = ("describe_image", "caption")


def items_store(*, batch_id: int, items: list[KnowledgeItem], now: Any) -> None:
    """Insert the items that are new and link every one of them to the batch.

    Call inside a transaction. An item whose (post, kind, text) exists keeps its first row (its
    provenance, its ratings); the batch is linked to it all the same.
    """
    if not items:
        return
    if connection.vendor == "postgresql":
        _store_by_copy(batch_id, items, now)
        return
    for item in items:
        item.created_at = now
    KnowledgeItem.objects.bulk_create(items, ignore_conflicts=True)
    keys = {(item.post_id, item.kind, item.text) for item in items}
    stored = KnowledgeItem.objects.filter(
        post_id__in={post_id for post_id, _, _ in keys}, kind__in={kind for _, kind, _ in keys}
    ).values_list("id", "post_id", "kind", "text")
    BatchItem.objects.bulk_create(
        [
            BatchItem(batch_id=batch_id, item_id=pk)
            for pk, post_id, kind, text in stored
            if (post_id, kind, text) in keys
        ],
        ignore_conflicts=True,
    )


def _store_by_copy(batch_id: int, items: list[KnowledgeItem], now: Any) -> None:
    rows = [
        KnowledgeItemRow(
            post=item.post_id,
            batch=item.batch_id,
            kind=item.kind,
            position=item.position,
            text=item.text,
            stage_result=item.stage_result_id,
            description_result=item.description_result_id,
            provenance=json.dumps(item.provenance),
            created_at=now,
        )
        for item in items
    ]
    cols = column_list(KnowledgeItem, KNOWLEDGE_ITEM_FIELDS)
    with connection.cursor() as cursor:
        temp = copying.copy_into_temp(cursor, KnowledgeItem, KNOWLEDGE_ITEM_FIELDS, rows)
        execute(
            cursor,
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                table(KnowledgeItem), cols, cols, temp
            ),
        )
        # The join matches the unique index (post, kind, md5(text)).
        execute(
            cursor,
            sql.SQL(
                "INSERT INTO {} (batch_id, item_id) "
                "SELECT DISTINCT %s, i.id FROM {} t JOIN {} i "
                "ON i.post_id = t.post_id AND i.kind = t.kind AND md5(i.text) = md5(t.text) "
                "ON CONFLICT DO NOTHING"
            ).format(table(BatchItem), temp, table(KnowledgeItem)),
            [batch_id],
        )


def batch_link_own_items(*, batch_id: int) -> None:
    """Link a batch to the items it created itself (imports write items without links)."""
    with connection.cursor() as cursor:
        execute(
            cursor,
            sql.SQL(
                "INSERT INTO {} (batch_id, item_id) SELECT batch_id, id FROM {} WHERE batch_id = %s"
            ).format(table(BatchItem), table(KnowledgeItem)),
            [batch_id],
        )
