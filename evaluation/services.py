"""Writes: cached agreement results and exports (to a path, or as a background job)."""

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign
from config.errors import ApplicationError, Conflict
from evaluation.exports.export import Export, Progress
from evaluation.exports.files import atomic_path, sha256_of
from evaluation.exports.formats import EXTENSIONS, TRAINING_FORMATS, check_format, write_format
from evaluation.exports.manifest import dataset_card, export_manifest
from evaluation.extensions import export_critic_from_options, export_split_filters
from evaluation.models import AgreementResult, ExportJob
from evaluation.selectors.agreement import campaign_agreement, check_level, ratings_fingerprint
from evaluation.selectors.annotators import annotator_statistics
from evaluation.selectors.campaigns import campaign_questions
from evaluation.selectors.filters import ItemFilters
from evaluation.selectors.packing import aggregation_memory

logger = logging.getLogger(__name__)

# Campaigns with more ratings than this get their agreement computed by a worker, not the request.
INLINE_RATING_LIMIT = 200_000


def agreement_refresh(
    *,
    campaign: Campaign,
    level: str = "",
    with_annotators: bool = False,
    fingerprint: str | None = None,
) -> AgreementResult:
    """Compute the campaign's agreement now and store it with the fingerprint it was computed on.

    With `with_annotators`, the per-annotator statistics of the dashboard are computed too;
    otherwise they are cleared, since they no longer match the ratings.
    """
    check_level(level)
    fingerprint = fingerprint or ratings_fingerprint(campaign=campaign)[0]
    started = time.monotonic()
    result = campaign_agreement(campaign=campaign, level=level)
    annotators = annotator_statistics(campaign=campaign) if with_annotators else None
    record, _ = AgreementResult.objects.update_or_create(
        campaign=campaign,
        level=level,
        defaults={
            "status": AgreementResult.Status.DONE,
            "fingerprint": fingerprint,
            "result": result,
            "annotators": annotators,
            "error": "",
            "computed_at": timezone.now(),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return record


def agreement_current(
    *,
    campaign: Campaign,
    level: str = "",
    inline_limit: int | None = None,
    with_annotators: bool = False,
) -> AgreementResult:
    """The cached agreement if the ratings have not changed since; otherwise a fresh one.

    Small campaigns are recomputed here. Large ones are queued for a worker (once, after commit);
    the record returned then keeps its last result, with status `queued` or `running`, so a page can
    show the stale figures while the new ones are computed.
    """
    check_level(level)
    fingerprint, n_ratings = ratings_fingerprint(campaign=campaign)
    record = AgreementResult.objects.filter(campaign=campaign, level=level).first()
    fresh = (
        record is not None
        and record.status == AgreementResult.Status.DONE
        and record.fingerprint == fingerprint
    )
    if fresh and (record.annotators is not None or not with_annotators):
        return record
    limit = INLINE_RATING_LIMIT if inline_limit is None else inline_limit
    if n_ratings <= limit:
        return agreement_refresh(
            campaign=campaign,
            level=level,
            with_annotators=with_annotators,
            fingerprint=fingerprint,
        )
    return agreement_schedule(campaign=campaign, level=level)


def agreement_schedule(*, campaign: Campaign, level: str = "") -> AgreementResult:
    """Queue a background computation unless one is already queued or running."""
    from evaluation.tasks import agreement_refresh_task

    check_level(level)
    with transaction.atomic():
        record, created = AgreementResult.objects.select_for_update().get_or_create(
            campaign=campaign, level=level
        )
        pending = (AgreementResult.Status.QUEUED, AgreementResult.Status.RUNNING)
        if created or record.status not in pending:
            record.status = AgreementResult.Status.QUEUED
            record.save(update_fields=["status"])
            transaction.on_commit(lambda: agreement_refresh_task.delay(campaign.pk, level))
    return record


def agreement_run(*, campaign_id: int, level: str) -> None:
    """The worker's side: mark running, compute, store (or record the failure).

    At the scale's level the dashboard's annotator statistics are computed as well.
    """
    campaign = Campaign.objects.get(pk=campaign_id)
    AgreementResult.objects.filter(campaign=campaign, level=level).update(
        status=AgreementResult.Status.RUNNING
    )
    try:
        agreement_refresh(campaign=campaign, level=level, with_annotators=level == "")
    except Exception as error:  # recorded for the page; the worker itself must not crash
        logger.exception("agreement of campaign %s failed", campaign_id)
        AgreementResult.objects.filter(campaign=campaign, level=level).update(
            status=AgreementResult.Status.FAILED, error=str(error)
        )


def export_to_path(
    *,
    campaign: Campaign,
    fmt: str,
    filters: ItemFilters,
    output: Path,
    progress: Progress | None = None,
    drop_empty: bool = False,
    critic=None,
) -> dict:
    """Write an export and its manifest; returns the manifest.

    The file (or, for `hf`, the folder) appears at `output` only once complete: it is written under
    a temporary sibling name and renamed. The manifest goes beside it as `<output>.manifest.json`,
    and for `hf` also inside the folder, with a dataset card (README.md). `drop_empty` (cotpd)
    leaves out the posts none of whose items passed the filters. `critic`
    (`extensions.CriticSelection`) adds the unrated items the critic keeps.
    """
    check_format(fmt)
    if critic is not None and fmt == "cotpd":
        raise ApplicationError("an export by critic writes items: choose a format other than cotpd")
    filters = export_split_filters(
        dataset=campaign.dataset, training=fmt in TRAINING_FORMATS, filters=filters
    )
    output = Path(output)
    export = Export(
        campaign=campaign,
        filters=filters,
        progress=progress,
        by_post=fmt == "cotpd",
        drop_empty=drop_empty,
        critic=critic,
    )
    with atomic_path(output) as partial:
        with transaction.atomic():
            aggregation_memory()
            write_format(export, fmt, partial)
        if partial.is_dir():
            files = {
                str(path.relative_to(partial)): sha256_of(path)
                for path in sorted(partial.rglob("*"))
                if path.is_file()
            }
        else:
            files = {output.name: sha256_of(partial)}
        # The alpha the manifest quotes: computed here when the ratings changed, however large.
        agreement = agreement_current(campaign=campaign, inline_limit=10**12).result
        manifest = export_manifest(
            export=export, fmt=fmt, files=files, name=output.name, agreement=agreement
        )
        if partial.is_dir():
            (partial / "README.md").write_text(dataset_card(manifest), encoding="utf-8")
            (partial / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
    manifest_path = output.with_name(output.name + ".manifest.json")
    with atomic_path(manifest_path) as partial:
        partial.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def export_create(
    *, campaign: Campaign, fmt: str, filters: ItemFilters, created_by=None, critic=None
) -> ExportJob:
    """Record an export job and queue it for a worker after commit. `critic`
    (`extensions.CriticSelection`) is stored with the filters, as `critic`."""
    from evaluation.tasks import export_run_task

    check_format(fmt)
    if critic is not None and fmt == "cotpd":
        raise ApplicationError("an export by critic writes items: choose a format other than cotpd")
    filters.check_questions([q.name for q in campaign_questions(campaign=campaign)])
    filters = export_split_filters(
        dataset=campaign.dataset, training=fmt in TRAINING_FORMATS, filters=filters
    )
    stored = filters.as_dict()
    if critic is not None:
        stored["critic"] = critic.as_options()
    job = ExportJob.objects.create(
        campaign=campaign, format=fmt, filters=stored, created_by=created_by
    )
    transaction.on_commit(lambda: export_run_task.delay(job.pk))
    return job


def export_retry(*, job: ExportJob, created_by=None) -> ExportJob:
    """Run an export again as a new job with the same campaign, format and filters.

    For a job that failed, or one left `queued` or `running` by a worker that was killed or a
    message the broker lost (nothing tells those apart from a slow one, so the person decides).
    The old job is marked failed so its page stops waiting; should its worker still be alive, it
    marks the job done when it ends. A done job is not run again: its file is there.
    """
    if job.status == ExportJob.Status.DONE:
        raise Conflict(f"export {job.pk} is done; start a new export instead")
    retry = export_create(
        campaign=job.campaign,
        fmt=job.format,
        filters=ItemFilters.from_dict(job.filters),
        created_by=created_by or job.created_by,
        critic=_job_critic(job),
    )
    ExportJob.objects.filter(
        pk=job.pk, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]
    ).update(
        status=ExportJob.Status.FAILED,
        error=f"Stopped before it finished; run again as export {retry.pk}.",
        finished_at=timezone.now(),
    )
    return retry


def export_run(*, job_id: int) -> ExportJob:
    """Run a queued job once: the status moves queued → running → done/failed, guarded."""
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=timezone.now()
    )
    job = ExportJob.objects.select_related("campaign").get(pk=job_id)
    if not claimed:
        return job
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    name = f"{job.campaign.name}-{job.format}-{job.pk}-{stamp}"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    folder = Path(settings.MEDIA_ROOT) / "exports" / str(job.campaign_id)
    last_report = [0.0]

    def progress(percent: int, written: int) -> None:
        now = time.monotonic()
        if percent == 100 or now - last_report[0] > 1:
            last_report[0] = now
            ExportJob.objects.filter(pk=job.pk).update(percent=percent, items_written=written)

    try:
        filters = ItemFilters.from_dict(job.filters)
        critic = _job_critic(job)
        if job.format == "hf":
            manifest = _export_hf_archive(job, filters, folder, name, progress, critic)
            filename = f"{name}.zip"
        else:
            filename = name + EXTENSIONS[job.format]
            manifest = export_to_path(
                campaign=job.campaign,
                fmt=job.format,
                filters=filters,
                output=folder / filename,
                progress=progress,
                critic=critic,
            )
    except Exception as error:  # recorded on the job for the page; the worker must not crash
        logger.exception("export %s failed", job.pk)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED, error=str(error), finished_at=timezone.now()
        )
        job.refresh_from_db()
        return job
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.DONE,
        percent=100,
        items_written=manifest["counts"]["items"],
        file=f"exports/{job.campaign_id}/{filename}",
        sha256=sha256_of(folder / filename),
        manifest=manifest,
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


def _job_critic(job: ExportJob):
    """The critic an export job stored (an export by critic), picked again; None without."""
    options = job.filters.get("critic")
    if not options:
        return None
    return export_critic_from_options(options=options, campaign=job.campaign)


def _export_hf_archive(
    job: ExportJob, filters: ItemFilters, folder: Path, name: str, progress: Progress, critic
) -> dict:
    """The `hf` folder, zipped for download (the zip too appears only once complete)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        manifest = export_to_path(
            campaign=job.campaign,
            fmt="hf",
            filters=filters,
            output=Path(scratch) / name,
            progress=progress,
            critic=critic,
        )
        with atomic_path(folder / f"{name}.zip") as partial:
            archive = shutil.make_archive(str(Path(scratch) / name), "zip", scratch, name)
            Path(archive).replace(partial)
    return manifest
