"""Writes: cached agreement results and exports (to a path, or as a background job)."""

import hashlib
import importlib.metadata
import json
import logging
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.models import Campaign
from evaluation.alpha import LEVELS
from evaluation.exports import (
    EXTENSIONS,
    FORMATS,
    Export,
    Progress,
    atomic_path,
    dataset_card,
    sha256_of,
    write_format,
)
from evaluation.models import AgreementResult, ExportJob
from evaluation.selectors import (
    ItemFilters,
    aggregation_memory,
    annotator_statistics,
    campaign_agreement,
    campaign_provenance,
    ratings_fingerprint,
)
from generation.models import Endpoint
from generation.pipelines.base import PROMPTS_DIR, get_pipeline

logger = logging.getLogger(__name__)

# Campaigns with more ratings than this get their agreement computed by a worker, not the request.
INLINE_RATING_LIMIT = 200_000


def _check_level(level: str) -> None:
    if level and level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known levels: {', '.join(LEVELS)}")


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
    _check_level(level)
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
    _check_level(level)
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

    _check_level(level)
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


ALPHA_KEYS = ("alpha", "level", "ci95", "n_items", "n_ratings", "reason")


def _agreement_for_manifest(campaign: Campaign) -> dict:
    """Per question: alpha with its interval, overall and per item kind."""
    record = agreement_current(campaign=campaign, inline_limit=10**12)
    questions = (record.result or {}).get("questions", {})
    found = {}
    for name, figures in questions.items():
        found[name] = {key: figures.get(key) for key in ALPHA_KEYS}
        found[name]["kinds"] = {
            kind: {key: per_kind.get(key) for key in ALPHA_KEYS}
            for kind, per_kind in (figures.get("kinds") or {}).items()
        }
    return found


def _template_of(pipeline_name: str, stage_name: str, template_hash: str) -> dict:
    """The template text behind a hash, when a template file of this version has that hash.

    The stage's current template first, then the other templates of its pipeline (named variants
    such as an earlier wording). Neither: the text is unknown (`template` is null).
    """
    unknown = {"template": None, "template_file": None}
    try:
        pipeline = get_pipeline(pipeline_name)
        stage = pipeline.stage(stage_name)
    except KeyError:
        return unknown
    if pipeline.template_hash(stage) == template_hash:
        path = pipeline.template_path(stage)
        return {"template": pipeline.template_text(stage), "template_file": _prompt_name(path)}
    for path in sorted((PROMPTS_DIR / pipeline.name).rglob("*.txt")):
        text = path.read_text(encoding="utf-8")
        if hashlib.sha256(text.encode()).hexdigest() == template_hash:
            return {"template": text, "template_file": _prompt_name(path)}
    return unknown


def _prompt_name(path: Path) -> str:
    return str(path.relative_to(PROMPTS_DIR))


def _endpoint_for_manifest(endpoint: Endpoint | None) -> dict | None:
    """Name, backend and where it runs: the base URL (without credentials) or the model path."""
    if endpoint is None:
        return None
    found = {"name": endpoint.name, "backend": endpoint.backend, "model": endpoint.model}
    if endpoint.backend == Endpoint.Backend.OPENAI:
        parts = urlsplit(endpoint.base_url)
        netloc = parts.netloc.rpartition("@")[2]
        found["base_url"] = urlunsplit(parts._replace(netloc=netloc))
    else:
        found["model_path"] = endpoint.model_path
    return found


def _stages_for_manifest(stage_keys: set[tuple]) -> dict[str, list[dict]]:
    """Per stage, each way its results behind the export were produced (usually one)."""
    endpoints = Endpoint.objects.in_bulk({key[5] for key in stage_keys if key[5]})
    stages: dict[str, list[dict]] = {}
    for stage, pipeline, model, template_hash, parameters, endpoint_id in sorted(
        stage_keys, key=lambda key: tuple(str(part) for part in key)
    ):
        stages.setdefault(stage, []).append(
            {
                "pipeline": pipeline or None,
                "endpoint": _endpoint_for_manifest(endpoints.get(endpoint_id)),
                "model": model,
                "template_hash": template_hash,
                **_template_of(pipeline, stage, template_hash),
                "parameters": json.loads(parameters),
            }
        )
    return dict(sorted(stages.items()))


def _batches_for_manifest(campaign: Campaign) -> list[dict]:
    return [
        {"id": pk, "pipeline": pipeline, "status": status, "imported": imported}
        for pk, pipeline, status, imported in campaign.batches.order_by("id").values_list(
            "id", "pipeline", "status", "imported"
        )
    ]


def distillery_version() -> dict:
    """The installed Distillery version and, in a git checkout, its commit; None where unknown."""
    try:
        version = importlib.metadata.version("distillery")
    except importlib.metadata.PackageNotFoundError:
        version = None
    commit = dirty = None
    base = Path(settings.BASE_DIR)
    if (base / ".git").exists():
        head = _git(base, "rev-parse", "HEAD")
        if head is not None and re.fullmatch(r"[0-9a-f]{40}", head.strip()):
            commit = head.strip()
            status = _git(base, "status", "--porcelain", "--untracked-files=no")
            dirty = None if status is None else bool(status.strip())
    return {"version": version, "git_commit": commit, "git_dirty": dirty}


def _git(base: Path, *args: str) -> str | None:
    """A git command's output, or None if git is missing, fails or hangs: never an error."""
    try:
        done = subprocess.run(
            ["git", "-C", str(base), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def export_manifest(*, export: Export, fmt: str, files: dict[str, str], name: str) -> dict:
    """What an export holds and how it was made (see docs/exports.md for every field)."""
    campaign = export.campaign
    counts = {"posts": export.posts, "items": export.items, "ratings": export.ratings}
    extra = dict(export.extra)
    if "records" in extra:
        counts["records"] = extra.pop("records")
    return {
        "campaign": campaign.name,
        "format": fmt,
        "created_at": timezone.now().isoformat(),
        "dataset": {"id": campaign.dataset_id, "name": campaign.dataset.name},
        "filters": export.filters.as_dict(),
        "excluded": export.exclusions.as_dict(),
        "counts": counts,
        **extra,
        "batches": _batches_for_manifest(campaign),
        "stages": _stages_for_manifest(export.stage_keys),
        "alpha": _agreement_for_manifest(campaign),
        **campaign_provenance(campaign=campaign),
        "distillery": distillery_version(),
        "files": files,
        "sha256": files.get(name),
    }


def export_to_path(
    *,
    campaign: Campaign,
    fmt: str,
    filters: ItemFilters,
    output: Path,
    progress: Progress | None = None,
    drop_empty: bool = False,
) -> dict:
    """Write an export and its manifest; returns the manifest.

    The file (or, for `hf`, the folder) appears at `output` only once complete: it is written under
    a temporary sibling name and renamed. The manifest goes beside it as `<output>.manifest.json`,
    and for `hf` also inside the folder, with a dataset card (README.md). `drop_empty` (cotpd)
    leaves out the posts none of whose items passed the filters.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    output = Path(output)
    export = Export(
        campaign=campaign,
        filters=filters,
        progress=progress,
        by_post=fmt == "cotpd",
        drop_empty=drop_empty,
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
        manifest = export_manifest(export=export, fmt=fmt, files=files, name=output.name)
        if partial.is_dir():
            (partial / "README.md").write_text(dataset_card(manifest), encoding="utf-8")
            (partial / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
    manifest_path = output.with_name(output.name + ".manifest.json")
    with atomic_path(manifest_path) as partial:
        partial.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def export_create(
    *, campaign: Campaign, fmt: str, filters: ItemFilters, created_by=None
) -> ExportJob:
    """Record an export job and queue it for a worker after commit."""
    from evaluation.tasks import export_run_task

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    questions = set(campaign.questions.values_list("name", flat=True))
    unknown = filters.questions() - questions
    if unknown:
        raise ValueError(f"unknown question(s): {', '.join(sorted(unknown))}")
    job = ExportJob.objects.create(
        campaign=campaign, format=fmt, filters=filters.as_dict(), created_by=created_by
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
        raise ValueError(f"export {job.pk} is done; start a new export instead")
    retry = export_create(
        campaign=job.campaign,
        fmt=job.format,
        filters=ItemFilters.from_dict(job.filters),
        created_by=created_by or job.created_by,
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
        if job.format == "hf":
            manifest = _export_hf_archive(job, filters, folder, name, progress)
            filename = f"{name}.zip"
        else:
            filename = name + EXTENSIONS[job.format]
            manifest = export_to_path(
                campaign=job.campaign,
                fmt=job.format,
                filters=filters,
                output=folder / filename,
                progress=progress,
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


def _export_hf_archive(
    job: ExportJob, filters: ItemFilters, folder: Path, name: str, progress: Progress
) -> dict:
    """The `hf` folder, zipped for download (the zip too appears only once complete)."""
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        manifest = export_to_path(
            campaign=job.campaign,
            fmt="hf",
            filters=filters,
            output=Path(scratch) / name,
            progress=progress,
        )
        with atomic_path(folder / f"{name}.zip") as partial:
            archive = shutil.make_archive(str(Path(scratch) / name), "zip", scratch, name)
            Path(archive).replace(partial)
    return manifest
