"""Broken input: each stops the import with `file:line: what is wrong` and changes nothing."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.importers import ImportFileError
from generation.models import Batch, Dataset, KnowledgeItem, Post, StageResult
from generation.services import imports
from generation.services.imports import posts_import
from tests.factories import PostFactory, make_image

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return tuple(
        model.objects.count() for model in (Dataset, Post, KnowledgeItem, Batch, StageResult)
    )


@pytest.fixture
def existing():
    """Something already in the database that a failed import must leave as it was."""
    PostFactory(dataset__name="d", external_id="old", text="old post")
    return snapshot()


def refused(path: Path, message: str, **options) -> str:
    before = snapshot()
    with pytest.raises(CommandError) as caught:
        call_command(
            "import_posts",
            str(path),
            dataset="d",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
            **options,
        )
    assert message in str(caught.value)
    assert snapshot() == before
    assert Post.objects.get(external_id="old").text == "old post"
    return str(caught.value)


def write_lines(path: Path, *lines) -> Path:
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


GOOD = {"id": "a", "text": "fine", "items": [{"kind": "xWant", "text": "to rest"}]}


def test_bad_json(tmp_path, existing):
    path = write_lines(tmp_path / "p.jsonl", GOOD, '{"id": "b", "text": ')
    refused(path, f"{path}:2: bad JSON: Expecting value", format="jsonl")


def test_missing_field(tmp_path, existing):
    path = write_lines(tmp_path / "p.jsonl", GOOD, {"id": "b"})
    refused(path, f"{path}:2: missing field 'text'", format="jsonl")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"id": "b", "text": 5}, "field 'text' must be str, not int"),
        ({"id": ["b"], "text": "x"}, "field 'id' must be str or int, not list"),
        ({"id": "b", "text": "x", "metadata": []}, "field 'metadata' must be dict, not list"),
        ({"id": "b", "text": "x", "items": [{"kind": 1, "text": "y"}]}, "field 'kind' must be str"),
        ({"id": True, "text": "x"}, "field 'id' must be str or int, not bool"),
    ],
)
def test_wrong_types(tmp_path, existing, line, message):
    path = write_lines(tmp_path / "p.jsonl", GOOD, line)
    refused(path, f"{path}:2: {message}")


def test_unknown_format(tmp_path, existing):
    path = write_lines(tmp_path / "p.jsonl", GOOD)
    refused(path, "unknown format 'xml'; choose one of auto, miko-pipeline, jsonl", format="xml")
    with pytest.raises(ImportFileError, match="unknown format 'xml'"):
        posts_import(path=path, dataset_name="d", format="xml")
    assert snapshot() == existing


def test_content_of_no_known_format(tmp_path, existing):
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\nnothing to import\n")
    refused(path, f"{path}:1: cannot tell the format from the content")


def test_duplicate_ids_in_a_file(tmp_path, existing):
    path = write_lines(
        tmp_path / "p.jsonl", GOOD, {"id": "b", "text": "x"}, {"id": "a", "text": "y"}
    )
    refused(path, f"{path}:3: duplicate id 'a' (first on line 1)")


def test_non_image_named_jpg(tmp_path, existing):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "fake.jpg").write_text("<html>not an image</html>")
    path = write_lines(tmp_path / "p.jsonl", {"id": "a", "text": "x", "image": "fake.jpg"})
    refused(path, f"{path}:1: 'fake.jpg' is not a readable image", images=tmp_path / "images")


@pytest.mark.parametrize("image", ["../secret.jpg", "/etc/secret.jpg", "sub/../../secret.jpg"])
def test_image_path_escaping_the_folder(tmp_path, existing, image):
    make_image(tmp_path / "secret.jpg")
    (tmp_path / "images" / "sub").mkdir(parents=True)
    path = write_lines(tmp_path / "p.jsonl", GOOD, {"id": "b", "text": "x", "image": image})
    refused(
        path,
        f"{path}:2: image path {image!r} escapes the images folder",
        images=tmp_path / "images",
    )


@pytest.mark.parametrize("fmt", ["auto", "jsonl", "miko-release", "twitter-conll", "csv"])
def test_empty_file(tmp_path, existing, fmt):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    refused(path, f"{path}:1: the file is empty", format=fmt)


def test_invalid_utf8(tmp_path, existing):
    path = tmp_path / "p.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"id": "b", "text": "caf\xe9"}\n')
    refused(path, f"{path}:2: not valid UTF-8 (byte 0xe9 at column 25)")


def test_oversized_line(tmp_path, existing, settings):
    settings.DISTILLERY_MAX_LINE_BYTES = 200
    path = write_lines(tmp_path / "p.jsonl", GOOD, {"id": "b", "text": "x" * 300})
    refused(path, f"{path}:2: line longer than 200 bytes; refused")


def test_oversized_image(tmp_path, existing, settings):
    settings.DISTILLERY_MAX_IMAGE_PIXELS = 100 * 100
    make_image(tmp_path / "big.png", size=(200, 100), fmt="PNG")
    path = write_lines(tmp_path / "p.jsonl", {"id": "a", "text": "x", "image": "big.png"})
    refused(path, "image 'big.png' has 200x100 pixels, above the cap of 10000", images=tmp_path)
    settings.DISTILLERY_MAX_IMAGE_BYTES = 10
    refused(path, f"{path}:1: image 'big.png' is", images=tmp_path)


def test_broken_json_array(tmp_path, existing):
    path = tmp_path / "release.json"
    path.write_text('[\n {"image": "1.jpg", "text": "x",\n  "intentions": {}\n ,\n]\n')
    refused(
        path,
        f"{path}: element 1 (line 2): bad JSON at line 5: Expecting property name",
        format="miko-release",
    )


def test_release_element_with_wrong_labels(tmp_path, existing):
    record = {
        "image": "1.jpg",
        "text": "x",
        "intentions": {"Intention 1": "a"},
        "intention_labels": [1, 2],
    }
    path = tmp_path / "release.json"
    path.write_text("[\n" + json.dumps(record) + "\n]\n")
    refused(path, f"{path}: post '1' (element 1, line 2): 'intention_labels' must be ten 0/1")


def test_bad_bio_tag_and_bad_mnre_line(tmp_path, existing):
    conll = tmp_path / "t.txt"
    conll.write_text("IMGID:1\nHello\tO\nWorld\tB_PER\n")
    refused(conll, f"{conll}:3: bad BIO tag 'B_PER'")
    mnre = tmp_path / "m.txt"
    mnre.write_text("{'token': ['a'], 'img_id': 'x.jpg'\n")
    refused(mnre, f"{mnre}:1: not a Python dict literal", format="mnre")


def test_failure_after_earlier_chunks_undoes_them_and_their_images(
    tmp_path, existing, monkeypatch, settings
):
    monkeypatch.setattr(imports, "CHUNK_POSTS", 2)
    for n in range(4):
        make_image(tmp_path / f"{n}.jpg")
    lines = [{"id": str(n), "text": "x", "image": f"{n}.jpg"} for n in range(4)]
    path = write_lines(tmp_path / "p.jsonl", *lines, {"id": "9"})
    refused(path, f"{path}:5: missing field 'text'", images=tmp_path)
    stored = Path(settings.MEDIA_ROOT) / "posts"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))


def test_two_items_in_one_slot(tmp_path, existing):
    items = [{"kind": "xWant", "text": "a", "position": 2}, {"kind": "xWant", "text": "b"}]
    path = write_lines(tmp_path / "p.jsonl", GOOD, {"id": "b", "text": "x", "items": items})
    refused(path, f"{path}:2: two items with the same kind and position")


def test_missing_images_folder_and_bad_dataset_name(tmp_path, existing):
    path = write_lines(tmp_path / "p.jsonl", GOOD)
    refused(path, "--images /nonexistent: not a folder", images="/nonexistent")
    with pytest.raises(ImportFileError, match="a dataset name of 1 to 200 characters"):
        posts_import(path=path, dataset_name="x" * 201)
    assert snapshot() == existing


def test_error_early_in_a_long_json_array_names_its_line(tmp_path, existing, settings):
    settings.DISTILLERY_MAX_LINE_BYTES = 10_000
    record = {
        "image": "1.jpg",
        "text": "x",
        "intentions": {"Intention 1": "a"},
        "intention_labels": [1] * 10,
    }
    body = ",\n".join(json.dumps(record | {"image": f"{n}.jpg"}, indent=1) for n in range(300))
    path = tmp_path / "release.json"
    path.write_text('[\n{"image": "0.jpg", "text": "x" "y"},\n' + body + "\n]\n")
    refused(
        path,
        f"{path}: element 1 (line 2): bad JSON: Expecting ',' delimiter (column 32)",
        format="miko-release",
    )


def test_oversized_array_element(tmp_path, existing, settings):
    settings.DISTILLERY_MAX_LINE_BYTES = 1000
    record = {
        "image": "1.jpg",
        "text": "x",
        "intentions": {f"Intention {n}": "y" * 150 for n in range(1, 11)},
        "intention_labels": [1] * 10,
    }
    path = tmp_path / "release.json"
    path.write_text("[\n" + json.dumps(record, indent=1) + "\n]\n")
    refused(path, f"{path}: element 1 (line 2): array element longer than 1000 bytes; refused")


def test_image_name_with_a_nul_byte(tmp_path, existing):
    (tmp_path / "images").mkdir()
    path = write_lines(tmp_path / "p.jsonl", GOOD, {"id": "b", "text": "x", "image": "a\0.jpg"})
    refused(
        path,
        f"{path}:2: image name 'a\\x00.jpg' holds a NUL character",
        images=tmp_path / "images",
    )
