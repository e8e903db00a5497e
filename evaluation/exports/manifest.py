"""The manifest of an export (what it holds and how it was made: filters, exclusions, counts,
batches, the stages behind its items with their endpoints and prompt templates, alpha, the
Distillery version) and the dataset card of an `hf` export."""

import hashlib
import importlib.metadata
import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from annotation.models import Campaign
from evaluation.exports.export import Export
from evaluation.extensions import splits_manifest
from evaluation.selectors.campaigns import campaign_provenance
from generation.models import Endpoint
from generation.pipelines.base import PROMPTS_DIR, get_pipeline

ALPHA_KEYS = ("alpha", "level", "ci95", "n_items", "n_ratings", "reason")


def alpha_for_manifest(result: dict | None) -> dict:
    """Per question of an agreement result: alpha with its interval, overall and per item kind."""
    questions = (result or {}).get("questions", {})
    found = {}
    for name, figures in questions.items():
        found[name] = {key: figures.get(key) for key in ALPHA_KEYS}
        found[name]["kinds"] = {
            kind: {key: per_kind.get(key) for key in ALPHA_KEYS}
            for kind, per_kind in (figures.get("kinds") or {}).items()
        }
    return found


def template_of(pipeline_name: str, stage_name: str, template_hash: str) -> dict:
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
                **template_of(pipeline, stage, template_hash),
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


def export_manifest(
    *, export: Export, fmt: str, files: dict[str, str], name: str, agreement: dict | None
) -> dict:
    """What an export holds and how it was made (see docs/exports.md for every field);
    `agreement` is the campaign's agreement result, whose alpha figures it quotes."""
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
        "splits": splits_manifest(dataset=campaign.dataset, filters=export.filters),
        "counts": counts,
        **extra,
        "batches": _batches_for_manifest(campaign),
        "stages": _stages_for_manifest(export.stage_keys),
        "alpha": alpha_for_manifest(agreement),
        **campaign_provenance(campaign=campaign),
        "distillery": distillery_version(),
        "files": files,
        "sha256": files.get(name),
    }


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
