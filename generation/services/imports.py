"""Importing posts: the one place posts, their imported items and stage results are written.

`posts_import` streams a file through its format's importer (`generation.importers`): a reader
thread parses the next chunk of records while this one is written, inside one transaction, so a
malformed line, a bad image or a conflict with posts already in the dataset rolls everything back.
On PostgreSQL rows go in with COPY (`generation.copying`: ids drawn from the sequences first, so
items can point at their posts); elsewhere with `bulk_create`. Images are checked by
`generation.importers.images` and copied into storage here. Uploads run as background jobs:
`generation.services.import_jobs`.
"""

import json
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from generation.copying import (
    KNOWLEDGE_ITEM_FIELDS,
    STAGE_RESULT_FIELDS,
    KnowledgeItemRow,
    StageResultRow,
    copy_lines,
    copy_text,
    foreign_key_checks_skipped,
    insert_rows,
)
from generation.importers import format_detect, importer_for
from generation.importers.base import ImportFileError, PostRecord, Source, records_checked
from generation.importers.images import ImagesFolder, image_suffix
from generation.importers.matching import PostsByText, match_by_checked, records_match_by_text
from generation.models import IMPORTED_KEY, Batch, Dataset, KnowledgeItem, Post, StageResult
from generation.services.items import DESCRIPTION_STAGES, batch_link_own_items

CHUNK_POSTS = 2000
MAX_WARNINGS_KEPT = 100
MAX_CONFLICTS_NAMED = 20
IMPORTED_HASH = "imported"

Progress = Callable[[int, int], None]


@dataclass
class ImportReport:
    dataset_id: int
    dataset_name: str
    format: str
    posts_created: int = 0
    posts_skipped: int = 0
    items_created: int = 0
    stage_results_created: int = 0
    images_imported: int = 0
    images_missing: int = 0  # named by the file, not in the images folder
    images_unresolved: int = 0  # named by the file, with no images folder given
    batch_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    warnings_total: int = 0

    def warn(self, message: str) -> None:
        self.warnings_total += 1
        if len(self.warnings) < MAX_WARNINGS_KEPT:
            self.warnings.append(message)

    def summary(self) -> str:
        text = (
            f"{self.posts_created} posts, {self.items_created} items, "
            f"{self.stage_results_created} stage results and {self.images_imported} images "
            f"imported into dataset '{self.dataset_name}' ({self.format}); "
            f"{self.posts_skipped} posts already there"
        )
        if self.images_missing:
            text += f"; {self.images_missing} images not found"
        if self.warnings_total:
            text += f"; {self.warnings_total} warnings"
        return text


class _StoredImages:
    """The images an import copied into storage, deleted again if the import fails."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save(self, dataset_id: int, path: Path) -> str:
        with path.open("rb") as handle:
            name = default_storage.save(
                f"posts/{dataset_id}/{path.stem}{image_suffix(path)}", File(handle)
            )
        self.saved.append(name)
        return name

    def discard(self) -> None:
        for name in self.saved:
            default_storage.delete(name)


class PostRow(NamedTuple):
    dataset: int
    external_id: str
    text: str
    image: str
    metadata: str
    created_at: Any


def _chunks(records: Iterator[PostRecord], size: int) -> Iterator[list[PostRecord]]:
    while chunk := list(islice(records, size)):
        yield chunk


_END = object()


def _prefetched(iterator: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """The items of `iterator`, produced by a thread up to `depth` ahead of the consumer.

    Parsing the next chunk then overlaps with the database taking in this one. The producer never
    touches the database; its errors are raised here, in the consumer.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for value in iterator:
                if not offer(("value", value)):
                    return
            offer(("end", _END))
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(("error", exc))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
        thread.join()


def dataset_name_checked(name: str) -> str:
    """The dataset name without surrounding blanks; 1 to 200 characters."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ImportFileError("a dataset name of 1 to 200 characters is required")
    return name


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(64 * 1024)


def posts_import(
    *,
    path: Path,
    dataset_name: str,
    format: str = "auto",
    images_dir: Path | None = None,
    created_by=None,
    progress: Progress | None = None,
    source_name: str | None = None,
    match_by: str = "id",
    on_posts: Callable[[Dataset, list[str]], None] | None = None,
) -> ImportReport:
    """Import a file of posts into a dataset (created when new), all or nothing.

    Raises ImportFileError (`file:line: what`) for anything malformed, and for posts that exist
    in the dataset with the same id but other text or metadata (naming the ids). Posts already
    there unchanged are skipped, so importing a file twice adds nothing. With `match_by="text"`
    a record whose text is a post's already in the dataset is that post (see
    `generation.importers.matching`). `on_posts(dataset, external ids)` is called inside the
    transaction after each chunk is written, with the ids of the chunk's posts, new or already
    there (the split a source file gives its posts is recorded this way).
    """
    path = Path(path)
    name = source_name or str(path)
    dataset_name = dataset_name_checked(dataset_name)
    if images_dir is not None and not Path(images_dir).is_dir():
        raise ImportFileError(f"--images {images_dir}: not a folder")
    if format == "auto":
        format = format_detect(_head(path), name=name)
    importer = importer_for(format)
    total = path.stat().st_size
    stored = _StoredImages()
    try:
        with transaction.atomic(), path.open("rb") as stream:
            dataset, created = Dataset.objects.get_or_create(
                name=dataset_name, defaults={"created_by": created_by}
            )
            # Held until commit: the dataset cannot be deleted under the import, and two imports
            # into one dataset run one after the other (so the duplicate check stays true).
            dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
            report = ImportReport(dataset_id=dataset.pk, dataset_name=dataset.name, format=format)
            images = ImagesFolder(Path(images_dir) if images_dir else None, warn=report.warn)
            source = Source(stream, name=name, max_line_bytes=settings.DISTILLERY_MAX_LINE_BYTES)
            writer = _ChunkWriter(
                dataset=dataset,
                new_dataset=created,
                format=format,
                pipeline=importer.PIPELINE,
                source=source,
                images=images,
                stored=stored,
                report=report,
                created_by=created_by,
                match_by=match_by_checked(match_by),
                on_posts=on_posts,
            )
            chunks = _chunks(records_checked(source, importer.read(source)), CHUNK_POSTS)
            # closing(): on an error the reader thread is stopped before the file is closed.
            # Every row written points at the locked dataset, the import's own batch or rows
            # written just before: the per-row foreign key checks cannot fail. That holds for
            # the batch's links to its items that `finish` writes too (1.4 million rows at MIKO's
            # scale, whose checks at commit took longer than the rest of the database's work).
            with foreign_key_checks_skipped():
                with closing(_prefetched(chunks)) as prefetched:
                    for chunk in prefetched:
                        writer.write(chunk)
                        if progress:
                            progress(source.bytes_read, total)
                writer.finish()
            if progress:
                progress(total, total)
    except BaseException:
        stored.discard()
        raise
    report.images_imported = len(stored.saved)
    report.images_missing, report.images_unresolved = images.missing, images.unresolved
    return report


class _ChunkWriter:
    def __init__(
        self,
        *,
        dataset: Dataset,
        new_dataset: bool,
        format: str,
        pipeline: str,
        source: Source,
        images: ImagesFolder,
        stored: _StoredImages,
        report: ImportReport,
        created_by,
        match_by: str = "id",
        on_posts: Callable[[Dataset, list[str]], None] | None = None,
    ) -> None:
        self.dataset = dataset
        self.on_posts = on_posts
        self.new_dataset = new_dataset
        self.format = format
        self.pipeline = pipeline
        self.source = source
        self.images = images
        self.stored = stored
        self.report = report
        self.created_by = created_by
        self.batch: Batch | None = None
        self.posts_with_items = 0
        self.posts_failed = 0  # posts whose imported stage outputs could not be read
        self.conflicts: list[str] = []
        self.conflicts_total = 0
        self.now = timezone.now()
        self.posts_by_text = (
            PostsByText(dataset) if match_by == "text" and not new_dataset else None
        )

    def _existing(self, chunk: list[PostRecord]) -> dict[str, tuple[str, Any]]:
        if self.new_dataset:
            return {}
        rows = Post.objects.filter(
            dataset=self.dataset, external_id__in=[record.external_id for record in chunk]
        ).values_list("external_id", "text", "metadata")
        return {external_id: (text, metadata) for external_id, text, metadata in rows}

    def _batch(self) -> Batch:
        if self.batch is None:
            self.batch = Batch.objects.create(
                dataset=self.dataset,
                pipeline=self.pipeline,
                imported=True,
                source=self.source.name[-500:],
                parameters={"format": self.format},
                status=Batch.Status.RUNNING,
                launched_by=self.created_by,
                started_at=self.now,
            )
            self.report.batch_id = self.batch.pk
        return self.batch

    def write(self, chunk: list[PostRecord]) -> None:
        if self.posts_by_text is not None:
            for warning in records_match_by_text(
                posts=self.posts_by_text, records=chunk, source=self.source
            ):
                self.report.warn(warning)
        existing = self._existing(chunk)
        fresh: list[PostRecord] = []
        for record in chunk:
            if record.external_id in existing:
                if existing[record.external_id] != (record.text, record.metadata):
                    self.conflicts_total += 1
                    if len(self.conflicts) < MAX_CONFLICTS_NAMED:
                        self.conflicts.append(record.external_id)
                else:
                    self.report.posts_skipped += 1
                continue
            fresh.append(record)
        if self.conflicts_total:
            # After a conflict nothing will be kept: read on only to name every conflict.
            return
        if not fresh:
            self._posts_written(chunk)
            return
        post_rows = []
        for record in fresh:
            metadata = json.dumps(record.metadata, ensure_ascii=False)
            if "\\u0000" in metadata:
                raise self.source.error(record.line, "metadata contains a NUL character")
            image_path = self.images.check(self.source, record)
            image = self.stored.save(self.dataset.pk, image_path) if image_path else ""
            post_rows.append(
                PostRow(self.dataset.pk, record.external_id, record.text, image, metadata, self.now)
            )
            for warning in record.warnings:
                self.report.warn(warning)
        post_ids = insert_rows(Post, list(PostRow._fields), post_rows)
        self.report.posts_created += len(post_ids)
        self._write_knowledge(fresh, post_ids)
        self._posts_written(chunk)

    def _posts_written(self, chunk: list[PostRecord]) -> None:
        if self.on_posts is not None:
            self.on_posts(self.dataset, [record.external_id for record in chunk])

    def _write_knowledge(self, fresh: list[PostRecord], post_ids: list[int]) -> None:
        if not any(record.items or record.stages for record in fresh):
            return
        batch_id = self._batch().pk
        stage_rows, stage_owner = [], []
        for index, (record, post_id) in enumerate(zip(fresh, post_ids, strict=True)):
            for stage in record.stages:
                stage_rows.append(
                    StageResultRow(
                        post=post_id,
                        stage=stage.stage,
                        template_hash=IMPORTED_HASH,
                        model=stage.model,
                        params_hash=IMPORTED_HASH,
                        endpoint_key=IMPORTED_KEY,
                        parameters="{}",
                        batch=batch_id,
                        endpoint=None,
                        status=StageResult.Status.FAILED if stage.error else StageResult.Status.OK,
                        request=json.dumps(stage.request, ensure_ascii=False),
                        raw_answer=stage.raw_answer,
                        parsed=None if stage.parsed is None else json.dumps(stage.parsed),
                        error=stage.error,
                        prompt_tokens=0,
                        completion_tokens=0,
                        latency_ms=0,
                        attempts=1,
                        created_at=self.now,
                        updated_at=self.now,
                    )
                )
                stage_owner.append((index, stage.stage))
        stage_ids = dict(
            zip(stage_owner, insert_rows(StageResult, STAGE_RESULT_FIELDS, stage_rows), strict=True)
        )
        self.report.stage_results_created += len(stage_ids)
        self.posts_failed += sum(any(stage.error for stage in r.stages) for r in fresh)
        # On PostgreSQL item rows are formatted for COPY right here, in KnowledgeItemRow's order:
        # there are millions of them.
        copy = connection.vendor == "postgresql"
        now_text, batch_text = self.now.isoformat(), str(batch_id)
        item_rows: list = []
        for index, (record, post_id) in enumerate(zip(fresh, post_ids, strict=True)):
            if not record.items:
                continue
            self.posts_with_items += 1
            stage_id = stage_ids.get((index, "intentions"))
            # The file and format are on the batch (source, parameters); each item keeps its line
            # and, when the file carried the stages' outputs, the results it was built from.
            sources = {stage.stage: stage_ids[(index, stage.stage)] for stage in record.stages}
            description_id = next(
                (sources[name] for name in DESCRIPTION_STAGES if name in sources), None
            )
            origin: dict[str, Any] = {"line": record.line}
            if sources:
                origin["stage_results"] = sources
            provenance = json.dumps(origin)
            head = f"{post_id}\t{batch_text}\t"
            tail = (
                f"\t{copy_text(stage_id)}\t{copy_text(description_id)}\t"
                f"{copy_text(provenance)}\t{now_text}"
            )
            # One (post, kind, text) is one item: a record that repeats one keeps the first.
            seen: set[tuple[str, str]] = set()
            for item in record.items:
                if (item.kind, item.text) in seen:
                    continue
                seen.add((item.kind, item.text))
                item_provenance = provenance
                if item.provenance:
                    item_provenance = json.dumps({**origin, **item.provenance}, ensure_ascii=False)
                if not copy:
                    item_rows.append(
                        KnowledgeItemRow(
                            post_id,
                            batch_id,
                            item.kind,
                            item.position,
                            item.text,
                            stage_id,
                            description_id,
                            item_provenance,
                            self.now,
                        )
                    )
                elif item_provenance is provenance:
                    item_rows.append(
                        f"{head}{copy_text(item.kind)}\t{item.position}\t"
                        f"{copy_text(item.text)}{tail}"
                    )
                else:
                    item_rows.append(
                        f"{head}{copy_text(item.kind)}\t{item.position}\t"
                        f"{copy_text(item.text)}\t{copy_text(stage_id)}\t"
                        f"{copy_text(description_id)}\t"
                        f"{copy_text(item_provenance)}\t{now_text}"
                    )
        if copy:
            # Nothing refers to the items: the database numbers them.
            copy_lines(KnowledgeItem, KNOWLEDGE_ITEM_FIELDS, item_rows, need_ids=False)
        else:
            insert_rows(KnowledgeItem, KNOWLEDGE_ITEM_FIELDS, item_rows)
        self.report.items_created += len(item_rows)

    def finish(self) -> None:
        if self.conflicts_total:
            named = ", ".join(self.conflicts)
            more = self.conflicts_total - len(self.conflicts)
            raise ImportFileError(
                f"{self.source.name}: {self.conflicts_total} posts conflict with posts already in "
                f"dataset '{self.dataset.name}' (same id, other text or metadata): {named}"
                + (f" and {more} more" if more > 0 else "")
            )
        if self.images.unresolved:
            self.report.warn(
                f"{self.source.name}: {self.images.unresolved} posts name an image but no "
                "images folder was given; imported without images"
            )
        if self.batch is not None:
            batch_link_own_items(batch_id=self.batch.pk)
            Batch.objects.filter(pk=self.batch.pk).update(
                status=Batch.Status.DONE,
                posts_total=self.posts_with_items + self.posts_failed,
                posts_done=self.posts_with_items,
                posts_failed=self.posts_failed,
                finished_at=timezone.now(),
            )
