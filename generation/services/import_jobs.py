"""Uploads imported in the background: the job's lifecycle, its progress, and lost workers.

A job goes queued → running → done or failed (with the message). The worker running it holds a
lock that goes away with the worker's process however it dies: a PostgreSQL session advisory lock
(the server lets go when the connection drops), elsewhere a lock on a file (the operating system
lets go when the process exits). A job found `running` whose lock is free has lost its worker; its
import's transaction went with the connection, so nothing of it is in the database. Such a job is
marked failed with a message saying so, when a worker starts (`import_jobs_recover`) and when the
task is delivered again after its worker was killed. It is not imported again by itself: a file
that kills its worker (memory) would kill the next one too.
"""

import fcntl
import hashlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from config.errors import ApplicationError
from generation.extensions import split_keeper
from generation.importers import (
    DETECT_BYTES,
    FORMATS,
    FormatNotRecognised,
    ImportFileError,
    format_detect,
)
from generation.importers.archives import images_zip_extract
from generation.models import Dataset, ImportJob
from generation.services.imports import ImportReport, dataset_name_checked, posts_import

logger = logging.getLogger(__name__)

# The advisory lock of job N is (LOCK_CLASS, N); the class keeps it apart from other locks.
LOCK_CLASS = 0x494D5054  # "IMPT"
# How long a task delivered again waits for a dead worker's lock to go: the database ends the
# session when it next reads from the dead connection, at the latest when a statement ends.
WORKER_LOST_WAIT_SECONDS = 10.0
WORKER_LOST = (
    "The worker running this import stopped before it finished (it was killed or restarted); "
    "nothing was imported. Upload the file again."
)


def import_job_create(
    *,
    file: UploadedFile,
    dataset_name: str,
    format: str = "auto",
    images_zip: UploadedFile | None = None,
    created_by=None,
    create_dataset: bool | None = None,
    split: str = "",
) -> ImportJob:
    """Store an uploaded file (and zip of images) and queue its import in the background.

    `create_dataset`: True when the dataset must be new, False when it must exist, None to create
    it when new. With `auto`, the format is told from the file's start here, so a file of no known
    format is refused before a job exists (field `format`); the job keeps the format found.
    `split`: the split the file's posts belong to (`generation.extensions`), its name checked here.
    """
    from generation.tasks import import_job_run_task

    if format != "auto" and format not in FORMATS:
        raise ImportFileError(f"unknown format {format!r}", field="format")
    if split:
        split = split_keeper(name=split, origin=file.name or "upload").name
    dataset_name = dataset_name_checked(dataset_name)
    exists = Dataset.objects.filter(name=dataset_name).exists()
    if create_dataset is True and exists:
        raise ImportFileError(f"A dataset named '{dataset_name}' already exists.", field="dataset")
    if create_dataset is False and not exists:
        raise ImportFileError(f"There is no dataset named '{dataset_name}'.", field="dataset")
    if format == "auto":
        format = _format_found(file)
    with transaction.atomic():
        job = ImportJob.objects.create(
            dataset_name=dataset_name,
            format=format,
            split=split,
            file=file,
            images_zip=images_zip,
            total_bytes=file.size or 0,
            created_by=created_by,
        )
        transaction.on_commit(lambda: import_job_run_task.delay(job_id=job.pk))
    return job


def _format_found(file: UploadedFile) -> str:
    file.seek(0)
    head = file.read(DETECT_BYTES)
    file.seek(0)
    name = PurePosixPath(file.name or "upload").name
    try:
        return format_detect(head, name=name)
    except FormatNotRecognised as exc:
        raise ImportFileError(exc.words("choose one with `format`"), field="format") from exc


@contextmanager
def _worker_lock(job_id: int) -> Iterator[bool]:
    """Try to take job `job_id`'s worker lock; yields whether this process holds it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, job_id])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, job_id])
                except DatabaseError:
                    pass  # the connection is gone, and the lock with it
        return
    database = hashlib.sha256(str(settings.DATABASES["default"]["NAME"]).encode()).hexdigest()
    path = Path(tempfile.gettempdir()) / f"distillery-import-{database[:12]}-{job_id}.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            # Whoever holds the lock may remove the file: a process that opened it meanwhile
            # and locks the removed file finds the job's status already final.
            path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fail_if_worker_lost(job_id: int) -> bool:
    """Mark the job failed if it is `running`; call holding its worker lock (so it has none)."""
    lost = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).update(
        status=ImportJob.Status.FAILED, error=WORKER_LOST, finished_at=timezone.now()
    )
    if lost:
        logger.warning("import job %s lost its worker; marked failed", job_id)
    return bool(lost)


def import_jobs_recover() -> list[int]:
    """Fail the running jobs whose worker is gone and re-send the queued ones; returns the failed.

    Called when a worker connects to the broker. A queued job's message may have been lost with
    the broker; one sent twice runs once (see `import_job_run`).
    """
    from generation.tasks import import_job_run_task

    failed = []
    for job_id in ImportJob.objects.filter(status=ImportJob.Status.RUNNING).values_list(
        "pk", flat=True
    ):
        with _worker_lock(job_id) as free:
            if free and _fail_if_worker_lost(job_id):
                failed.append(job_id)
    for job_id in ImportJob.objects.filter(status=ImportJob.Status.QUEUED).values_list(
        "pk", flat=True
    ):
        import_job_run_task.delay(job_id=job_id)
    return failed


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
    """Run a queued import job once: queued → running → done or failed (with the message).

    Returns None when there is nothing to do: the job ran already, or its worker is alive. A job
    still `running` with no live worker (this task delivered again after its worker was killed)
    is marked failed; a dying worker's lock is waited for up to WORKER_LOST_WAIT_SECONDS.
    """
    deadline = time.monotonic() + WORKER_LOST_WAIT_SECONDS
    running = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING)
    while True:
        with _worker_lock(job_id) as mine:
            if mine:
                return _run_holding_lock(job_id)
        if time.monotonic() > deadline or not running.exists():
            return None
        time.sleep(0.25)


def _run_holding_lock(job_id: int) -> ImportJob | None:
    if _fail_if_worker_lost(job_id):
        return ImportJob.objects.get(pk=job_id)
    started = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    if not started:
        return None  # already run
    _run(ImportJob.objects.select_related("created_by").get(pk=job_id))
    return ImportJob.objects.get(pk=job_id)


def _run(job: ImportJob) -> None:
    jobs = ImportJob.objects.filter(pk=job.pk)
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
            jobs.update(total_bytes=path.stat().st_size)
            source_name = PurePosixPath(job.file.name).name
            keeper = None
            if job.split:
                keeper = split_keeper(name=job.split, origin=source_name, created_by=job.created_by)
            with _JobProgress(job.pk) as progress:
                report = posts_import(
                    path=path,
                    dataset_name=job.dataset_name,
                    format=job.format,
                    images_dir=images_dir,
                    created_by=job.created_by,
                    progress=progress,
                    source_name=source_name,
                    on_posts=keeper,
                )
    except ApplicationError as exc:  # ImportFileError, or the split refusing a post
        error = str(exc)
        if isinstance(exc, FormatNotRecognised):  # not the command line's --format
            error = exc.words("choose its format and upload it again")
        jobs.update(status=ImportJob.Status.FAILED, error=error, finished_at=timezone.now())
    except Exception:
        logger.exception("import job %s failed", job.pk)
        jobs.update(
            status=ImportJob.Status.FAILED,
            error="The import stopped on an internal error; the database is unchanged.",
            finished_at=timezone.now(),
        )
        raise
    else:
        jobs.update(
            status=ImportJob.Status.DONE,
            dataset_id=report.dataset_id,
            processed_bytes=models.F("total_bytes"),
            posts_created=report.posts_created,
            items_created=report.items_created,
            warnings=[*_images(report), *report.warnings, *_more(report)],
            finished_at=timezone.now(),
        )


def _more(report: ImportReport) -> list[str]:
    hidden = report.warnings_total - len(report.warnings)
    return [f"... and {hidden} more warnings"] if hidden > 0 else []


#: The first line of a finished job's `warnings` when its file names images: what became of them.
#: (A line rather than fields of their own: ImportJob has no columns for it yet.)
IMAGES_LINE = "Images: "


def _images(report: ImportReport) -> list[str]:
    """`Images: 1 imported, 24 missing (not in the zip), 0 rejected.`, when the file names any.

    An image that is refused (unreadable, too large, a name outside the folder) stops the whole
    import, so a finished job has none rejected; the line says so for the reader.
    """
    named = report.images_imported + report.images_missing + report.images_unresolved
    if not named:
        return []
    parts = [f"{report.images_imported} imported"]
    if report.images_missing:
        parts.append(f"{report.images_missing} missing (not in the zip)")
    if report.images_unresolved:
        parts.append(f"{report.images_unresolved} not imported (no images zip was uploaded)")
    parts.append("0 rejected")
    return [f"{IMAGES_LINE}{', '.join(parts)}."]


def import_job_images_line(job: ImportJob) -> tuple[str, list[str]]:
    """A job's images line (or "") and its warnings without it."""
    warnings = list(job.warnings or [])
    if warnings and isinstance(warnings[0], str) and warnings[0].startswith(IMAGES_LINE):
        return warnings[0], warnings[1:]
    return "", warnings
