"""Every export format written through `export_dataset`, read back and checked."""

import csv
import hashlib
import io
import json
import statistics
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from evaluation.exports import export as export_module
from generation.models import Post
from tests.factories import annotators, campaign_create, posts_with_items, rate

KINDS = ["xWant", "xIntent", "open"]
# Coders × 12 items (4 posts × 3 kinds, in post order). None: not rated.
PLAUSIBILITY = [
    [5, 4, 2, 5, 3, 1, 4, 5, 3, 2, 5, 4],
    [4, 4, 3, 5, 4, 2, 4, 3, 3, 1, 5, None],
    [5, 3, 1, 4, 2, 1, 5, 4, 4, 2, 4, 5],
]
TYPICALITY = [
    [4, 2, 3, 5, 3, 2, 3, 3, 2, 1, 5, 4],
    [3, 3, 3, 4, 3, 2, 2, 3, 2, 2, 5, None],
    [4, 2, 3, 1, 2, 1, 3, 4, 3, 1, 4, 5],
]


@pytest.fixture
def campaign(db):
    campaign = campaign_create(name="miko-eval")
    items = posts_with_items(campaign, posts=4, kinds=KINDS)
    Post.objects.filter(pk=items[0].post_id).update(text='=HYPERLINK("http://x") look at this')
    coders = annotators(3)
    rate(campaign, items, "plausibility", coders, PLAUSIBILITY)
    rate(campaign, items, "typicality", coders, TYPICALITY)
    campaign.items = items
    return campaign


def column(matrix: list, u: int) -> list[int]:
    return [row[u] for row in matrix if row[u] is not None]


def expected_ids(campaign, *, min_p=None, min_t=None, min_ratings=1, max_spread=None, kinds=None):
    """The filters applied by hand, item by item."""
    kept = []
    for u, item in enumerate(campaign.items):
        p, t = column(PLAUSIBILITY, u), column(TYPICALITY, u)
        if len(p) < min_ratings or len(t) < min_ratings:
            continue
        if min_p is not None and statistics.mean(p) < min_p:
            continue
        if min_t is not None and statistics.mean(t) < min_t:
            continue
        if max_spread is not None and (
            max(p) - min(p) > max_spread or max(t) - min(t) > max_spread
        ):
            continue
        if kinds and item.kind not in kinds:
            continue
        kept.append(item.id)
    return kept


def export(campaign, tmp_path: Path, fmt: str, *args: str) -> Path:
    output = tmp_path / f"out-{fmt}"
    call_command(
        "export_dataset", "--campaign", campaign.name, "--format", fmt, "--output", str(output),
        "--no-progress", *args, stdout=io.StringIO(),
    )  # fmt: skip
    return output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def manifest_of(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".manifest.json").read_text())


@pytest.mark.parametrize(
    ("args", "bounds"),
    [
        ([], {}),
        (["--min-plausibility", "4", "--min-typicality", "3"], {"min_p": 4, "min_t": 3}),
        (["--min", "plausibility=3.5"], {"min_p": 3.5}),
        (["--min-ratings", "3"], {"min_ratings": 3}),
        (["--max-spread", "1"], {"max_spread": 1}),
        (["--kinds", "xWant,open", "--min-typicality", "2"],
         {"kinds": ["xWant", "open"], "min_t": 2}),
        (["--min-plausibility", "4", "--min-ratings", "3", "--max-spread", "1"],
         {"min_p": 4, "min_ratings": 3, "max_spread": 1}),
    ],
)  # fmt: skip
def test_filters_are_exact(campaign, tmp_path, args, bounds):
    records = read_jsonl(export(campaign, tmp_path, "jsonl", *args))
    assert [r["item_id"] for r in records] == expected_ids(campaign, **bounds)


def test_jsonl_scores_and_manifest(campaign, tmp_path):
    path = export(campaign, tmp_path, "jsonl", "--min-plausibility", "4", "--min-typicality", "3")
    records = read_jsonl(path)
    first = records[0]
    item = campaign.items[0]
    assert first["post_id"] == item.post.external_id
    assert first["kind"] == "xWant" and first["text"] == item.text
    assert first["image_description"] == f"A photo that goes with {item.post.external_id}."
    assert first["scores"]["plausibility"] == {"n": 3, "mean": 4.6667, "median": 5.0, "spread": 1}
    assert first["scores"]["typicality"] == {"n": 3, "mean": 3.6667, "median": 4.0, "spread": 1}
    last_item = records[-1]
    assert last_item["item_id"] == campaign.items[11].id
    assert last_item["scores"]["plausibility"]["median"] == 4.5  # two ratings: 4 and 5

    manifest = manifest_of(path)
    assert manifest["campaign"] == "miko-eval" and manifest["format"] == "jsonl"
    assert manifest["filters"]["min_mean"] == {"plausibility": 4.0, "typicality": 3.0}
    assert manifest["counts"]["items"] == len(records)
    assert manifest["counts"]["posts"] == len({r["post_id"] for r in records})
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["alpha"]["plausibility"]["level"] == "ordinal"
    assert manifest["alpha"]["plausibility"]["n_ratings"] == 35
    assert manifest["pipelines"] == ["miko"]
    assert manifest["prompt_hashes"] == {"describe_image": ["hash-describe_image"]}
    assert manifest["models"] == ["llava-fake"]
    assert manifest["created_at"]
    # Nothing half-written is left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out-jsonl", "out-jsonl.manifest.json"]


def test_csv_reads_back_with_formulas_neutralised(campaign, tmp_path):
    path = export(campaign, tmp_path, "csv")
    rows = list(csv.DictReader(path.open(newline="")))
    assert len(rows) == 12
    assert rows[0]["post_text"].startswith("'=HYPERLINK")
    assert rows[0]["plausibility_mean"] == "4.6667" and rows[0]["typicality_n"] == "3"
    assert not any(v.startswith(("=", "+", "-", "@")) for row in rows for v in row.values())


def test_ratings_are_every_raw_rating_of_the_kept_items(campaign, tmp_path):
    path = export(campaign, tmp_path, "ratings", "--min-ratings", "3")
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0])[:5] == ["post_id", "kind", "annotator", "question", "value"]
    assert len(rows) == 11 * 6  # item 12 has only two ratings per question
    first_item = [r for r in rows if r["item_id"] == str(campaign.items[0].id)]
    values = sorted((r["annotator"], r["question"], r["value"]) for r in first_item)
    assert values[:2] == [("coder0", "plausibility", "5"), ("coder0", "typicality", "4")]
    assert manifest_of(path)["counts"]["ratings"] == 66


def test_parquet_is_written_in_row_groups(campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "CHUNK_SIZE", 5)
    path = export(campaign, tmp_path, "parquet")
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3
    table = parquet.read().to_pylist()
    assert [r["item_id"] for r in table] == [item.id for item in campaign.items]
    assert table[0]["plausibility_median"] == 5.0 and table[0]["typicality_spread"] == 1


def test_sft_chat_loads_with_datasets_as_training_examples(campaign, tmp_path):
    import datasets

    path = export(campaign, tmp_path, "sft-chat", "--min-plausibility", "4")
    loaded = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    kept = expected_ids(campaign, min_p=4)
    assert len(loaded) == len(kept)
    messages = loaded[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    item = campaign.items[0]
    user = messages[1]["content"]
    assert "Post: =HYPERLINK" in user
    assert f"Image description: A photo that goes with {item.post.external_id}." in user
    assert "What does the user want to do after posting this?" in user  # xWant
    assert messages[2]["content"] == item.text


def test_alpaca_loads_with_datasets(campaign, tmp_path):
    import datasets

    path = export(campaign, tmp_path, "alpaca", "--kinds", "xIntent")
    loaded = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.column_names == ["instruction", "input", "output"]
    assert len(loaded) == 4
    example = loaded[1]
    item = campaign.items[4]
    assert example["instruction"].startswith("What did the user intend by posting this?")
    assert example["input"] == (
        f"Post: {item.post.text}\nImage description: A photo that goes with "
        f"{item.post.external_id}."
    )
    assert example["output"] == item.text


def test_cotpd_has_one_record_a_post(campaign, tmp_path):
    path = export(campaign, tmp_path, "cotpd", "--min-plausibility", "3")
    records = read_jsonl(path)
    kept = set(expected_ids(campaign, min_p=3))
    posts = {item.post.external_id for item in campaign.items if item.id in kept}
    assert [r["id"] for r in records] == sorted(posts, key=lambda p: int(p.split("-")[1]))
    second = next(r for r in records if r["id"] == campaign.items[3].post.external_id)
    assert second["caption"] == f"A photo that goes with {second['id']}."
    expected_kinds = [i.kind for i in campaign.items[3:6] if i.id in kept]
    assert list(second["knowledge"]) == expected_kinds
    assert second["knowledge"]["xWant"] == campaign.items[3].text


def test_label_studio_tasks_carry_annotations(campaign, tmp_path):
    path = export(campaign, tmp_path, "label-studio")
    tasks = json.loads(path.read_text())
    assert len(tasks) == 12
    task = tasks[11]
    assert task["data"]["item"] == campaign.items[11].text
    assert len(task["annotations"]) == 2
    result = task["annotations"][0]["result"]
    assert {r["from_name"] for r in result} == {"plausibility", "typicality"}
    assert result[0]["type"] == "rating" and "rating" in result[0]["value"]


def test_hf_folder_loads_from_disk_with_a_dataset_card(campaign, tmp_path):
    import datasets

    path = export(campaign, tmp_path, "hf", "--min-typicality", "3")
    loaded = datasets.load_from_disk(str(path))
    kept = expected_ids(campaign, min_t=3)
    assert loaded["item_id"] == kept
    card = (path / "README.md").read_text()
    assert f"- items: {len(kept)}" in card
    assert "| plausibility | ordinal |" in card
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["counts"]["items"] == len(kept)
    assert "data-00000-of-00001.arrow" in manifest["files"]


def test_empty_result_still_writes_readable_files(campaign, tmp_path):
    assert read_jsonl(export(campaign, tmp_path, "jsonl", "--min-plausibility", "6")) == []
    assert (
        pq.read_table(export(campaign, tmp_path, "parquet", "--min-plausibility", "6")).num_rows
        == 0
    )
    assert (
        json.loads(export(campaign, tmp_path, "label-studio", "--min-ratings", "9").read_text())
        == []
    )


def test_command_errors(campaign, tmp_path):
    with pytest.raises(CommandError, match="no campaign named"):
        call_command("export_dataset", "--campaign", "nope", "--format", "jsonl", "--output", "x")
    with pytest.raises(CommandError, match="unknown question"):
        export(campaign, tmp_path, "jsonl", "--min", "fluency=3")
    with pytest.raises(CommandError, match="QUESTION=NUMBER"):
        export(campaign, tmp_path, "jsonl", "--min", "plausibility")
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_goes_to_stderr(campaign, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    output = tmp_path / "with-bar.jsonl"
    call_command(
        "export_dataset", "--campaign", campaign.name, "--format", "jsonl",
        "--output", str(output), stdout=out, stderr=err,
    )  # fmt: skip
    assert "Wrote 12 items of 4 posts" in out.getvalue()
    assert "%" in err.getvalue() and "items=" in err.getvalue()
    assert len(read_jsonl(output)) == 12
