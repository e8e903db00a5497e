"""Endpoints by command, page and API: bad input, permissions, and no API key ever shown."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.models import Endpoint
from generation.services.endpoints import endpoint_create

pytestmark = pytest.mark.django_db


def test_endpoint_add_command_creates_openai_and_transformers_endpoints(capsys) -> None:
    call_command(
        "endpoint_add",
        "gpt",
        "--backend",
        "openai",
        "--base-url",
        "http://127.0.0.1:8100/v1",
        "--model",
        "gpt-4o-mini",
        "--api-key-env",
        "OPENAI_API_KEY",
        "--concurrency",
        "8",
        "--no-check",
    )
    call_command(
        "endpoint_add",
        "llava",
        "--backend",
        "transformers",
        "--model-path",
        "/models/llava",
        "--model",
        "llava-1.5",
        "--no-check",
    )
    gpt = Endpoint.objects.get(name="gpt")
    assert (gpt.backend, gpt.base_url, gpt.model) == (
        "openai",
        "http://127.0.0.1:8100/v1",
        "gpt-4o-mini",
    )
    assert (gpt.api_key_env, gpt.concurrency) == ("OPENAI_API_KEY", 8)
    llava = Endpoint.objects.get(name="llava")
    assert (llava.model_path, llava.concurrency) == ("/models/llava", 32)
    out = capsys.readouterr().out
    assert "Endpoint gpt" in out and "added without testing its connection." in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "openai", "--model-path", "/m", "--model", "m"], "base URL"),
        (["--backend", "transformers", "--base-url", "http://x/v1", "--model", "m"], "model path"),
        (["--backend", "openai", "--base-url", "not a url", "--model", "m"], "valid"),
        (
            [
                "--backend",
                "openai",
                "--base-url",
                "http://x/v1",
                "--model",
                "m",
                "--concurrency",
                "0",
            ],
            "at least 1",
        ),
        (
            [
                "--backend",
                "openai",
                "--base-url",
                "http://x/v1",
                "--model",
                "m",
                "--api-key-env",
                "sk-123 secret",
            ],
            "environment variable",
        ),
    ],
)
def test_endpoint_add_command_refuses_bad_input(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("endpoint_add", "bad", *args)
    assert not Endpoint.objects.exists()


def test_endpoint_add_command_refuses_a_duplicate_name() -> None:
    endpoint_create(name="gpt", backend="openai", base_url="http://x/v1", model="m")
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "endpoint_add",
            "gpt",
            "--backend",
            "openai",
            "--base-url",
            "http://y/v1",
            "--model",
            "m",
        )


def test_endpoint_add_needs_exactly_one_location() -> None:
    with pytest.raises(CommandError):
        call_command("endpoint_add", "x", "--backend", "openai", "--model", "m")


def test_api_creates_lists_updates_and_deletes_endpoints(
    admin_api, fake_server, monkeypatch
) -> None:
    monkeypatch.setenv("DISTILLERY_KEY_LOCAL", "sk-local")
    response = admin_api.post(
        "/api/endpoints/",
        {
            "name": "local",
            "backend": "openai",
            "base_url": fake_server.base_url,
            "model": "fake-model",
            "api_key_env": "DISTILLERY_KEY_LOCAL",
            "requests_per_minute": 600,
            "parameters": {"temperature": 0.2},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    endpoint_id = response.json()["id"]
    assert response.json()["api_key_env"] == "DISTILLERY_KEY_LOCAL"
    assert response.json()["connection"]["ok"] is True
    assert fake_server.last_api_key is None  # the models list, not a chat call
    listed = admin_api.get("/api/endpoints/").json()
    assert [e["name"] for e in listed] == ["local"]
    response = admin_api.patch(f"/api/endpoints/{endpoint_id}/", {"concurrency": 4}, format="json")
    assert response.status_code == 200 and response.json()["concurrency"] == 4
    assert admin_api.delete(f"/api/endpoints/{endpoint_id}/").status_code == 204
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "x", "backend": "openai", "model": "m"}, "base_url"),
        ({"name": "x", "backend": "mystery", "base_url": "http://x/v1", "model": "m"}, "backend"),
        (
            {
                "name": "x",
                "backend": "openai",
                "base_url": "http://x/v1",
                "model": "m",
                "concurrency": 0,
            },
            "concurrency",
        ),
        (
            {
                "name": "x",
                "backend": "openai",
                "base_url": "http://x/v1",
                "model": "m",
                "parameters": {"temp": 1},
            },
            "parameters",
        ),
        (
            {"name": "has space", "backend": "openai", "base_url": "http://x/v1", "model": "m"},
            "name",
        ),
    ],
)
def test_api_refuses_bad_endpoints(admin_api, payload, field) -> None:
    response = admin_api.post("/api/endpoints/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Endpoint.objects.exists()


def test_api_key_value_is_never_returned_or_shown(admin_api, admin_client, monkeypatch) -> None:
    monkeypatch.setenv("DISTILLERY_KEY_SECRET_TEST", "sk-very-secret-value")
    endpoint_create(
        name="gpt",
        backend="openai",
        base_url="http://x/v1",
        model="m",
        api_key_env="DISTILLERY_KEY_SECRET_TEST",
    )
    api_text = admin_api.get("/api/endpoints/").content.decode()
    page_text = admin_client.get(reverse("generation:endpoint-list")).content.decode()
    for text in (api_text, page_text):
        assert "DISTILLERY_KEY_SECRET_TEST" in text
        assert "sk-very-secret-value" not in text


def test_pages_add_and_edit_an_endpoint(admin_client, fake_server) -> None:
    response = admin_client.post(
        reverse("generation:endpoint-new"),
        {
            "name": "vllm",
            "backend": "openai",
            "base_url": fake_server.base_url,
            "model": "fake-model",
            "concurrency": 16,
        },
        follow=True,
    )
    assert response.redirect_chain[-1][1] == 302
    assert "Endpoint vllm added. Connected to 127.0.0.1:" in response.content.decode()
    endpoint = Endpoint.objects.get(name="vllm")
    response = admin_client.post(
        reverse("generation:endpoint-edit", args=[endpoint.pk]),
        {
            "parameters": '{"temperature": 0.5, "timeout": 30}',
            "name": "vllm",
            "backend": "openai",
            "base_url": "http://127.0.0.1:9000/v1",
            "model": "llama-3",
            "concurrency": 16,
            "save_without_connection": "on",
        },
    )
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.model == "llama-3"
    assert endpoint.parameters == {"temperature": 0.5, "timeout": 30}
    assert "vllm" in admin_client.get(reverse("generation:endpoint-list")).content.decode()


def test_page_form_shows_errors_for_bad_input(admin_client) -> None:
    response = admin_client.post(
        reverse("generation:endpoint-new"),
        {
            "name": "bad",
            "backend": "transformers",
            "base_url": "",
            "model_path": "",
            "model": "m",
            "concurrency": 1,
        },
    )
    assert response.status_code == 400
    assert "needs a model path" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_annotators_can_neither_see_nor_change_endpoints(annotator_client, annotator_api) -> None:
    endpoint = endpoint_create(name="gpt", backend="openai", base_url="http://x/v1", model="m")
    for url in (
        reverse("generation:endpoint-list"),
        reverse("generation:endpoint-new"),
        reverse("generation:endpoint-edit", args=[endpoint.pk]),
    ):
        assert annotator_client.get(url).status_code == 403
    assert (
        annotator_client.post(reverse("generation:endpoint-delete", args=[endpoint.pk])).status_code
        == 403
    )
    assert annotator_api.get("/api/endpoints/").status_code == 403
    assert annotator_api.get(f"/api/endpoints/{endpoint.pk}/").status_code == 403
    payload = {"name": "y", "backend": "openai", "base_url": "http://x/v1", "model": "m"}
    assert annotator_api.post("/api/endpoints/", payload, format="json").status_code == 403
    assert Endpoint.objects.count() == 1


# --- issue 13, point 4: numbers too big for the database are a clear error, never a 500 ---------

HUGE = 10**30


@pytest.mark.parametrize("field", ["concurrency", "requests_per_minute"])
def test_api_refuses_numbers_out_of_bounds(admin_api, field) -> None:
    payload = {"name": "x", "backend": "openai", "base_url": "http://x/v1", "model": "m"}
    response = admin_api.post("/api/endpoints/", {**payload, field: HUGE}, format="json")
    assert response.status_code == 400 and "less than or equal to" in response.json()[field][0]
    endpoint = endpoint_create(**payload)
    response = admin_api.patch(f"/api/endpoints/{endpoint.pk}/", {field: HUGE}, format="json")
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize("field", ["concurrency", "requests_per_minute"])
def test_page_refuses_numbers_out_of_bounds(admin_client, field) -> None:
    data = {"name": "x", "backend": "openai", "base_url": "http://x/v1", "model": "m"}
    response = admin_client.post(
        reverse("generation:endpoint-new"), {"concurrency": 1, **data, field: str(HUGE)}
    )
    assert response.status_code == 400 and not Endpoint.objects.exists()
    assert "less than or equal to" in response.context["form"].errors[field][0]


@pytest.mark.parametrize(
    "option, message",
    [("--concurrency", "Concurrency must be"), ("--requests-per-minute", "Requests per minute")],
)
def test_command_refuses_numbers_out_of_bounds(option, message) -> None:
    with pytest.raises(CommandError, match=f"{message}.*at most"):
        call_command(
            "endpoint_add", "x", "--backend=openai", "--base-url=http://x/v1", "--model=m",
            option, str(HUGE),
        )  # fmt: skip
    assert not Endpoint.objects.exists()


def test_the_service_refuses_numbers_out_of_bounds() -> None:
    with pytest.raises(ValidationError) as error:
        endpoint_create(
            name="x",
            backend="openai",
            base_url="http://x/v1",
            model="m",
            concurrency=HUGE,
            requests_per_minute=HUGE,
        )
    assert set(error.value.message_dict) == {"concurrency", "requests_per_minute"}
