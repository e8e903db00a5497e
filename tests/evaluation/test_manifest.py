"""The export manifest, field by field, and the export page showing it as JSON."""

import hashlib
import html
import importlib.metadata
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from annotation.models import Rating
from evaluation.exports import manifest as manifest_module
from evaluation.models import ExportJob
from evaluation.selectors.filters import ItemFilters
from evaluation.services import export_run, export_to_path
from generation.models import Endpoint, StageResult
from generation.pipelines.base import get_pipeline
from tests.factories import annotators, campaign_create, posts_with_items, rate

COTPD = get_pipeline("cotpd")
KINDS = ["cot_noun", "cot_sentence"]
# 3 coders × 6 items (3 posts × 2 kinds); None: not rated.
PLAUSIBILITY = [[5, 2, 4, 5, 1, 3], [4, 1, 5, 5, 2, None], [5, 2, 4, 4, 1, 3]]
TYPICALITY = [[4, 3, 4, 5, 2, 3], [4, 2, 4, 5, 1, None], [3, 3, 5, 4, 2, 4]]
PARAMETERS = {"temperature": 0.7, "max_tokens": 300}


def stage_result(item, stage: str, endpoint, template_hash: str, parameters: dict) -> StageResult:
    return StageResult.objects.create(
        post=item.post,
        stage=stage,
        template_hash=template_hash,
        model=endpoint.model,
        params_hash=f"p{StageResult.objects.count()}",
        parameters=parameters,
        batch=item.batch,
        endpoint=endpoint,
        status=StageResult.Status.OK,
        parsed={"text": item.text},
    )


@pytest.fixture
def campaign(db):
    campaign = campaign_create(name="manifest-eval")
    items = posts_with_items(campaign, posts=3, kinds=KINDS)
    api = Endpoint.objects.create(
        name="vllm", backend="openai", base_url="http://user:secret@10.0.0.7:8000/v1",
        model="qwen-teacher",
    )  # fmt: skip
    local = Endpoint.objects.create(
        name="blip", backend="transformers", model_path="/models/blip-large", model="blip-large"
    )
    batch = items[0].batch
    batch.pipeline, batch.endpoint, batch.imported = "cotpd", api, False
    batch.save()
    for item in items:
        stage = COTPD.stage(item.kind)
        item.stage_result = stage_result(
            item, item.kind, api, COTPD.template_hash(stage), PARAMETERS
        )
        item.save()
    # The first item names what it was built from: a caption by another endpoint.
    caption = stage_result(
        items[0], "caption", local, COTPD.template_hash(COTPD.stage("caption")), {}
    )
    items[0].provenance = {
        "stage_results": {"caption": caption.pk, "cot_noun": items[0].stage_result_id}
    }
    items[0].save()
    coders = annotators(3)
    rate(campaign, items, "plausibility", coders, PLAUSIBILITY)
    rate(campaign, items, "typicality", coders, TYPICALITY)
    campaign.items = items
    return campaign


def export(campaign, tmp_path: Path, fmt: str, *args: str) -> tuple[Path, dict]:
    output = tmp_path / f"out-{fmt}"
    call_command(
        "export_dataset", "--campaign", campaign.name, "--format", fmt, "--output", str(output),
        "--no-progress", *args, stdout=io.StringIO(),
    )  # fmt: skip
    return output, json.loads(Path(f"{output}.manifest.json").read_text())


def kept_ids(campaign) -> list[int]:
    """Items with mean plausibility ≥ 4 (the filter the tests use)."""
    kept = []
    for u, item in enumerate(campaign.items):
        values = [row[u] for row in PLAUSIBILITY if row[u] is not None]
        if sum(values) / len(values) >= 4:
            kept.append(item.id)
    return kept


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "sft-chat", "alpaca", "cotpd",
                                 "ratings", "label-studio", "hf"])  # fmt: skip
def test_counts_the_ratings_behind_the_exported_items_in_every_format(campaign, tmp_path, fmt):
    _, manifest = export(campaign, tmp_path, fmt, "--min-plausibility", "4")
    kept = kept_ids(campaign)
    assert len(kept) == 3
    counts = manifest["counts"]
    assert counts["items"] == 3
    assert counts["ratings"] == Rating.objects.filter(item_id__in=kept).count() == 18
    # cotpd writes every post of the campaign; the others the posts of their items.
    assert counts["posts"] == (3 if fmt == "cotpd" else 2)


def test_dataset_batches_filters_and_files(campaign, tmp_path):
    path, manifest = export(campaign, tmp_path, "jsonl", "--min-plausibility", "4")
    batch = campaign.items[0].batch
    assert manifest["dataset"] == {"id": campaign.dataset_id, "name": campaign.dataset.name}
    assert manifest["batches"] == [
        {"id": batch.pk, "pipeline": "cotpd", "status": "done", "imported": False}
    ]
    assert manifest["filters"] == ItemFilters.from_dict(manifest["filters"]).as_dict()
    assert manifest["filters"]["min_mean"] == {"plausibility": 4.0}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["files"] == {path.name: digest} and manifest["sha256"] == digest


def test_stages_name_endpoint_model_template_and_parameters(campaign, tmp_path):
    _, manifest = export(campaign, tmp_path, "jsonl", "--min-plausibility", "4")
    stages = manifest["stages"]
    assert sorted(stages) == ["caption", "cot_noun", "cot_sentence", "describe_image"]
    [noun] = stages["cot_noun"]
    assert noun["pipeline"] == "cotpd" and noun["model"] == "qwen-teacher"
    # The credentials in the base URL stay out of the manifest.
    assert noun["endpoint"] == {
        "name": "vllm", "backend": "openai", "model": "qwen-teacher",
        "base_url": "http://10.0.0.7:8000/v1",
    }  # fmt: skip
    assert noun["parameters"] == PARAMETERS
    assert noun["template_hash"] == COTPD.template_hash(COTPD.stage("cot_noun"))
    assert noun["template"] == COTPD.template_text(COTPD.stage("cot_noun"))
    assert noun["template_file"] == "cotpd/cot_noun.txt"
    [caption] = stages["caption"]
    assert caption["endpoint"] == {
        "name": "blip", "backend": "transformers", "model": "blip-large",
        "model_path": "/models/blip-large",
    }  # fmt: skip
    assert caption["template"] == COTPD.template_text(COTPD.stage("caption"))
    # A description whose template no file of this version has: its text is unknown.
    [described] = stages["describe_image"]
    assert described["template_hash"] == "hash-describe_image"
    assert described["template"] is None and described["template_file"] is None
    assert described["endpoint"] is None and described["model"] == "llava-fake"


def test_a_template_variant_is_found_by_its_hash(campaign, tmp_path):
    miko = get_pipeline("miko")
    variant = Path(miko.template_path(miko.stage("key_info"), "distillery"))
    text = variant.read_text(encoding="utf-8")
    found = manifest_module.template_of("miko", "key_info",
                                  hashlib.sha256(text.encode()).hexdigest())  # fmt: skip
    assert found == {"template": text, "template_file": f"miko/{variant.name}"}
    assert manifest_module.template_of("nope", "caption", "x") == {
        "template": None, "template_file": None
    }  # fmt: skip


def test_alpha_per_question_and_per_kind_with_intervals(campaign, tmp_path):
    _, manifest = export(campaign, tmp_path, "jsonl")
    plausibility = manifest["alpha"]["plausibility"]
    assert plausibility["level"] == "ordinal" and plausibility["n_ratings"] == 17
    assert isinstance(plausibility["alpha"], float)
    assert len(plausibility["ci95"]) == 2
    assert sorted(plausibility["kinds"]) == KINDS
    noun = plausibility["kinds"]["cot_noun"]
    assert set(noun) == {"alpha", "level", "ci95", "n_items", "n_ratings", "reason"}
    assert noun["n_items"] == 3 and noun["n_ratings"] == 9
    assert manifest["alpha"]["typicality"]["kinds"]["cot_sentence"]["n_ratings"] == 8


def test_version_and_git_commit(campaign, tmp_path):
    _, manifest = export(campaign, tmp_path, "jsonl")
    version = manifest["distillery"]
    assert version["version"] == importlib.metadata.version("distillery")
    base = Path(settings.BASE_DIR)
    if (base / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(base), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert version["git_commit"] == head
        assert isinstance(version["git_dirty"], bool)
    else:
        assert version["git_commit"] is None


def test_version_without_git_never_fails(settings, tmp_path, monkeypatch):
    settings.BASE_DIR = tmp_path  # not a checkout
    assert manifest_module.distillery_version()["git_commit"] is None
    (tmp_path / ".git").mkdir()  # looks like one, but git cannot read it
    assert manifest_module.distillery_version()["git_commit"] is None

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(manifest_module.subprocess, "run", no_git)
    assert manifest_module.distillery_version()["git_commit"] is None
    monkeypatch.setattr(
        manifest_module.importlib.metadata,
        "version",
        lambda name: (_ for _ in ()).throw(importlib.metadata.PackageNotFoundError(name)),
    )
    assert manifest_module.distillery_version() == {
        "version": None, "git_commit": None, "git_dirty": None
    }  # fmt: skip


def test_manifest_is_plain_json_beside_the_file(campaign, tmp_path):
    output = tmp_path / "plain.jsonl"
    manifest = export_to_path(
        campaign=campaign,
        fmt="jsonl",
        filters=ItemFilters(min_mean={"plausibility": 4.0}),
        output=output,
    )
    on_disk = json.loads(Path(f"{output}.manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["campaign"] == "manifest-eval" and on_disk["format"] == "jsonl"
    assert on_disk["created_at"]


def test_export_page_shows_the_manifest_as_json(admin_client, campaign):
    job = ExportJob.objects.create(
        campaign=campaign, format="jsonl", filters={"min_mean": {"plausibility": 4}}
    )
    export_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done"
    page = admin_client.get(f"/exports/{job.pk}/").content.decode()
    shown = re.search(r'<code class="language-json">(.*?)</code>', page, re.S).group(1)
    assert json.loads(html.unescape(shown)) == job.manifest
    assert '\n  "counts": {' in html.unescape(shown)  # indented, not one line
    assert "{'campaign'" not in page  # not Python's repr
    partial = admin_client.get(f"/exports/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "language-json" in partial
