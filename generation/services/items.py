"""Storing knowledge items: each (post, kind, text) once, linked to every batch that produced it.

A batch that reuses cached answers (or produces a sentence another batch already produced) links
the existing item instead of making a copy, so a campaign over several batches rates each distinct
piece of knowledge once, and its ratings stay with it.
"""

import json
from typing import Any

from django.db import connection

from generation.models import BatchItem, KnowledgeItem

#: Stages whose answer is the image description (MIKO) or caption (CoTPD) shown beside items.
DESCRIPTION_STAGES = ("describe_image", "caption")

_ITEM_COPY_FIELDS = [
    "post",
    "batch",
    "kind",
    "position",
    "text",
    "stage_result",
    "description_result",
    "provenance",
    "created_at",
]


def columns(model: type, names: list[str]) -> str:
    """The database columns of these fields, comma-separated."""
    return ", ".join(model._meta.get_field(name).column for name in names)


def copy_into_temp(cursor: Any, model: type, names: list[str], rows: list[tuple]) -> str:
    """COPY rows into a session temp table shaped like the model's; emptied at commit."""
    table = f"_copy_{model._meta.db_table}"
    cols = columns(model, names)
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {table} ON COMMIT DELETE ROWS "
        f"AS SELECT {cols} FROM {model._meta.db_table} WITH NO DATA"
    )
    with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return table


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
        (
            item.post_id,
            item.batch_id,
            item.kind,
            item.position,
            item.text,
            item.stage_result_id,
            item.description_result_id,
            json.dumps(item.provenance),
            now,
        )
        for item in items
    ]
    item_table = KnowledgeItem._meta.db_table
    cols = columns(KnowledgeItem, _ITEM_COPY_FIELDS)
    with connection.cursor() as cursor:
        temp = copy_into_temp(cursor, KnowledgeItem, _ITEM_COPY_FIELDS, rows)
        cursor.execute(
            f"INSERT INTO {item_table} ({cols}) SELECT {cols} FROM {temp} ON CONFLICT DO NOTHING"
        )
        # The join matches the unique index (post, kind, md5(text)).
        cursor.execute(
            f"INSERT INTO {BatchItem._meta.db_table} (batch_id, item_id) "
            f"SELECT DISTINCT %s, i.id FROM {temp} t JOIN {item_table} i "
            "ON i.post_id = t.post_id AND i.kind = t.kind AND md5(i.text) = md5(t.text) "
            "ON CONFLICT DO NOTHING",
            [batch_id],
        )


def batch_link_own_items(*, batch_id: int) -> None:
    """Link a batch to the items it created itself (imports write items without links)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {BatchItem._meta.db_table} (batch_id, item_id) "
            f"SELECT batch_id, id FROM {KnowledgeItem._meta.db_table} WHERE batch_id = %s",
            [batch_id],
        )
