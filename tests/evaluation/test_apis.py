"""The evaluation API: admins read agreement and export; annotators and strangers cannot."""

import pytest

from evaluation.models import ExportJob
from evaluation.tasks import export_run_task
from tests.factories import annotators, campaign_create, posts_with_items, rate

PLAUSIBILITY = [[5, 4, 2, 5, 1, 3], [4, 4, 3, 5, 2, 3], [5, 3, 1, 4, 1, 2]]
TYPICALITY = [[4, 2, 3, 5, 1, 1], [3, 3, 3, 4, 2, 2], [4, 2, 3, 1, 1, 1]]


@pytest.fixture
def campaign(db):
    campaign = campaign_create(name="api-eval")
    items = posts_with_items(campaign, posts=2, kinds=["xWant", "xIntent", "open"])
    coders = annotators(3)
    rate(campaign, items, "plausibility", coders, PLAUSIBILITY)
    rate(campaign, items, "typicality", coders, TYPICALITY)
    return campaign


def test_admin_reads_agreement(admin_api, campaign):
    response = admin_api.get(f"/api/campaigns/{campaign.pk}/agreement/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "done" and body["stale"] is False
    plausibility = body["result"]["questions"]["plausibility"]
    assert plausibility["level"] == "ordinal" and plausibility["n_ratings"] == 18
    assert set(plausibility["kinds"]) == {"xWant", "xIntent", "open"}
    interval = admin_api.get(f"/api/campaigns/{campaign.pk}/agreement/?level=interval").json()
    assert interval["result"]["questions"]["typicality"]["level"] == "interval"
    assert admin_api.get(f"/api/campaigns/{campaign.pk}/agreement/?level=x").status_code == 400
    assert admin_api.get("/api/campaigns/999999/agreement/").status_code == 404


def test_admin_reads_annotator_statistics(admin_api, campaign):
    rows = admin_api.get(f"/api/campaigns/{campaign.pk}/annotators/").json()
    assert [r["annotator"] for r in rows] == ["coder0", "coder1", "coder2"]
    assert all(r["ratings"] == 12 for r in rows)
    assert all(r["agreement_with_rest"] is not None for r in rows)


def test_export_job_through_the_api(admin_api, campaign, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_api.post(
            "/api/exports/",
            {"campaign": campaign.pk, "format": "jsonl", "min_mean": {"plausibility": 4}},
            format="json",
        )
    assert response.status_code == 201, response.json()
    job = response.json()
    assert job["status"] == "queued" and job["download_url"] is None
    assert len(callbacks) == 1
    assert admin_api.get(f"/api/exports/{job['id']}/download/").status_code == 409

    export_run_task(job["id"])  # what the worker runs
    done = admin_api.get(f"/api/exports/{job['id']}/").json()
    assert done["status"] == "done" and done["percent"] == 100
    assert done["items_written"] == 2  # items 1 and 4 have plausibility means ≥ 4
    assert done["manifest"]["counts"]["items"] == 2
    download = admin_api.get(done["download_url"])
    assert download.status_code == 200
    content = b"".join(download.streaming_content)
    assert len(content.splitlines()) == 2
    import hashlib

    assert hashlib.sha256(content).hexdigest() == done["sha256"] == done["manifest"]["sha256"]
    listed = admin_api.get(f"/api/exports/?campaign={campaign.pk}").json()
    assert [j["id"] for j in listed["results"]] == [job["id"]]
    # Running the task again does nothing: the job is no longer queued.
    export_run_task(job["id"])
    assert ExportJob.objects.get(pk=job["id"]).sha256 == done["sha256"]


def test_hf_job_is_a_zip_of_the_dataset_folder(admin_api, campaign, tmp_path):
    import zipfile

    import datasets

    job = admin_api.post(
        "/api/exports/", {"campaign": campaign.pk, "format": "hf"}, format="json"
    ).json()
    export_run_task(job["id"])
    done = ExportJob.objects.get(pk=job["id"])
    assert done.status == "done", done.error
    with zipfile.ZipFile(done.file.path) as archive:
        archive.extractall(tmp_path / "unzipped")
    (folder,) = (tmp_path / "unzipped").iterdir()
    assert len(datasets.load_from_disk(str(folder))) == 6
    assert "# api-eval" in (folder / "README.md").read_text()


def test_export_input_is_validated(admin_api, campaign):
    bad_format = admin_api.post(
        "/api/exports/", {"campaign": campaign.pk, "format": "xlsx"}, format="json"
    )
    assert bad_format.status_code == 400 and "format" in bad_format.json()
    bad_question = admin_api.post(
        "/api/exports/",
        {"campaign": campaign.pk, "format": "csv", "min_mean": {"fluency": 3}},
        format="json",
    )
    assert bad_question.status_code == 400 and "fluency" in str(bad_question.json())
    assert ExportJob.objects.count() == 0


def test_failed_job_records_its_error(campaign):
    job = ExportJob.objects.create(
        campaign=campaign, format="jsonl", filters={"min_mean": {"x": 1}}
    )
    export_run_task(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "unknown question" in job.error and not job.file


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/campaigns/{c}/agreement/"),
        ("get", "/api/campaigns/{c}/annotators/"),
        ("get", "/api/exports/"),
        ("post", "/api/exports/"),
        ("get", "/api/exports/{j}/"),
        ("get", "/api/exports/{j}/download/"),
    ],
)
def test_annotators_and_strangers_are_refused(annotator_api, client, campaign, method, url):
    job = ExportJob.objects.create(campaign=campaign, format="jsonl", status="done")
    url = url.format(c=campaign.pk, j=job.pk)
    data = {"campaign": campaign.pk, "format": "jsonl"} if method == "post" else None
    assert getattr(annotator_api, method)(url, data, format="json").status_code == 403
    assert getattr(client, method)(url).status_code in (401, 403)


def test_annotator_speed_is_the_median_of_finished_posts(admin_api, campaign):
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import Assignment, Task
    from generation.models import Post

    coder = get_user_model().objects.get(username="coder0")
    now = timezone.now()
    for post, seconds in zip(Post.objects.all(), [10.0, 40.0], strict=True):
        task = Task.objects.create(campaign=campaign, post=post)
        Assignment.objects.create(
            campaign=campaign, task=task, post=post, annotator=coder,
            status=Assignment.Status.DONE, leased_at=now, expires_at=now + timedelta(minutes=5),
            completed_at=now, seconds_spent=seconds,
        )  # fmt: skip
    rows = {
        r["annotator"]: r for r in admin_api.get(f"/api/campaigns/{campaign.pk}/annotators/").json()
    }
    assert rows["coder0"]["posts_done"] == 2
    assert rows["coder0"]["median_seconds_per_post"] == 25.0
    assert rows["coder1"]["median_seconds_per_post"] is None
