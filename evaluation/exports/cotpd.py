"""The cotpd format: one record a post of the campaign with its gold labels, caption and accepted
knowledge, then one a kept augmentation of it with projected labels (see docs/exports.md)."""

from collections.abc import Iterator
from itertools import islice
from typing import IO

from annotation.models import Campaign
from annotation.selectors import campaign_items
from evaluation.augmentations import Labels, gold_labels, project_replacement, project_style
from evaluation.exports.export import CHUNK_SIZE, Export, ExportRow
from evaluation.exports.text import json_line
from generation.models import KnowledgeItem, Post
from generation.selectors.items import item_descriptions

# Augmentations that are new labelled samples (the others, such as an imagined image, are
# knowledge about the post and stay in its `knowledge`).
SAMPLE_AUGMENTATIONS = ("aug_entity", "aug_style")


def write_cotpd(export: Export, out: IO[str]) -> None:
    """One record a post of the campaign, then one a kept augmentation of it (see docs/exports.md).

    Every post that has items in the campaign is written, with its gold labels (tokens, BIO tags,
    entities, relations), its caption and the accepted text of each knowledge kind; a post none of
    whose items passed has empty knowledge (or is left out with `drop_empty`). Accepted
    `aug_entity` and `aug_style` items become records of their own with projected labels.
    """
    stats = {
        kind: {"kept": 0, "dropped_implausible": 0, "dropped_unaligned": 0}
        for kind in SAMPLE_AUGMENTATIONS
    }
    tag_types: set[str] = set()
    posts = records = 0
    groups = _post_groups(_campaign_post_ids(export.campaign), _rows_of(export))
    while chunk := list(islice(groups, CHUNK_SIZE)):
        post_ids = [post_id for post_id, _ in chunk]
        details = {
            row["id"]: row
            for row in Post.objects.filter(id__in=post_ids).values(
                "id", "external_id", "text", "image", "metadata"
            )
        }
        captions = _captions(export.campaign, [post_id for post_id, rows in chunk if not rows])
        judgements = _plausibility([r.item_id for _, rows in chunk for r in rows])
        for post_id, rows in chunk:
            if export.drop_empty and not rows:
                continue
            post = details[post_id]
            gold = gold_labels(post["text"], post["metadata"])
            caption = next((r.image_description for r in rows if r.image_description), "")
            base = {
                "image": post["image"] or "",
                "caption": caption or captions.get(post_id, ""),
            }
            knowledge: dict[str, str] = {}
            for r in rows:
                if r.kind not in SAMPLE_AUGMENTATIONS:
                    knowledge[r.kind] = (
                        f"{knowledge[r.kind]}\n{r.text}" if r.kind in knowledge else r.text
                    )
            lines = [
                _cotpd_record(post["external_id"], None, None, post["text"], gold, base, knowledge)
            ]
            numbers = dict.fromkeys(SAMPLE_AUGMENTATIONS, 0)
            for r in rows:
                if r.kind not in SAMPLE_AUGMENTATIONS:
                    continue
                if r.kind == "aug_entity" and judgements.get(r.item_id) is False:
                    stats[r.kind]["dropped_implausible"] += 1
                    continue
                labels = _augmented_labels(r.kind, gold, r.text)
                if labels is None:
                    stats[r.kind]["dropped_unaligned"] += 1
                    continue
                stats[r.kind]["kept"] += 1
                numbers[r.kind] += 1
                # A style rewrite keeps the meaning and entities, so the post's knowledge still
                # explains it; an entity replacement's explanations would name the old entities.
                lines.append(
                    _cotpd_record(
                        f"{post['external_id']}#{r.kind}-{numbers[r.kind]}",
                        post["external_id"],
                        r,
                        r.text,
                        labels,
                        base,
                        knowledge if r.kind == "aug_style" else {},
                    )
                )
            for line in lines:
                tag_types.update(tag[2:] for tag in line["ner_tags"] or () if tag != "O")
            out.writelines(json_line(line) for line in lines)
            posts += 1
            records += len(lines)
    export.post_records = posts
    labels = ["O"] + [f"{p}-{t}" for t in sorted(tag_types) for p in ("B", "I")]
    export.extra = {
        "records": records,
        "ner_labels": labels if tag_types else [],
        "augmentations": stats,
        "drop_empty": export.drop_empty,
    }


def _captions(campaign: Campaign, post_ids: list[int]) -> dict[int, str]:
    """For posts none of whose items passed: the caption one of their campaign items' runs read."""
    if not post_ids:
        return {}
    first: dict[int, int] = {}
    described = (
        campaign_items(campaign=campaign)
        .filter(post_id__in=post_ids)
        .exclude(description_result=None)
        .order_by("post_id", "id")
        .values_list("post_id", "id")
    )
    for post_id, item_id in described:
        first.setdefault(post_id, item_id)
    texts = item_descriptions(item_ids=list(first.values()))
    return {post_id: texts.get(item_id, "") for post_id, item_id in first.items()}


def _cotpd_record(
    record_id: str,
    source_id: str | None,
    row: "ExportRow | None",
    text: str,
    labels: Labels,
    base: dict,
    knowledge: dict,
) -> dict:
    return {
        "id": record_id,
        "source_id": source_id,
        "augmentation": row.kind if row else None,
        "item_id": row.item_id if row else None,
        "text": text,
        **labels.record(),
        **base,
        "knowledge": knowledge,
    }


def _augmented_labels(kind: str, gold: Labels, text: str) -> Labels | None:
    """The rewrite's labels; a post without gold labels gives its rewrites none to lose."""
    if not gold.has_gold:
        return Labels(tokens=text.split(), tags=None)
    return project_replacement(gold, text) if kind == "aug_entity" else project_style(gold, text)


def _plausibility(item_ids: list[int]) -> dict[int, bool]:
    """The plausibility judgement of each entity-replacement item (from its stage's answer)."""
    found: dict[int, bool] = {}
    rows = KnowledgeItem.objects.filter(id__in=item_ids, kind="aug_entity").values_list(
        "id", "provenance", "stage_result__parsed"
    )
    for item_id, provenance, parsed in rows:
        for source in (provenance, parsed):
            if isinstance(source, dict) and isinstance(source.get("plausible"), bool):
                found[item_id] = source["plausible"]
                break
    return found


def _rows_of(export: Export) -> Iterator[ExportRow]:
    for rows in export.chunks():
        yield from rows


def _campaign_post_ids(campaign: Campaign) -> Iterator[int]:
    """The ids of the posts that have items in the campaign, ascending, a page at a time."""
    after = 0
    while True:
        page = list(
            campaign_items(campaign=campaign)
            .filter(post_id__gt=after)
            .order_by("post_id")
            .values_list("post_id", flat=True)
            .distinct()[:CHUNK_SIZE]
        )
        yield from page
        if len(page) < CHUNK_SIZE:
            return
        after = page[-1]


def _post_groups(
    post_ids: Iterator[int], rows: Iterator[ExportRow]
) -> Iterator[tuple[int, list[ExportRow]]]:
    """(post id, its passing rows) for every post of either stream, both ascending by post."""
    row = next(rows, None)
    post_id = next(post_ids, None)
    while post_id is not None or row is not None:
        current = min(x for x in (post_id, row.post_pk if row else None) if x is not None)
        group = []
        while row is not None and row.post_pk == current:
            group.append(row)
            row = next(rows, None)
        if post_id == current:
            post_id = next(post_ids, None)
        yield current, group
