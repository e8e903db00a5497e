"""Issue 14: the upload form picks an existing dataset or names a new one on purpose, a file of no
known format is refused at once in the browser's words, a failed job shows its failure instead of
a progress bar, and a finished job says what became of the images."""

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generation.importers import FORMATS, ImportFileError
from generation.models import Dataset, ImportJob, Post
from generation.services.import_jobs import import_job_create
from generation.tasks import import_job_run_task
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db

POSTS = [
    {"id": "a", "text": "sunny beach", "image": "a.jpg"},
    {"id": "b", "text": "rainy city", "image": "b.jpg"},
    {"id": "c", "text": "no picture"},
]


def posts_file(name: str = "posts.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "".join(json.dumps(p) + "\n" for p in POSTS).encode())


def images_zip(*names: str) -> SimpleUploadedFile:
    image = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(image, "JPEG")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as bundle:
        for name in names:
            bundle.writestr(name, image.getvalue())
    return SimpleUploadedFile("images.zip", out.getvalue())


NOT_A_FORMAT = b"hello, this is a note\nand not posts\n"


# --- the service ---------------------------------------------------------------------------------


def test_auto_is_resolved_at_upload_and_an_unknown_shape_refused() -> None:
    job = import_job_create(file=posts_file(), dataset_name="d")
    assert job.format == "jsonl"
    with pytest.raises(ImportFileError) as error:
        import_job_create(file=SimpleUploadedFile("note.txt", NOT_A_FORMAT), dataset_name="d")
    assert error.value.field == "format"
    assert error.value.message == (
        "note.txt:1: cannot tell the format from the content; choose one with `format` "
        f"({', '.join(FORMATS)})"
    )
    assert ImportJob.objects.count() == 1
    with pytest.raises(ImportFileError, match="the file is empty"):
        import_job_create(file=SimpleUploadedFile("empty.jsonl", b""), dataset_name="d")


def test_the_dataset_must_be_new_or_must_exist_when_asked() -> None:
    DatasetFactory(name="harbour")
    with pytest.raises(ImportFileError, match="A dataset named 'harbour' already exists."):
        import_job_create(file=posts_file(), dataset_name="harbour", create_dataset=True)
    with pytest.raises(ImportFileError, match="There is no dataset named 'harbor'."):
        import_job_create(file=posts_file(), dataset_name="harbor", create_dataset=False)
    assert not ImportJob.objects.exists()
    assert import_job_create(file=posts_file(), dataset_name="harbour", create_dataset=False)
    assert import_job_create(file=posts_file(), dataset_name="new", create_dataset=True)
    assert import_job_create(file=posts_file(), dataset_name="either")  # the API's default


def test_a_finished_job_says_what_became_of_the_images() -> None:
    job = import_job_create(file=posts_file(), dataset_name="d", images_zip=images_zip("a.jpg"))
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done"
    assert job.warnings[0] == "Images: 1 imported, 1 missing (not in the zip), 0 rejected."
    assert "image 'b.jpg' not found" in job.warnings[1]
    job = import_job_create(file=posts_file(), dataset_name="e")
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert job.warnings[0] == (
        "Images: 0 imported, 2 not imported (no images zip was uploaded), 0 rejected."
    )


def test_a_file_naming_no_image_has_no_images_line() -> None:
    file = SimpleUploadedFile("p.jsonl", b'{"id": "1", "text": "t"}\n')
    job = import_job_create(file=file, dataset_name="d")
    import_job_run_task(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.warnings == []


# --- the API -------------------------------------------------------------------------------------


def test_api_refuses_a_file_of_no_known_format_at_once(admin_api) -> None:
    response = admin_api.post(
        "/api/imports/",
        {"file": SimpleUploadedFile("note.txt", NOT_A_FORMAT), "dataset": "d"},
        format="multipart",
    )
    assert response.status_code == 400
    assert "choose one with `format`" in response.json()["format"][0]
    assert "--format" not in response.json()["format"][0]
    assert not ImportJob.objects.exists()


def test_api_create_dataset(admin_api) -> None:
    DatasetFactory(name="harbour")

    def post(**extra):
        data = {"file": posts_file(), **extra}
        return admin_api.post("/api/imports/", data, format="multipart")

    response = post(dataset="harbor", create_dataset="false")
    assert response.status_code == 400
    assert response.json() == {"dataset": ["There is no dataset named 'harbor'."]}
    response = post(dataset="harbour", create_dataset="true")
    assert response.status_code == 400 and "already exists" in response.json()["dataset"][0]
    response = post(dataset="harbour", create_dataset="maybe")
    assert response.status_code == 400 and "create_dataset" in response.json()
    assert not ImportJob.objects.exists()
    assert post(dataset="harbour", create_dataset="false").status_code == 202
    assert post(dataset="harbor").status_code == 202  # unset: created when new


# --- the page ------------------------------------------------------------------------------------


def _upload(admin_client, **data):
    return admin_client.post("/imports/new/", {"format": "auto", "file": posts_file(), **data})


def test_page_offers_the_datasets_and_the_format_examples(admin_client) -> None:
    harbour = DatasetFactory(name="harbour")
    DatasetFactory(name="alps")
    response = admin_client.get("/imports/new/?dataset=harbour")
    form = response.context["form"]
    assert [d.name for d in form.fields["dataset"].queryset] == ["alps", "harbour"]
    assert form.initial["dataset"] == harbour
    text = response.content.decode()
    assert f'<option value="{harbour.pk}" selected>harbour</option>' in text
    for name in FORMATS:
        assert f'id="example-{name}"' in text
    assert "IMGID:1015799" in text  # twitter-conll's example


def test_page_uploads_into_a_chosen_or_a_new_dataset(admin_client) -> None:
    harbour = DatasetFactory(name="harbour")
    response = _upload(admin_client, dataset=harbour.pk)
    assert response.status_code == 302
    assert ImportJob.objects.get().dataset_name == "harbour"
    response = _upload(admin_client, new_dataset="  alps ")
    assert response.status_code == 302
    assert ImportJob.objects.latest("pk").dataset_name == "alps"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "dataset", "Choose a dataset, or name a new one in “New dataset”."),
        ({"new_dataset": "   "}, "dataset", "Choose a dataset, or name a new one"),
        ({"new_dataset": "harbour"}, "new_dataset", "A dataset named 'harbour' already exists."),
        ({"dataset": "HARBOUR", "new_dataset": "x"}, "dataset", "Select a valid choice."),
        ({"dataset": "99999999"}, "dataset", "Select a valid choice."),
        ({"dataset": "²"}, "dataset", "Select a valid choice."),
        ({"new_dataset": "x" * 201}, "new_dataset", "at most 200 characters"),
    ],
)
def test_page_refuses_an_unclear_dataset(admin_client, data, field, message) -> None:
    DatasetFactory(name="harbour")
    response = _upload(admin_client, **data)
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not ImportJob.objects.exists() and Dataset.objects.count() == 1


def test_page_refuses_both_a_chosen_and_a_new_dataset(admin_client) -> None:
    harbour = DatasetFactory(name="harbour")
    response = _upload(admin_client, dataset=harbour.pk, new_dataset="harbor")
    assert response.context["form"].errors["new_dataset"] == [
        "Choose the dataset harbour in the list or name a new one, not both."
    ]
    assert not ImportJob.objects.exists()


def test_page_says_to_choose_the_format_in_the_menu(admin_client) -> None:
    response = admin_client.post(
        "/imports/new/",
        {
            "new_dataset": "d",
            "format": "auto",
            "file": SimpleUploadedFile("note.txt", NOT_A_FORMAT),
        },
    )
    assert response.status_code == 200 and not ImportJob.objects.exists()
    [error] = response.context["form"].errors["format"]
    assert error == (
        "Cannot tell the format of note.txt from its content. Choose the format in the Format "
        f"menu ({', '.join(FORMATS)}; an example of each is below it), then choose the file again."
    )
    assert "--format" not in response.content.decode()


def test_a_failed_job_shows_the_failure_not_a_progress_bar(admin_client, admin_user) -> None:
    file = SimpleUploadedFile("broken.jsonl", b'{"id": "1", "text": "t"}\n{"id": "2"}\n')
    job = import_job_create(file=file, dataset_name="d", created_by=admin_user)
    import_job_run_task(job_id=job.pk)
    text = admin_client.get(f"/imports/{job.pk}/").content.decode()
    assert "broken.jsonl:2: missing field &#x27;text&#x27;" in text
    assert 'role="progressbar"' not in text and "% of" not in text
    assert not Post.objects.exists()


def test_a_done_job_page_lists_the_images(admin_client) -> None:
    job = import_job_create(file=posts_file(), dataset_name="d", images_zip=images_zip("a.jpg"))
    import_job_run_task(job_id=job.pk)
    response = admin_client.get(f"/imports/{job.pk}/")
    text = response.content.decode()
    assert "Images: 1 imported, 1 missing (not in the zip), 0 rejected." in text
    assert "1 warning<" in text  # the images line is not counted as a warning
