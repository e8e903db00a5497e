"""Importing posts: the one place posts, their imported items and stage results are written.

`posts_import` streams a file through its format's importer and writes posts in chunks, inside
one transaction: a malformed line, a bad image or a conflict with posts already in the dataset
rolls everything back. On PostgreSQL rows go in with COPY (ids drawn from the sequences first, so
items can point at their posts); elsewhere with `bulk_create`.
"""

import json
import logging
import queue
import shutil
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from generation.importers import FORMATS, format_detect, importer_for
from generation.importers.base import ImportFileError, PostRecord, Source
from generation.importers.matching import PostsByText, match_by_checked, records_match_by_text
from generation.models import (
    IMPORTED_KEY,
    Batch,
    Dataset,
    ImportJob,
    KnowledgeItem,
    Post,
    StageResult,
)
from generation.services.items import DESCRIPTION_STAGES, batch_link_own_items

logger = logging.getLogger(__name__)

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
        if self.warnings_total:
            text += f"; {self.warnings_total} warnings"
        return text


IMAGE_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif"}


class _Images:
    """Checks the images a file names and copies them into storage; forgets them on failure."""

    def __init__(self, images_dir: Path | None, report: ImportReport) -> None:
        self.root = images_dir.resolve() if images_dir else None
        self.report = report
        self.saved: list[str] = []
        self.unresolved = 0

    def check(self, source: Source, record: PostRecord) -> Path | None:
        if not record.image:
            return None
        if self.root is None:
            self.unresolved += 1
            return None
        name = record.image.replace("\\", "/")
        path = (self.root / name).resolve()
        if PurePosixPath(name).is_absolute() or not path.is_relative_to(self.root):
            raise source.error(
                record.line, f"image path {record.image!r} escapes the images folder"
            )
        if not path.is_file():
            self.report.warn(
                f"{source.where(record.line)}: image {record.image!r} not found; "
                "post imported without it"
            )
            return None
        size = path.stat().st_size
        if size > settings.DISTILLERY_MAX_IMAGE_BYTES:
            raise source.error(
                record.line,
                f"image {record.image!r} is {size} bytes, above the cap of "
                f"{settings.DISTILLERY_MAX_IMAGE_BYTES}",
            )
        try:
            with Image.open(path) as image:
                width, height = image.size
                if width * height > settings.DISTILLERY_MAX_IMAGE_PIXELS:
                    raise source.error(
                        record.line,
                        f"image {record.image!r} has {width}x{height} pixels, above the cap of "
                        f"{settings.DISTILLERY_MAX_IMAGE_PIXELS}",
                    )
                image.verify()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError):
            raise source.error(record.line, f"{record.image!r} is not a readable image") from None
        return path

    def save(self, dataset_id: int, path: Path) -> str:
        # Named after the format Pillow read, never the uploaded name's extension: a PNG called
        # `x.html` must not be served as a page of this site.
        with Image.open(path) as image:
            suffix = IMAGE_SUFFIXES.get(image.format or "", f".{(image.format or 'img').lower()}")
        with path.open("rb") as handle:
            name = default_storage.save(f"posts/{dataset_id}/{path.stem}{suffix}", File(handle))
        self.saved.append(name)
        self.report.images_imported += 1
        return name

    def discard(self) -> None:
        for name in self.saved:
            default_storage.delete(name)


def _insert(model: type[models.Model], columns: list[str], rows: list[tuple]) -> list[int]:
    """Insert rows (values in `columns` order, JSON already dumped) and return their ids."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        return _insert_copy(model, columns, rows)
    json_columns = {
        f.attname for f in model._meta.concrete_fields if isinstance(f, models.JSONField)
    }
    objs = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        for column in json_columns & values.keys():
            if values[column] is not None:
                values[column] = json.loads(values[column])
        objs.append(model(**values))
    model.objects.bulk_create(objs, batch_size=500)
    return [obj.pk for obj in objs]


def _copy_text(value: Any) -> str:
    """A value in COPY's text format (JSON columns arrive already dumped, as text).

    Dispatches on the exact type first: this runs for every value of every row.
    """
    kind = type(value)
    if kind is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            value = (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    if kind is int:
        return str(value)
    if value is None:
        return "\\N"
    if kind is bool:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _insert_copy(model: type[models.Model], columns: list[str], rows: list[tuple]) -> list[int]:
    """COPY rows in (see `_copy_lines`), formatting their values here."""
    # Rows of one insert share their timestamps: format those once.
    constants = {
        i: _copy_text(value)
        for i, value in enumerate(rows[0])
        if isinstance(value, datetime) and all(row[i] is value for row in rows)
    }
    lines = []
    for row in rows:
        if constants:
            row = [constants.get(i, value) for i, value in enumerate(row)]
        lines.append("\t".join(map(_copy_text, row)))
    return _copy_lines(model, columns, lines)


def _copy_lines(
    model: type[models.Model], columns: list[str], lines: list[str], *, need_ids: bool = True
) -> list[int]:
    """COPY rows given as text-format lines (without their ids), returning the ids they got.

    With `need_ids`, ids come from the table's sequence first, so that children can refer to
    them; otherwise the database numbers the rows itself and no ids come back. Rows are
    formatted by us and sent in large writes: the driver's per-row adaptation costs more than
    the server's whole work.
    """
    if not lines:
        return []
    table = model._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if need_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, len(lines)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            lines = [f"{pk}\t{line}" for pk, line in zip(ids, lines, strict=True)]
            columns = ["id", *columns]
        names = ", ".join(quote(column) for column in columns)
        with cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN") as copy:
            for start in range(0, len(lines), 5000):
                copy.write(("\n".join(lines[start : start + 5000]) + "\n").encode())
    return ids if need_ids else []


POST_COLUMNS = ["dataset_id", "external_id", "text", "image", "metadata", "created_at"]
STAGE_COLUMNS = [
    "post_id",
    "stage",
    "template_hash",
    "model",
    "params_hash",
    "endpoint_key",
    "parameters",
    "batch_id",
    "status",
    "request",
    "raw_answer",
    "parsed",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "attempts",
    "created_at",
    "updated_at",
]
ITEM_COLUMNS = [
    "post_id",
    "batch_id",
    "kind",
    "position",
    "text",
    "stage_result_id",
    "description_result_id",
    "provenance",
    "created_at",
]


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


def _checked(source: Source, records: Iterator[PostRecord]) -> Iterator[PostRecord]:
    """Checks every importer shares: id length, duplicates within the file, storable text."""
    first_line: dict[str, int] = {}
    for record in records:
        if len(record.external_id) > 255:
            raise source.error(record.line, "id longer than 255 characters")
        if record.external_id in first_line:
            raise source.error(
                record.line,
                f"duplicate id {record.external_id!r} (first on line "
                f"{first_line[record.external_id]})",
            )
        first_line[record.external_id] = record.line
        if "\x00" in record.text:
            raise source.error(record.line, "text contains a NUL character")
        for item in record.items:
            if not item.kind or len(item.kind) > 32:
                raise source.error(record.line, f"item kind {item.kind!r}: 1 to 32 characters")
        yield record


@contextmanager
def _foreign_key_triggers_skipped() -> Iterator[None]:
    """On PostgreSQL, skip the per-row foreign key checks of the rows written inside, if allowed.

    Every row the import writes points at the locked dataset, its own batch or rows written just
    before in the same transaction, so the checks (one query per row at commit, a third of the
    import's time) cannot fail. Needs superuser or `GRANT SET ON PARAMETER
    session_replication_role`; without it the checks simply run. The setting is put back on the
    way out, so a transaction around the import checks its own rows as usual.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        previous = cursor.fetchone()[0]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        previous = None
    yield
    if previous is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('session_replication_role', %s, true)", [previous])


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
) -> ImportReport:
    """Import a file of posts into a dataset (created when new), all or nothing.

    Raises ImportFileError (`file:line: what`) for anything malformed, and for posts that exist
    in the dataset with the same id but other text or metadata (naming the ids). Posts already
    there unchanged are skipped, so importing a file twice adds nothing. With `match_by="text"`
    a record whose text is a post's already in the dataset is that post (see
    `generation.importers.matching`).
    """
    path = Path(path)
    name = source_name or str(path)
    if not dataset_name.strip() or len(dataset_name.strip()) > 200:
        raise ImportFileError("a dataset name of 1 to 200 characters is required")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise ImportFileError(f"--images {images_dir}: not a folder")
    if format == "auto":
        format = format_detect(_head(path), name=name)
    importer = importer_for(format)
    total = path.stat().st_size
    images: _Images | None = None
    try:
        with transaction.atomic(), path.open("rb") as stream:
            dataset, created = Dataset.objects.get_or_create(
                name=dataset_name.strip(), defaults={"created_by": created_by}
            )
            # Held until commit: the dataset cannot be deleted under the import, and two imports
            # into one dataset run one after the other (so the duplicate check stays true).
            dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
            report = ImportReport(dataset_id=dataset.pk, dataset_name=dataset.name, format=format)
            images = _Images(Path(images_dir) if images_dir else None, report)
            source = Source(stream, name=name, max_line_bytes=settings.DISTILLERY_MAX_LINE_BYTES)
            writer = _ChunkWriter(
                dataset=dataset,
                new_dataset=created,
                format=format,
                pipeline=importer.PIPELINE,
                source=source,
                images=images,
                report=report,
                created_by=created_by,
                match_by=match_by_checked(match_by),
            )
            chunks = _chunks(_checked(source, importer.read(source)), CHUNK_POSTS)
            # closing(): on an error the reader thread is stopped before the file is closed.
            with _foreign_key_triggers_skipped(), closing(_prefetched(chunks)) as prefetched:
                for chunk in prefetched:
                    writer.write(chunk)
                    if progress:
                        progress(source.bytes_read, total)
            writer.finish()
            if progress:
                progress(total, total)
    except BaseException:
        if images is not None:
            images.discard()
        raise
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
        images: _Images,
        report: ImportReport,
        created_by,
        match_by: str = "id",
    ) -> None:
        self.dataset = dataset
        self.new_dataset = new_dataset
        self.format = format
        self.pipeline = pipeline
        self.source = source
        self.images = images
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
        if self.conflicts_total or not fresh:
            # After a conflict nothing will be kept: read on only to name every conflict.
            return
        post_rows = []
        for record in fresh:
            metadata = json.dumps(record.metadata, ensure_ascii=False)
            if "\\u0000" in metadata:
                raise self.source.error(record.line, "metadata contains a NUL character")
            image_path = self.images.check(self.source, record)
            image = self.images.save(self.dataset.pk, image_path) if image_path else ""
            post_rows.append(
                (self.dataset.pk, record.external_id, record.text, image, metadata, self.now)
            )
            for warning in record.warnings:
                self.report.warn(warning)
        post_ids = _insert(Post, POST_COLUMNS, post_rows)
        self.report.posts_created += len(post_ids)
        self._write_knowledge(fresh, post_ids)

    def _write_knowledge(self, fresh: list[PostRecord], post_ids: list[int]) -> None:
        if not any(record.items or record.stages for record in fresh):
            return
        batch_id = self._batch().pk
        stage_rows, stage_owner = [], []
        for index, (record, post_id) in enumerate(zip(fresh, post_ids, strict=True)):
            for stage in record.stages:
                stage_rows.append(
                    (
                        post_id,
                        stage.stage,
                        IMPORTED_HASH,
                        stage.model,
                        IMPORTED_HASH,
                        IMPORTED_KEY,
                        "{}",
                        batch_id,
                        StageResult.Status.FAILED if stage.error else StageResult.Status.OK,
                        json.dumps(stage.request, ensure_ascii=False),
                        stage.raw_answer,
                        None if stage.parsed is None else json.dumps(stage.parsed),
                        stage.error,
                        0,
                        0,
                        0,
                        1,
                        self.now,
                        self.now,
                    )
                )
                stage_owner.append((index, stage.stage))
        stage_ids = dict(
            zip(stage_owner, _insert(StageResult, STAGE_COLUMNS, stage_rows), strict=True)
        )
        self.report.stage_results_created += len(stage_ids)
        self.posts_failed += sum(any(stage.error for stage in r.stages) for r in fresh)
        # On PostgreSQL item rows are formatted for COPY right here: there are millions of them.
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
                f"\t{_copy_text(stage_id)}\t{_copy_text(description_id)}\t"
                f"{_copy_text(provenance)}\t{now_text}"
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
                        (
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
                        f"{head}{_copy_text(item.kind)}\t{item.position}\t"
                        f"{_copy_text(item.text)}{tail}"
                    )
                else:
                    item_rows.append(
                        f"{head}{_copy_text(item.kind)}\t{item.position}\t"
                        f"{_copy_text(item.text)}\t{_copy_text(stage_id)}\t"
                        f"{_copy_text(description_id)}\t"
                        f"{_copy_text(item_provenance)}\t{now_text}"
                    )
        if copy:
            # Nothing refers to the items: the database numbers them.
            _copy_lines(KnowledgeItem, ITEM_COLUMNS, item_rows, need_ids=False)
        else:
            _insert(KnowledgeItem, ITEM_COLUMNS, item_rows)
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


# Uploaded zips of images: refused when a member would land outside the folder (zip-slip), is a
# link, or expands far beyond its compressed size or the caps (a zip bomb).
MAX_ZIP_MEMBERS = 500_000
MAX_ZIP_TOTAL_BYTES = 16 * 1024**3
MAX_ZIP_RATIO = 200


def images_zip_extract(*, archive: Path, target: Path, name: str = "images.zip") -> Path:
    """Extract a zip of images into `target` and return the folder to read images from.

    Every member is checked before anything is written, and the bytes actually written are
    counted (a zip's declared sizes can lie). A zip whose files sit in one top folder yields that
    folder, so `images/80.jpg` is found as `80.jpg`.
    """
    target = target.resolve()
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError):
        raise ImportFileError(f"{name}: not a zip file") from None
    with bundle:
        members = [info for info in bundle.infolist() if not info.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise ImportFileError(f"{name}: more than {MAX_ZIP_MEMBERS} files; refused")
        declared = 0
        for info in members:
            destination = (target / info.filename).resolve()
            if (
                info.filename.startswith(("/", "\\"))
                or ".." in PurePosixPath(info.filename.replace("\\", "/")).parts
                or not destination.is_relative_to(target)
            ):
                raise ImportFileError(f"{name}: {info.filename!r} escapes the folder; refused")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ImportFileError(f"{name}: {info.filename!r} is a link; refused")
            if info.file_size > settings.DISTILLERY_MAX_IMAGE_BYTES:
                raise ImportFileError(
                    f"{name}: {info.filename!r} is above the image cap of "
                    f"{settings.DISTILLERY_MAX_IMAGE_BYTES} bytes; refused"
                )
            if info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1024):
                raise ImportFileError(
                    f"{name}: {info.filename!r} expands {info.file_size} bytes from "
                    f"{info.compress_size}; refused as a zip bomb"
                )
            declared += info.file_size
        if declared > MAX_ZIP_TOTAL_BYTES:
            raise ImportFileError(f"{name}: expands to more than {MAX_ZIP_TOTAL_BYTES} bytes")
        for info in members:
            destination = (target / info.filename).resolve()
            destination.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with bundle.open(info) as member, destination.open("wb") as out:
                    while block := member.read(1024 * 1024):
                        written += len(block)
                        if written > info.file_size:
                            raise ImportFileError(
                                f"{name}: {info.filename!r} is larger than it says; refused"
                            )
                        out.write(block)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                # zipfile reads no more than a member's header says, then finds the CRC wrong.
                raise ImportFileError(
                    f"{name}: {info.filename!r} is damaged or not what its header says "
                    f"({error}); refused"
                ) from None
    entries = list(target.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target


def import_job_create(
    *,
    file: UploadedFile,
    dataset_name: str,
    format: str = "auto",
    images_zip: UploadedFile | None = None,
    created_by=None,
) -> ImportJob:
    """Store an uploaded file (and zip of images) and queue its import in the background."""
    from generation.tasks import import_job_run_task

    if format != "auto" and format not in FORMATS:
        raise ImportFileError(f"unknown format {format!r}")
    if not dataset_name.strip() or len(dataset_name.strip()) > 200:
        raise ImportFileError("a dataset name of 1 to 200 characters is required")
    with transaction.atomic():
        job = ImportJob.objects.create(
            dataset_name=dataset_name.strip(),
            format=format,
            file=file,
            images_zip=images_zip,
            total_bytes=file.size or 0,
            created_by=created_by,
        )
        transaction.on_commit(lambda: import_job_run_task.delay(job_id=job.pk))
    return job


class _JobProgress:
    """Writes a running job's progress from its own thread and database connection.

    The import holds one transaction open; its progress must be committed apart from it to be
    seen. SQLite has one writer at a time, so there the job reports only when it ends.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.latest = 0
        self.written = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="import-progress", daemon=True)
        # Inside an outer transaction the job row may be locked by this very connection: the
        # progress thread would wait on it forever.
        self.live = connection.vendor == "postgresql" and not connection.in_atomic_block

    def __call__(self, done: int, total: int) -> None:
        self.latest = done

    def __enter__(self) -> "_JobProgress":
        if self.live:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.stop.set()
            self.thread.join()

    def run(self) -> None:
        from django.db import connection as own_connection

        try:
            while not self.stop.wait(0.5):
                if self.latest != self.written:
                    self.written = self.latest
                    ImportJob.objects.filter(pk=self.job_id).update(processed_bytes=self.written)
        finally:
            own_connection.close()


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import job once: queued → running → done or failed (with the message)."""
    started = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    if not started:
        return None  # already run, or running elsewhere
    job = ImportJob.objects.select_related("created_by").get(pk=job_id)
    upload_name = PurePosixPath(job.file.name).name
    try:
        with tempfile.TemporaryDirectory(prefix="distillery-import-") as tmp:
            path = Path(tmp) / "upload"
            with job.file.open("rb") as source, path.open("wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            images_dir = None
            if job.images_zip:
                archive = Path(tmp) / "images.zip"
                with job.images_zip.open("rb") as source, archive.open("wb") as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
                images_dir = images_zip_extract(
                    archive=archive,
                    target=Path(tmp) / "images",
                    name=PurePosixPath(job.images_zip.name).name,
                )
            ImportJob.objects.filter(pk=job_id).update(total_bytes=path.stat().st_size)
            with _JobProgress(job_id) as progress:
                report = posts_import(
                    path=path,
                    dataset_name=job.dataset_name,
                    format=job.format,
                    images_dir=images_dir,
                    created_by=job.created_by,
                    progress=progress,
                    source_name=upload_name,
                )
    except ImportFileError as exc:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.FAILED, error=str(exc), finished_at=timezone.now()
        )
    except Exception:
        logger.exception("import job %s failed", job_id)
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.FAILED,
            error="The import stopped on an internal error; the database is unchanged.",
            finished_at=timezone.now(),
        )
        raise
    else:
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.DONE,
            dataset_id=report.dataset_id,
            processed_bytes=models.F("total_bytes"),
            posts_created=report.posts_created,
            items_created=report.items_created,
            warnings=[*report.warnings, *_more(report)],
            finished_at=timezone.now(),
        )
    return ImportJob.objects.get(pk=job_id)


def _more(report: ImportReport) -> list[str]:
    hidden = report.warnings_total - len(report.warnings)
    return [f"... and {hidden} more warnings"] if hidden > 0 else []
