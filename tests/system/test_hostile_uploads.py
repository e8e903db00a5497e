"""Hostile uploads through the API and the upload page, run by the worker's task: zip bombs (by
ratio, and one whose headers lie about the size), zip-slip paths, images above the byte and pixel
caps, and files that only pretend to be images. Each job fails with a message, nothing is
imported, and nothing is written outside the job's own temporary folder.

The importers' own tests (tests/generation/test_import_*.py) check `images_zip_extract` and the
import command directly; these go through the doors a person or a script would use.
"""

import io
import json
import random
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation.models import ImportJob, Post
from generation.tasks import import_job_run_task
from tests.helpers import browser_login

pytestmark = pytest.mark.django_db


def _posts(image: str = "a.png") -> bytes:
    return (json.dumps({"id": "a", "text": "a post", "image": image}) + "\n").encode()


def _png(size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG", optimize=True)
    return out.getvalue()


def _noise_png(side: int) -> bytes:
    """A PNG that does not compress: side × side pixels of noise (fixed seed)."""
    out = io.BytesIO()
    noise = random.Random(0).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), noise).save(out, "PNG")
    return out.getvalue()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return out.getvalue()


def _lying_zip(name: str, data: bytes, declared: int) -> bytes:
    """A stored member whose local and central headers both claim `declared` bytes."""
    raw = bytearray(_zip({name: data}, zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.index(signature) + offset  # uncompressed size field
        struct.pack_into("<I", raw, at, declared)
    return bytes(raw)


def _files_outside(before: set[Path]) -> set[Path]:
    """Files that appeared in the temporary folder's parent during the import (zip-slip)."""
    return set(Path(tempfile.gettempdir()).glob("*evil*")) - before


def _api_upload(admin_api, posts: bytes, images: bytes | None) -> dict:
    data = {"file": SimpleUploadedFile("posts.jsonl", posts), "dataset": "hostile"}
    if images is not None:
        data["images_zip"] = SimpleUploadedFile("images.zip", images)
    response = admin_api.post("/api/imports/", data, format="multipart")
    assert response.status_code == 202, response.content
    import_job_run_task(job_id=response.json()["id"])  # what the worker does
    return admin_api.get(f"/api/imports/{response.json()['id']}/").json()


HOSTILE = {
    "zip bomb": (_posts(), _zip({"a.png": b"\0" * 10_000_000}), "zip bomb"),
    "zip-slip up": (_posts(), _zip({"../../evil.png": _png()}), "escapes the folder"),
    "zip-slip absolute": (
        _posts(),
        _zip({f"{tempfile.gettempdir()}/evil.png": _png()}),
        "escapes the folder",
    ),
    "zip-slip backslash": (_posts(), _zip({"..\\..\\evil.png": _png()}), "escapes the folder"),
    "image above the byte cap": (_posts(), _zip({"a.png": _noise_png(300)}), "image cap"),
    "image above the pixel cap": (_posts(), _zip({"a.png": _png((9000, 9000), "1")}), "pixels"),
    "text named .png": (_posts(), _zip({"a.png": b"<html>not an image</html>"}), "not a"),
    "svg with a script": (
        _posts(),
        _zip({"a.png": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'}),
        "not a",
    ),
    "truncated png": (_posts(), _zip({"a.png": _png((64, 64))[:60]}), "not a"),
    "image path leaving the zip": (_posts("../../etc/passwd"), _zip({"a.png": _png()}), "escapes"),
    "not a zip": (_posts(), b"PK\x03\x04 but not really a zip", "not a zip"),
}


@pytest.mark.parametrize(("posts", "images", "message"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_upload_fails_the_job_with_a_message(
    admin_api, settings, posts, images, message
) -> None:
    # Low caps, so that small files cross them; the zip bomb keeps the default byte cap, as a
    # member above the cap is refused before its ratio is looked at.
    if message != "zip bomb":
        settings.DISTILLERY_MAX_IMAGE_BYTES = 200_000
    settings.DISTILLERY_MAX_IMAGE_PIXELS = 10_000_000
    before = _files_outside(set())
    job = _api_upload(admin_api, posts, images)
    assert job["status"] == "failed", job
    assert message in job["error"], job["error"]
    assert not Post.objects.exists()
    assert not _files_outside(before)


def test_a_zip_whose_headers_lie_about_the_size_fails_the_job_with_a_message(admin_api) -> None:
    """It claims 100 bytes and holds a megabyte: no more than the claim is ever written."""
    images = _lying_zip("a.png", b"\0" * 1_000_000, declared=100)
    job = _api_upload(admin_api, _posts(), images)
    assert job["status"] == "failed"
    assert "images.zip" in job["error"] and "internal error" not in job["error"], job["error"]
    assert not Post.objects.exists()


def test_the_upload_page_refuses_the_same(admin_client) -> None:
    response = admin_client.post(
        "/imports/new/",
        {
            "new_dataset": "hostile",
            "format": "auto",
            "file": SimpleUploadedFile("posts.jsonl", _posts()),
            "images_zip": SimpleUploadedFile("images.zip", _zip({"../../evil.png": _png()})),
        },
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    import_job_run_task(job_id=job.pk)
    page = admin_client.get(response["Location"]).content.decode()
    assert "escapes the folder" in page
    assert not Post.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_zip_slip_upload_in_the_browser_shows_the_refusal(
    page, live_server, admin_user, tmp_path, monkeypatch
) -> None:
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)  # the worker runs in the request
    posts, archive = tmp_path / "posts.jsonl", tmp_path / "images.zip"
    posts.write_bytes(_posts())
    archive.write_bytes(_zip({"../../evil.png": _png()}))
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/imports/new/")
    page.fill("#id_new_dataset", "hostile")
    page.set_input_files("#id_file", str(posts))
    page.set_input_files("#id_images_zip", str(archive))
    page.click("button:has-text('Upload and import')")
    page.wait_for_selector("text=escapes the folder")
    assert not Post.objects.exists()


@pytest.mark.parametrize("name", ["a.html", "a.svg", "a.js", "a"])
def test_an_image_named_like_a_page_is_never_served_as_one(admin_api, admin_client, name) -> None:
    """A real PNG with a script after its end, named .html: Pillow reads it, so it is imported;
    it must be stored and served as the image it is, never as a page of this site."""
    polyglot = _png() + b"<script>alert(document.cookie)</script>"
    job = _api_upload(admin_api, _posts(name), _zip({name: polyglot}))
    assert job["status"] == "done", job
    stored = Post.objects.get().image.name
    assert stored.endswith(".png"), stored
    response = admin_client.get(f"/media/{stored}")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"


def _many_small_bombs() -> bytes:
    """The probe's zip: 300 members of 204,000 zero bytes, each just under the old per-member
    rule (200 × max(compressed, 1024)), about 650× the zip's size in all."""
    return _zip({f"{index}.png": b"\0" * 204_000 for index in range(300)})


def test_a_zip_of_many_small_bombs_is_refused_before_anything_is_extracted(
    admin_api, monkeypatch
) -> None:
    from generation.services import import_jobs

    written: list[Path] = []
    real = import_jobs.images_zip_extract

    def spy(*, archive: Path, target: Path, name: str) -> Path:
        try:
            return real(archive=archive, target=target, name=name)
        finally:
            written.extend(path for path in target.rglob("*") if path.exists())

    monkeypatch.setattr(import_jobs, "images_zip_extract", spy)
    images = _many_small_bombs()
    assert len(images) < 100_000
    job = _api_upload(admin_api, _posts("0.png"), images)
    assert job["status"] == "failed", job
    assert job["error"].startswith("refused: images.zip"), job["error"]
    assert "zip bomb" in job["error"]
    assert written == []
    assert not Post.objects.exists()


@pytest.mark.parametrize(
    "members",
    [{"x": _png(), "x/y.png": _png()}, {"x/y.png": _png(), "x": _png()}],
    ids=["file first", "folder first"],
)
def test_a_zip_holding_a_file_and_a_folder_of_one_name_fails_with_a_message(
    admin_api, members
) -> None:
    job = _api_upload(admin_api, _posts("x/y.png"), _zip(members))
    assert job["status"] == "failed", job
    assert job["error"].startswith("images.zip: 'x'"), job["error"]
    assert "both a file and a folder" in job["error"]
    assert not Post.objects.exists()


@pytest.mark.parametrize("image", ["a\x00.png", "a" * 5000 + ".png"], ids=["NUL", "too long"])
def test_an_image_name_the_file_system_refuses_fails_with_its_line(admin_api, image) -> None:
    job = _api_upload(admin_api, _posts(image), _zip({"a.png": _png()}))
    assert job["status"] == "failed", job
    assert job["error"].startswith("posts.jsonl:1: image "), job["error"]
    assert "internal error" not in job["error"]
    assert not Post.objects.exists()


def test_the_probes_zip_is_refused_from_its_directory_alone(tmp_path) -> None:
    from generation.importers import ImportFileError
    from generation.importers.archives import images_zip_extract

    archive = tmp_path / "images.zip"
    archive.write_bytes(_many_small_bombs())
    with pytest.raises(ImportFileError, match=r"^refused: images.zip would expand to 61200000 "):
        images_zip_extract(archive=archive, target=tmp_path / "images")
    assert not (tmp_path / "images").exists()


def test_the_caps_on_a_zip_are_settings(tmp_path, settings) -> None:
    from generation.importers import ImportFileError
    from generation.importers.archives import images_zip_extract

    archive = tmp_path / "images.zip"
    archive.write_bytes(_zip({"a.png": _png(), "b.png": _png(), "c.png": _png()}))
    settings.DISTILLERY_ZIP_MAX_FILES = 2
    with pytest.raises(ImportFileError, match=r"^refused: images.zip holds 3 files"):
        images_zip_extract(archive=archive, target=tmp_path / "images")
    settings.DISTILLERY_ZIP_MAX_FILES = 3
    settings.DISTILLERY_ZIP_MAX_BYTES = 100
    with pytest.raises(ImportFileError, match=r"^refused: .* above DISTILLERY_ZIP_MAX_BYTES"):
        images_zip_extract(archive=archive, target=tmp_path / "images")
    assert not (tmp_path / "images").exists()
    settings.DISTILLERY_ZIP_MAX_BYTES = 10_000
    assert {
        path.name
        for path in images_zip_extract(archive=archive, target=tmp_path / "images").iterdir()
    } == {"a.png", "b.png", "c.png"}


def test_members_claiming_more_compressed_bytes_than_the_zip_holds_gain_nothing(tmp_path) -> None:
    """The ratio's compressed side is at most the archive's own size, whatever members claim."""
    from generation.importers import ImportFileError
    from generation.importers.archives import images_zip_extract

    raw = bytearray(_many_small_bombs())
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:  # central directory: compressed size
        struct.pack_into("<I", raw, at + 20, 10_000_000)
        at += 4
    archive = tmp_path / "images.zip"
    archive.write_bytes(bytes(raw))
    with pytest.raises(ImportFileError, match=r"^refused: .* a zip bomb"):
        images_zip_extract(archive=archive, target=tmp_path / "images")
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize(("field", "value"), [(6, 1), (8, 99)], ids=["encrypted", "method 99"])
def test_a_member_zipfile_cannot_read_is_refused_with_a_message(tmp_path, field, value) -> None:
    """Flags (offset 6: encrypted) or compression method (8) in both headers."""
    from generation.importers import ImportFileError
    from generation.importers.archives import images_zip_extract

    raw = bytearray(_zip({"a.png": _png()}, zipfile.ZIP_STORED))
    struct.pack_into("<H", raw, raw.index(b"PK\x03\x04") + field, value)
    struct.pack_into("<H", raw, raw.index(b"PK\x01\x02") + field + 2, value)
    archive = tmp_path / "images.zip"
    archive.write_bytes(bytes(raw))
    with pytest.raises(ImportFileError, match=r"^images.zip: 'a.png' is damaged or not what"):
        images_zip_extract(archive=archive, target=tmp_path / "images")
