"""Reads of knowledge items: which batches' items, and what each item was built from.

An item names the stage results its run read (`provenance["stage_results"]`, and
`description_result` for the image description or caption), so what is shown and exported
beside it is what its own run used, never "the latest description of the post".
"""

from collections.abc import Iterable
from typing import Any

from django.db.models import Exists, OuterRef, QuerySet

from generation.models import BatchItem, KnowledgeItem, StageResult


def items_of_batches(*, batch_ids: Iterable[int]) -> QuerySet[KnowledgeItem]:
    """The distinct items the batches produced or reused (each (post, kind, text) once)."""
    return KnowledgeItem.objects.filter(
        Exists(BatchItem.objects.filter(item=OuterRef("pk"), batch_id__in=list(batch_ids)))
    )


def _source_ids(provenance: Any) -> dict[str, int]:
    sources = provenance.get("stage_results") if isinstance(provenance, dict) else None
    if not isinstance(sources, dict):
        return {}
    return {stage: pk for stage, pk in sources.items() if isinstance(pk, int)}


def item_sources(*, item_ids: list[int]) -> dict[int, dict[str, dict]]:
    """{item id: {stage: parsed output}} of the stage results each item was built from.

    The item's own stage is included; results that failed or were deleted are left out.
    """
    provenance = dict(KnowledgeItem.objects.filter(pk__in=item_ids).values_list("id", "provenance"))
    wanted = {item_id: _source_ids(p) for item_id, p in provenance.items()}
    result_ids = {pk for sources in wanted.values() for pk in sources.values()}
    parsed = {}
    ids = sorted(result_ids)
    for start in range(0, len(ids), 2000):
        parsed.update(
            StageResult.objects.filter(pk__in=ids[start : start + 2000])
            .exclude(parsed=None)
            .values_list("id", "parsed")
        )
    return {
        item_id: {stage: parsed[pk] for stage, pk in sources.items() if pk in parsed}
        for item_id, sources in wanted.items()
    }


def item_descriptions(*, item_ids: list[int]) -> dict[int, str]:
    """{item id: the image description or caption its own run read}; "" where it read none."""
    rows = KnowledgeItem.objects.filter(pk__in=item_ids).values_list(
        "id", "description_result__parsed"
    )
    return {item_id: description_text(parsed) for item_id, parsed in rows}


def description_text(parsed: Any) -> str:
    """The text of a description or caption stage's parsed output."""
    if not isinstance(parsed, dict):
        return ""
    value = parsed.get("description") or parsed.get("caption") or ""
    return value if isinstance(value, str) else ""
