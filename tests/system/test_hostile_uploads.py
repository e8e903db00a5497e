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
            "dataset": "hostile",
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
    page.fill("#id_dataset", "hostile")
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
