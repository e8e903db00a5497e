"""In Chromium: upload a file, watch the import reach done, then page through the dataset."""

import io
import json
import zipfile

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from generation.models import Dataset, ImportJob, Post
from generation.tasks import import_job_run_task
from tests.helpers import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def posts_file(tmp_path, n: int = 25):
    lines = [
        {
            "id": str(i),
            "text": f"post number {i} at the harbour",
            "image": f"{i}.jpg",
            "items": [{"kind": "xWant", "text": f"to sail {i}"}],
        }
        for i in range(n)
    ]
    path = tmp_path / "harbour.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_upload_and_watch_the_import_finish(page, live_server, admin_user, tmp_path, monkeypatch):
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    archive = tmp_path / "images.zip"
    image = io.BytesIO()
    Image.new("RGB", (30, 20), "green").save(image, "JPEG")
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("images/0.jpg", image.getvalue())
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/datasets/")
    page.click("text=Upload posts")
    page.fill("#id_new_dataset", "harbour")
    page.set_input_files("#id_file", str(posts_file(tmp_path)))
    page.set_input_files("#id_images_zip", str(archive))
    page.click("button:has-text('Upload and import')")
    page.wait_for_selector("#import-status:has-text('done')")
    assert page.inner_text("#import-percent") == "100%"
    assert "25 posts and 25 items imported" in page.inner_text("#import-progress")
    assert "24 warnings" in page.inner_text("#import-progress")
    assert page.inner_text("#import-images") == (
        "Images: 1 imported, 24 missing (not in the zip), 0 rejected."
    )
    page.click("#import-progress a:has-text('harbour')")
    assert "Page 1 of 2" in page.inner_text("#posts")
    assert page.locator("#posts img.thumb").count() == 1
    page.click("#posts a:has-text('Next')")  # htmx swaps the posts in and pushes the URL
    page.wait_for_selector("#posts:has-text('Page 2 of 2')")
    assert page.url.endswith("?page=2")
    page.fill("#q", "number 7 ")
    page.press("#q", "Enter")
    page.wait_for_selector("#posts:has-text('1 post matching')")


def test_job_page_polls_until_done(page, live_server, admin_user, tmp_path):
    job = ImportJob.objects.create(
        dataset_name="harbour",
        format="jsonl",
        file=ContentFile(posts_file(tmp_path).read_bytes(), name="harbour.jsonl"),
        created_by=admin_user,
    )
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/imports/{job.pk}/")
    assert page.inner_text("#import-status") == "queued"
    import_job_run_task(job_id=job.pk)  # the worker picks it up while the page polls
    page.wait_for_selector("#import-status:has-text('done')")
    assert page.inner_text("#import-percent") == "100%"
    assert Post.objects.count() == 25


def test_failed_upload_shows_file_and_line(page, live_server, admin_user, tmp_path, monkeypatch):
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "text": "fine"}\n{"id": "2", "text": \n')
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/imports/new/")
    page.fill("#id_new_dataset", "broken")
    page.set_input_files("#id_file", str(broken))
    page.click("button:has-text('Upload and import')")
    page.wait_for_selector("#import-status:has-text('failed')")
    assert "broken.jsonl:2: bad JSON" in page.inner_text("#import-error")
    # The failure takes the progress bar's place (issue 14: it said "0% of 54 bytes read").
    assert page.locator("#import-progress [role=progressbar]").count() == 0
    assert "% of" not in page.inner_text("#import-progress")
    assert not Post.objects.exists()


def test_a_file_of_no_known_format_is_refused_in_the_forms_words(
    page, live_server, admin_user, tmp_path
):
    note = tmp_path / "note.txt"
    note.write_text("hello, this is a note\nand not posts\n")
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/imports/new/")
    page.fill("#id_new_dataset", "notes")
    page.set_input_files("#id_file", str(note))
    page.click("button:has-text('Upload and import')")
    error = page.inner_text("#id_format_error")
    assert "Cannot tell the format of note.txt from its content." in error
    assert "Choose the format in the Format menu (miko-pipeline, jsonl, miko-release" in error
    assert "--format" not in page.inner_text("main")
    assert page.locator("[role=progressbar]").count() == 0
    assert not ImportJob.objects.exists()
    # The examples beside the menu show what each format looks like.
    page.click("#format-examples summary")
    assert page.is_visible("#example-twitter-conll")
    assert "IMGID:1015799" in page.inner_text("#format-examples")
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    assert not [v["id"] for v in found if v["impact"] in ("serious", "critical")]


def test_the_dataset_is_picked_from_a_list_or_named_new_on_purpose(
    page, live_server, admin_user, tmp_path, monkeypatch
):
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
    Dataset.objects.create(name="harbour")
    browser_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/imports/new/")
    # A typo of an existing name is not a new dataset by itself: a new name is asked for apart.
    page.set_input_files("#id_file", str(posts_file(tmp_path, 2)))
    page.click("button:has-text('Upload and import')")
    assert "Choose a dataset, or name a new one" in page.inner_text("#id_dataset_error")
    page.fill("#id_new_dataset", "harbour")
    page.set_input_files("#id_file", str(posts_file(tmp_path, 2)))
    page.click("button:has-text('Upload and import')")
    assert "A dataset named 'harbour' already exists." in page.inner_text("#id_new_dataset_error")
    assert not ImportJob.objects.exists()
    page.fill("#id_new_dataset", "")
    page.select_option("#id_dataset", label="harbour")
    page.set_input_files("#id_file", str(posts_file(tmp_path, 2)))
    page.click("button:has-text('Upload and import')")
    page.wait_for_selector("#import-status:has-text('done')")
    assert (
        Dataset.objects.count() == 1 and Post.objects.filter(dataset__name="harbour").count() == 2
    )
