"""Export writers: stream filtered items, chunk by chunk, into the formats training code reads.

Rows come from `selectors.item_scores` through a server-side cursor (`.iterator(chunk_size=...)`);
each chunk is completed with its items' text, posts and image descriptions in two small queries,
written, and dropped, so memory stays flat whatever the campaign's size.
"""

import csv
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO

from django.db.models import Max, Min, Q

from annotation.models import Campaign, Question, Rating
from annotation.selectors import campaign_items
from evaluation.augmentations import Labels, gold_labels, project_replacement, project_style
from evaluation.relations import SYSTEM_PROMPT, relation_instruction
from evaluation.selectors import (
    ItemFilters,
    item_details,
    item_scores,
    score_summaries,
)
from generation.models import KnowledgeItem, Post, StageResult
from generation.pipelines.base import all_pipelines
from generation.selectors.items import item_descriptions

CHUNK_SIZE = 2000
FORMATS = (
    "jsonl",
    "csv",
    "ratings",
    "parquet",
    "sft-chat",
    "alpaca",
    "cotpd",
    "label-studio",
    "hf",
)
EXTENSIONS = {
    "jsonl": ".jsonl",
    "csv": ".csv",
    "ratings": ".csv",
    "parquet": ".parquet",
    "sft-chat": ".jsonl",
    "alpaca": ".jsonl",
    "cotpd": ".jsonl",
    "label-studio": ".json",
    "hf": "",
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Progress = Callable[[int, int], None]  # (percent, items written)


@dataclass
class ExportRow:
    item_id: int
    post_pk: int
    post_id: str
    post_text: str
    image: str
    image_description: str
    kind: str
    position: int
    text: str
    scores: dict[str, dict]

    def flat(self, questions: list[Question]) -> dict:
        row = {
            "item_id": self.item_id,
            "post_id": self.post_id,
            "kind": self.kind,
            "position": self.position,
            "text": self.text,
            "post_text": self.post_text,
            "image": self.image,
            "image_description": self.image_description,
        }
        for question in questions:
            score = self.scores[question.name]
            for key in ("n", "mean", "median", "spread"):
                row[f"{question.name}_{key}"] = score[key]
        return row

    def prompt(self) -> str:
        """The post as a model reads it: its text, then what its image shows."""
        parts = [f"Post: {self.post_text}"]
        if self.image_description:
            parts.append(f"Image description: {self.image_description}")
        return "\n".join(parts)


class Export:
    """One export run: the campaign, its questions, the filters and the rows they select."""

    def __init__(
        self,
        *,
        campaign: Campaign,
        filters: ItemFilters,
        progress: Progress | None,
        by_post: bool = False,
        drop_empty: bool = False,
    ):
        self.campaign = campaign
        self.by_post = by_post
        self.filters = filters
        # Gold items and low-accuracy annotators the filters leave out (of scores and ratings).
        self.exclusions = filters.exclusions(campaign=campaign)
        # cotpd: leave out the posts none of whose items passed (kept, with empty knowledge, else).
        self.drop_empty = drop_empty
        self.questions = list(campaign.questions.order_by("position", "id"))
        self.progress = progress
        self.items = 0
        self._posts_seen: set[int] = set()
        # Posts written, where a format writes other posts than those of its items (cotpd).
        self.post_records: int | None = None
        # The ratings behind the exported items: those their scores were computed from.
        self.ratings = 0
        # Format-specific figures for the manifest (cotpd: records, labels, augmentations).
        self.extra: dict = {}
        # (stage, pipeline, model, template hash, parameters as JSON, endpoint id) of the stage
        # results the exported items were built from.
        self.stage_keys: set[tuple] = set()
        # Progress is the share of the id range passed; the range comes from the campaign's items
        # (through the batch index), not from a scan of the ratings.
        field = "post_id" if by_post else "id"
        bounds = campaign_items(campaign=campaign).aggregate(lo=Min(field), hi=Max(field))
        self._lo, self._hi = bounds["lo"] or 0, bounds["hi"] or 0

    def chunks(self) -> Iterator[list[ExportRow]]:
        scores = item_scores(
            campaign=self.campaign,
            filters=self.filters,
            by_post=self.by_post,
            chunk_size=CHUNK_SIZE,
            exclusions=self.exclusions,
        )
        chunk: list[dict] = []
        for row in scores:
            chunk.append(row)
            if len(chunk) >= CHUNK_SIZE:
                yield self._complete(chunk)
                self._report(chunk[-1])
                chunk = []
        if chunk:
            yield self._complete(chunk)
        if self.progress:
            self.progress(100, self.items)

    def _report(self, row: dict) -> None:
        """Progress as the share of the id range passed (of posts when ordered by post)."""
        if self.progress and self._hi > self._lo:
            at = row["post_id"] if self.by_post else row["item_id"]
            share = (at - self._lo) / (self._hi - self._lo)
            self.progress(min(99, max(0, int(100 * share))), self.items)

    def _complete(self, chunk: list[dict]) -> list[ExportRow]:
        items = item_details(item_ids=[row["item_id"] for row in chunk])
        # The description or caption each item's own run read, not the post's latest.
        descriptions = item_descriptions(item_ids=[row["item_id"] for row in chunk])
        rows = []
        for score_row, scores in zip(chunk, score_summaries(chunk, self.questions), strict=True):
            item = items[score_row["item_id"]]
            rows.append(
                ExportRow(
                    item_id=item["id"],
                    post_pk=item["post_id"],
                    post_id=item["external_id"],
                    post_text=item["post_text"],
                    image=item["image"] or "",
                    image_description=descriptions.get(item["id"], ""),
                    kind=item["kind"],
                    position=item["position"],
                    text=item["text"],
                    scores=scores,
                )
            )
            self._posts_seen.add(item["post_id"])
            self.ratings += sum(score["n"] for score in scores.values())
        self.items += len(rows)
        self._note_sources([row.item_id for row in rows])
        return rows

    def _note_sources(self, item_ids: list[int]) -> None:
        """Remember how the stage results behind these items were produced (for the manifest).

        An item names its stage results in `provenance["stage_results"]`; an item from before
        provenance is read with its own stage result and what its batch's upstream stages (those
        another stage needs: descriptions, key information, captions) answered for its post.
        """
        result_ids: set[int] = set()
        posts: set[int] = set()
        batches: set[int] = set()
        items = KnowledgeItem.objects.filter(id__in=item_ids).values_list(
            "post_id", "batch_id", "stage_result_id", "description_result_id", "provenance"
        )
        for post_id, batch_id, result_id, description_id, provenance in items:
            result_ids.update(pk for pk in (result_id, description_id) if pk)
            sources = provenance.get("stage_results") if isinstance(provenance, dict) else None
            if isinstance(sources, dict) and sources:
                result_ids.update(pk for pk in sources.values() if isinstance(pk, int))
            else:
                posts.add(post_id)
                batches.add(batch_id)
        query = Q(id__in=result_ids)
        if posts:
            query |= Q(
                post_id__in=posts,
                batch_id__in=batches,
                stage__in=upstream_stages(),
                status=StageResult.Status.OK,
            )
        found = (
            StageResult.objects.filter(query)
            .order_by()
            .values_list("stage", "batch__pipeline", "model", "template_hash", "parameters",
                         "endpoint_id")
            .distinct()
        )  # fmt: skip
        for stage, pipeline, model, template_hash, parameters, endpoint_id in found:
            self.stage_keys.add(
                (stage, pipeline or "", model, template_hash,
                 json.dumps(parameters or {}, sort_keys=True), endpoint_id)
            )  # fmt: skip

    @property
    def posts(self) -> int:
        if self.post_records is not None:
            return self.post_records
        return len(self._posts_seen)

    def raw_ratings(self, rows: list[ExportRow]) -> list[tuple]:
        ratings = (
            Rating.objects.filter(campaign=self.campaign, item_id__in=[r.item_id for r in rows])
            .exclude(annotator_id__in=self.exclusions.annotator_ids)
            .order_by("item_id", "annotator__username", "question__position", "question_id")
            .values_list("item_id", "annotator__username", "question__name", "value", "seconds")
        )
        return list(ratings)


def upstream_stages() -> list[str]:
    """Stages whose output another stage reads, in every pipeline."""
    return sorted(
        {need for p in all_pipelines().values() for stage in p.stages for need in stage.needs}
    )


def neutralise(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_jsonl(export: Export, out: IO[str]) -> None:
    for rows in export.chunks():
        out.writelines(
            _json_line(
                {
                    "item_id": r.item_id,
                    "post_id": r.post_id,
                    "kind": r.kind,
                    "position": r.position,
                    "text": r.text,
                    "post_text": r.post_text,
                    "image": r.image,
                    "image_description": r.image_description,
                    "scores": r.scores,
                }
            )
            for r in rows
        )


def write_csv(export: Export, out: IO[str]) -> None:
    writer = None
    for rows in export.chunks():
        for r in rows:
            flat = r.flat(export.questions)
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(flat))
                writer.writeheader()
            writer.writerow({key: neutralise(value) for key, value in flat.items()})
    if writer is None:
        header = ExportRow(0, 0, "", "", "", "", "", 0, "", _empty_scores(export)).flat(
            export.questions
        )
        csv.writer(out).writerow(list(header))


def _empty_scores(export: Export) -> dict:
    return {
        q.name: {"n": 0, "mean": None, "median": None, "spread": None} for q in export.questions
    }


def write_ratings(export: Export, out: IO[str]) -> None:
    """Every raw rating of the selected items; the first five columns are the import format."""
    writer = csv.writer(out)
    writer.writerow(["post_id", "kind", "annotator", "question", "value", "item_id", "seconds"])
    for rows in export.chunks():
        by_id = {r.item_id: r for r in rows}
        for item_id, annotator, question, value, seconds in export.raw_ratings(rows):
            item = by_id[item_id]
            writer.writerow(
                [
                    neutralise(item.post_id),
                    neutralise(item.kind),
                    neutralise(annotator),
                    question,
                    value,
                    item_id,
                    seconds,
                ]
            )


def write_sft_chat(export: Export, out: IO[str]) -> None:
    for rows in export.chunks():
        out.writelines(
            _json_line(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {
                            "role": "user",
                            "content": f"{r.prompt()}\n\n{relation_instruction(r.kind)}",
                        },
                        {"role": "assistant", "content": r.text},
                    ]
                }
            )
            for r in rows
        )


def write_alpaca(export: Export, out: IO[str]) -> None:
    for rows in export.chunks():
        out.writelines(
            _json_line(
                {"instruction": relation_instruction(r.kind), "input": r.prompt(), "output": r.text}
            )
            for r in rows
        )


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
            out.writelines(_json_line(line) for line in lines)
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


def write_label_studio(export: Export, out: IO[str]) -> None:
    """A JSON list of Label Studio tasks, one an item, each annotator's ratings as an annotation."""
    out.write("[")
    first = True
    for rows in export.chunks():
        by_item: dict[int, dict[str, list]] = {}
        for item_id, annotator, question, value, _ in export.raw_ratings(rows):
            by_item.setdefault(item_id, {}).setdefault(annotator, []).append(
                {
                    "from_name": question,
                    "to_name": "item",
                    "type": "rating",
                    "value": {"rating": value},
                }
            )
        for r in rows:
            task = {
                "id": r.item_id,
                "data": {
                    "post_id": r.post_id,
                    "text": r.post_text,
                    "image": r.image,
                    "image_description": r.image_description,
                    "kind": r.kind,
                    "item": r.text,
                },
                "annotations": [
                    {"completed_by": annotator, "result": result}
                    for annotator, result in by_item.get(r.item_id, {}).items()
                ],
            }
            out.write(("\n" if first else ",\n") + json.dumps(task, ensure_ascii=False))
            first = False
    out.write("\n]\n")


def write_parquet(export: Export, path: Path) -> None:
    """Parquet, one row group a chunk, with a fixed schema so an empty export is still readable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [
        ("item_id", pa.int64()),
        ("post_id", pa.string()),
        ("kind", pa.string()),
        ("position", pa.int32()),
        ("text", pa.string()),
        ("post_text", pa.string()),
        ("image", pa.string()),
        ("image_description", pa.string()),
    ]
    for question in export.questions:
        fields += [
            (f"{question.name}_n", pa.int32()),
            (f"{question.name}_mean", pa.float64()),
            (f"{question.name}_median", pa.float64()),
            (f"{question.name}_spread", pa.int32()),
        ]
    schema = pa.schema(fields)
    with pq.ParquetWriter(path, schema) as writer:
        for rows in export.chunks():
            flat = [r.flat(export.questions) for r in rows]
            writer.write_table(pa.Table.from_pylist(flat, schema=schema))
        if not export.items:
            writer.write_table(schema.empty_table())


TEXT_WRITERS = {
    "jsonl": write_jsonl,
    "csv": write_csv,
    "ratings": write_ratings,
    "sft-chat": write_sft_chat,
    "alpaca": write_alpaca,
    "cotpd": write_cotpd,
    "label-studio": write_label_studio,
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary sibling of `target`, renamed onto it only when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield partial
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(partial, target)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()


def write_format(export: Export, fmt: str, path: Path) -> None:
    """Write `fmt` to `path` (a folder for `hf`); callers wrap this in `atomic_path`."""
    if fmt in TEXT_WRITERS:
        with open(path, "w", encoding="utf-8", newline="") as out:
            TEXT_WRITERS[fmt](export, out)
    elif fmt == "parquet":
        write_parquet(export, path)
    elif fmt == "hf":
        write_hf(export, path)
    else:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def write_hf(export: Export, folder: Path) -> None:
    """A `datasets` folder (`load_from_disk`), built from a streamed Parquet file."""
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
        parquet = Path(scratch) / "items.parquet"
        write_parquet(export, parquet)
        dataset = datasets.Dataset.from_parquet(
            str(parquet), cache_dir=str(Path(scratch) / "cache"), keep_in_memory=False
        )
        dataset.save_to_disk(str(folder))
        del dataset


def dataset_card(manifest: dict) -> str:
    """The README of an `hf` export: what it holds and the manifest's figures."""
    counts = manifest["counts"]
    lines = [
        "---",
        "language:",
        "- en",
        "pretty_name: " + json.dumps(f"{manifest['campaign']} (Distillery export)"),
        "---",
        "",
        f"# {manifest['campaign']}",
        "",
        "Knowledge items generated by language models and rated by people in Distillery, "
        "filtered on their ratings. One row an item, with its post, the image description, "
        "and per question the number of ratings, mean, median and spread.",
        "",
        "## Figures",
        "",
        f"- items: {counts['items']}",
        f"- posts: {counts['posts']}",
        f"- exported at: {manifest['created_at']}",
        f"- filters: `{json.dumps(manifest['filters'])}`",
        f"- pipelines: {', '.join(manifest['pipelines']) or 'none recorded'}",
        f"- models: {', '.join(manifest['models']) or 'none recorded'}",
        "",
        "## Agreement (Krippendorff's alpha, bootstrap 95% interval)",
        "",
        "| question | level | alpha | 95% interval | items | ratings |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in (manifest.get("alpha") or {}).items():
        alpha = "n/a" if figures["alpha"] is None else f"{figures['alpha']:.3f}"
        ci = figures.get("ci95")
        interval = f"{ci[0]:.3f} – {ci[1]:.3f}" if ci else "n/a"
        lines.append(
            f"| {name} | {figures['level']} | {alpha} | {interval} | {figures['n_items']} "
            f"| {figures['n_ratings']} |"
        )
    lines += ["", "## Prompt template hashes", ""]
    for stage, hashes in manifest["prompt_hashes"].items():
        lines.append(f"- {stage}: {', '.join(hashes)}")
    lines.append("")
    return "\n".join(lines)
