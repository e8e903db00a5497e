"""Uploads: the job service, the background task, zips of images, the API and the upload page."""

import io
import json
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation.importers import ImportFileError
from generation.importers.archives import images_zip_extract
from generation.models import ImportJob, KnowledgeItem, Post
from generation.services.import_jobs import import_job_create
from generation.tasks import import_job_run_task

pytestmark = pytest.mark.django_db

LINES = [
    {
        "id": "a",
        "text": "sunny beach",
        "image": "a.jpg",
        "items": [{"kind": "xWant", "text": "to swim"}],
    },
    {"id": "b", "text": "rainy city", "image": "missing.jpg"},
]


def jsonl(lines=LINES) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), "blue").save(out, "JPEG")
    return out.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return out.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def test_upload_runs_in_the_background_with_images(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        job = import_job_create(
            file=upload("posts.jsonl", jsonl()),
            images_zip=upload("images.zip", zipped({"pics/a.jpg": jpeg()})),
            dataset_name="uploaded",
            created_by=admin_user,
        )
    assert job.status == "queued" and len(callbacks) == 1
    assert not Post.objects.exists()
    import_job_run_task(job_id=job.pk)  # what the worker runs
    job.refresh_from_db()
    assert (job.status, job.percent, job.posts_created, job.items_created) == ("done", 100, 2, 1)
    assert job.dataset.name == "uploaded"
    assert any("missing.jpg" in warning and ":2:" in warning for warning in job.warnings)
    assert Post.objects.get(external_id="a").image
    import_job_run_task(job_id=job.pk)  # a second delivery does nothing
    assert Post.objects.count() == 2


def test_failed_upload_keeps_the_message_and_changes_nothing(admin_user):
    job = import_job_create(
        file=upload("broken.jsonl", jsonl() + b'{"id": "c"}\n'),
        dataset_name="uploaded",
        created_by=admin_user,
    )
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error.endswith("broken.jsonl:3: missing field 'text'")
    assert not Post.objects.exists() and not KnowledgeItem.objects.exists()


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.jpg": b"x"}, "'../evil.jpg' escapes the folder"),
        ({"/etc/evil.jpg": b"x"}, "'/etc/evil.jpg' escapes the folder"),
        ({"pics/../../evil.jpg": b"x"}, "escapes the folder"),
        ({"bomb.jpg": b"\0" * 8_000_000}, "a zip bomb"),
    ],
)
def test_unsafe_zips_are_refused(tmp_path, members, message):
    archive = tmp_path / "images.zip"
    archive.write_bytes(zipped(members))
    with pytest.raises(ImportFileError, match=message):
        images_zip_extract(archive=archive, target=tmp_path / "out")
    assert not (tmp_path / "evil.jpg").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_links_and_non_zips_are_refused(tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = 0o120777 << 16
        bundle.writestr(link, "/etc/passwd")
    with pytest.raises(ImportFileError, match="'link.jpg' is a link"):
        images_zip_extract(archive=archive, target=tmp_path / "out")
    (tmp_path / "plain.zip").write_text("not a zip")
    with pytest.raises(ImportFileError, match="not a zip file"):
        images_zip_extract(archive=tmp_path / "plain.zip", target=tmp_path / "out2")


def test_upload_with_unsafe_zip_fails_the_job(admin_user):
    job = import_job_create(
        file=upload("posts.jsonl", jsonl()),
        images_zip=upload("images.zip", zipped({"../evil.jpg": jpeg()})),
        dataset_name="uploaded",
    )
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "escapes the folder" in job.error
    assert not Post.objects.exists()


def test_api_upload_and_progress(admin_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        response = admin_api.post(
            "/api/imports/",
            {"file": upload("posts.jsonl", jsonl()), "dataset": "api", "format": "jsonl"},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    job = response.json()
    assert job["status"] == "queued" and job["percent"] == 0
    import_job_run_task(job_id=job["id"])
    done = admin_api.get(f"/api/imports/{job['id']}/").json()
    assert (done["status"], done["percent"], done["posts_created"]) == ("done", 100, 2)
    assert done["dataset"] == Post.objects.first().dataset_id


def test_api_upload_refuses_bad_input(admin_api):
    response = admin_api.post(
        "/api/imports/",
        {"file": upload("p.jsonl", jsonl()), "dataset": "x", "format": "xml"},
        format="multipart",
    )
    assert response.status_code == 400 and "format" in response.json()
    response = admin_api.post("/api/imports/", {"dataset": "x"}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()
    assert not ImportJob.objects.exists()


def test_annotators_cannot_upload(annotator_api, annotator_client):
    response = annotator_api.post(
        "/api/imports/", {"file": upload("p.jsonl", jsonl()), "dataset": "x"}, format="multipart"
    )
    assert response.status_code == 403
    assert annotator_client.get("/imports/new/").status_code == 403
    job = ImportJob.objects.create(dataset_name="x", file=upload("p.jsonl", b""))
    assert annotator_api.get(f"/api/imports/{job.pk}/").status_code == 403
    assert annotator_client.get(f"/imports/{job.pk}/").status_code == 403
    assert not Post.objects.exists()


def test_upload_page_and_job_page_with_its_polling_partial(
    admin_client, django_capture_on_commit_callbacks
):
    assert b"Upload and import" in admin_client.get("/imports/new/").content
    with django_capture_on_commit_callbacks():
        response = admin_client.post(
            "/imports/new/",
            {"new_dataset": "page", "format": "auto", "file": upload("posts.jsonl", jsonl())},
        )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/imports/{job.pk}/"
    page = admin_client.get(f"/imports/{job.pk}/").content.decode()
    assert "Waiting for a worker" in page and 'hx-trigger="every 1s"' in page
    import_job_run_task(job_id=job.pk)
    partial = admin_client.get(f"/imports/{job.pk}/", headers={"HX-Request": "true"})
    text = partial.content.decode()
    assert "<html" not in text and "hx-trigger" not in text  # finished: polling stops
    assert "2 posts and 1 items imported" in text and "100%" in text


def test_upload_form_errors(admin_client):
    response = admin_client.post("/imports/new/", {"dataset": "", "format": "auto"})
    assert response.status_code == 200
    assert b"This field is required." in response.content
    assert not ImportJob.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_while_the_import_runs(admin_user, monkeypatch):
    """On PostgreSQL the job's progress is committed apart from the import's transaction."""
    import threading
    import time

    from django.db import connection

    from generation.services import imports

    monkeypatch.setattr(imports, "CHUNK_POSTS", 500)
    lines = [{"id": str(n), "text": f"post {n}"} for n in range(150_000)]
    # Queued as import_job_create queues it (without a broker to hand it to in this test).
    job = ImportJob.objects.create(
        dataset_name="big", file=ContentFile(jsonl(lines), name="big.jsonl"), created_by=admin_user
    )

    def work() -> None:  # a worker: runs the task, then closes its connection
        try:
            import_job_run_task(job_id=job.pk)
        finally:
            connection.close()

    runner = threading.Thread(target=work)
    runner.start()
    seen = set()
    while runner.is_alive():
        job.refresh_from_db()
        if job.status == "running" and 0 < job.percent < 100:
            seen.add(job.percent)
        time.sleep(0.05)
    runner.join()
    job.refresh_from_db()
    assert job.status == "done" and job.posts_created == 150_000
    assert seen, "no progress was visible before the import ended"
