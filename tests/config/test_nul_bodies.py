"""A NUL in a form or multipart body, API or page, is a 400 naming the field, never a 500, and
stores nothing (PostgreSQL cannot store NULs); the generation forms answer a form error of their
own when they are given one."""

from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from generation.models import Batch, Endpoint, ImportJob
from generation.services.endpoints import endpoint_create
from generation.views.batches import BatchLaunchForm
from generation.views.datasets import ImportUploadForm
from tests.factories import DatasetFactory, PostFactory
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

NUL = "NUL characters are not allowed."
URLENCODED = "application/x-www-form-urlencoded"


@pytest.fixture
def launchable() -> dict:
    """A batch the API would launch: a dataset with a post, an endpoint, a pipeline."""
    PostFactory(dataset=DatasetFactory(name="d"))
    endpoint_create(name="e", backend="openai", base_url="http://127.0.0.1:9/v1", model="m")
    return {"dataset": "d", "pipeline": "miko", "endpoint": "e"}


def posts_file(name: str = "p.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b'{"id": "a", "text": "t"}\n')


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dataset": "d\x00"}, "dataset"),
        ({"pipeline": "mi\x00ko"}, "pipeline"),
        ({"limit\x00": "1"}, "limit\\x00"),  # in a field's name
    ],
)
def test_a_nul_in_a_multipart_or_urlencoded_api_body_is_a_400_naming_the_field(
    admin_client, launchable, change, field
) -> None:
    admin_client.raise_request_exception = False
    body = {**launchable, **change}
    answers = [
        admin_client.post("/api/batches/", body),  # multipart
        admin_client.post("/api/batches/", urlencode(body), URLENCODED),
    ]
    for answer in answers:
        assert answer.status_code == 400, answer.content
        assert answer.json() == {field: [NUL]}
    assert not Batch.objects.exists()


def test_a_nul_in_a_file_fields_name_is_a_400_and_a_files_name_loses_it(admin_client) -> None:
    answer = admin_client.post("/api/imports/", {"dataset": "d", "fi\x00le": posts_file()})
    assert answer.status_code == 400 and answer.json() == {"fi\\x00le": [NUL]}
    assert not ImportJob.objects.exists()
    # Django's multipart parser drops unprintable characters from an uploaded file's name.
    answer = admin_client.post("/api/imports/", {"dataset": "d", "file": posts_file("p\x00.jsonl")})
    assert answer.status_code == 202 and ImportJob.objects.get().file.name.endswith("p.jsonl")


def test_a_nul_in_a_multipart_patch_is_a_400(admin_client, launchable) -> None:
    endpoint = Endpoint.objects.get()
    answer = admin_client.patch(
        f"/api/endpoints/{endpoint.pk}/",
        encode_multipart(BOUNDARY, {"model": "m\x00"}),
        content_type=MULTIPART_CONTENT,
    )
    assert answer.status_code == 400 and answer.json() == {"model": [NUL]}
    endpoint.refresh_from_db()
    assert endpoint.model == "m"


def test_a_nul_is_refused_when_the_session_login_reads_the_body_first(admin_user, launchable):
    """With a session and its CSRF token, Django parses the multipart body for the token and DRF
    takes that parse instead of its own parsers: the fields are checked there too."""
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.login(username=admin_user.username, password=PASSWORD)
    client.get("/batches/new/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    body = {**launchable, "dataset": "d\x00", "csrfmiddlewaretoken": token}
    answer = client.post("/api/batches/", body)
    assert answer.status_code == 400 and answer.json() == {"dataset": [NUL]}
    assert not Batch.objects.exists()
    # Without the NUL the same request launches the batch.
    answer = client.post("/api/batches/", {**body, "dataset": "d"})
    assert answer.status_code == 201, answer.content


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_a_nul_in_a_page_form_is_a_400_naming_the_field(admin_client, launchable, encoding):
    body = {**launchable, "pipeline": "mi\x00ko"}
    if encoding == "multipart":
        answer = admin_client.post("/batches/new/", body)
    else:
        answer = admin_client.post("/batches/new/", urlencode(body), URLENCODED)
    assert answer.status_code == 400
    assert answer.content.decode() == (
        "NUL characters are not allowed in requests. The field 'pipeline' holds one."
    )
    assert not Batch.objects.exists()
    upload = admin_client.post(
        "/imports/new/", {"new_dataset": "a\x00b", "format": "auto", "file": posts_file()}
    )
    assert upload.status_code == 400 and b"'new_dataset'" in upload.content
    assert not ImportJob.objects.exists()


def test_the_generation_forms_answer_a_nul_with_a_form_error(launchable) -> None:
    upload = ImportUploadForm(
        data={"new_dataset": "a\x00b", "format": "auto", "split": "tr\x00ain"},
        files={"file": posts_file()},
    )
    assert not upload.is_valid()
    assert upload.errors["new_dataset"] == ["Null characters are not allowed."]
    assert upload.errors["split"] == ["Null characters are not allowed."]
    batch = BatchLaunchForm(data={**launchable, "dataset": "d\x00", "endpoint": "e\x00"})
    assert not batch.is_valid()
    assert set(batch.errors) == {"dataset", "endpoint"}
