"""An upload keeps the split its source file gives its posts, as `import_posts --split` does: the
upload form's Split field (suggesting the usual names and the dataset's own), `split` of
`POST /api/imports/`, the job's page; a bad name is refused before a job exists, and a post already
in another split fails the job with nothing imported."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation.models import ImportJob, Post
from generation.services.import_jobs import import_job_create
from generation.tasks import import_job_run_task
from students.models import PostSplit, SplitAssignment
from students.services import splits_draw
from tests.factories import DatasetFactory, PostFactory

pytestmark = pytest.mark.django_db


def posts_file(*ids: str, name: str = "train.jsonl") -> SimpleUploadedFile:
    lines = "".join(json.dumps({"id": i, "text": f"text of {i}"}) + "\n" for i in ids)
    return SimpleUploadedFile(name, lines.encode())


def splits() -> dict[str, str]:
    return dict(PostSplit.objects.values_list("post__external_id", "name"))


def run(job: ImportJob) -> ImportJob:
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_the_page_offers_the_usual_split_names_and_the_datasets_own(admin_client) -> None:
    harbour = DatasetFactory(name="harbour")
    PostFactory.create_batch(4, dataset=harbour)
    splits_draw(dataset=harbour, fractions={"held": 0.5, "rest": 0.5}, seed=1)
    page = admin_client.get("/imports/new/?dataset=harbour")
    assert page.context["split_names"] == ["train", "dev", "test", "held", "rest"]
    text = page.content.decode()
    assert 'list="split-names"' in text and '<option value="held">' in text
    assert admin_client.get("/imports/new/").context["split_names"] == ["train", "dev", "test"]


def test_an_upload_through_the_page_keeps_its_split(admin_client) -> None:
    response = admin_client.post(
        "/imports/new/",
        {"new_dataset": "mnre", "format": "auto", "file": posts_file("a", "b"), "split": " train "},
    )
    assert response.status_code == 302
    job = run(ImportJob.objects.get())
    assert (job.status, job.split) == ("done", "train")
    assert splits() == {"a": "train", "b": "train"}
    assignment = SplitAssignment.objects.get()
    assert assignment.source == "import" and assignment.origin.endswith(".jsonl")
    page = admin_client.get(f"/imports/{job.pk}/").content.decode()
    assert '<span id="import-split">train</span>' in page


@pytest.mark.parametrize("split", ["no good", "-x", "x" * 51])
def test_the_page_refuses_a_bad_split_name_before_a_job_exists(admin_client, split) -> None:
    response = admin_client.post(
        "/imports/new/",
        {"new_dataset": "mnre", "format": "auto", "file": posts_file("a"), "split": split},
    )
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["split"])
    assert "a split name is" in errors or "at most 50 characters" in errors
    assert not ImportJob.objects.exists() and not Post.objects.exists()


def test_a_post_already_in_another_split_fails_the_job_and_imports_nothing() -> None:
    run(import_job_create(file=posts_file("a", "b"), dataset_name="m", split="train"))
    job = run(
        import_job_create(
            file=posts_file("b", "c", name="test.jsonl"), dataset_name="m", split="test"
        )
    )
    assert job.status == "failed"
    assert job.error == "1 post(s) are already in another split than 'test': b"
    assert not Post.objects.filter(external_id="c").exists()
    assert splits() == {"a": "train", "b": "train"}


def test_the_api_takes_a_split(admin_api) -> None:
    def post(**extra):
        data = {"file": posts_file("a"), "dataset": "d", **extra}
        return admin_api.post("/api/imports/", data, format="multipart")

    refused = post(split="no good")
    assert refused.status_code == 400
    assert refused.json()["split"][0].startswith("a split name is")
    assert not ImportJob.objects.exists()
    answer = post(split="dev")
    assert answer.status_code == 202 and answer.json()["split"] == "dev"
    run(ImportJob.objects.get())
    assert splits() == {"a": "dev"}
    assert post().json()["split"] == ""
