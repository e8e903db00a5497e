"""Issue 14: an endpoint is tested when it is saved (service, API, command and page), and the
failure is said in plain words: connection refused, DNS, 401, timeout, model not served, a model
folder without a config. Saving anyway only when asked."""

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.backends.probe import connection_check
from generation.fake_openai import FakeOpenAIServer
from generation.models import Endpoint
from generation.services.endpoints import (
    endpoint_connection_test,
    endpoint_create,
    endpoint_update,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Silent:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]


@pytest.fixture
def silent() -> Iterator[_Silent]:
    server = _Silent()
    yield server
    server.sock.close()


class _NoModelsRoute(BaseHTTPRequestHandler):
    """A chat server without /models (404 there), as some OpenAI-compatible servers are."""

    def do_GET(self) -> None:
        self._answer(404, {"error": {"message": "Not Found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        if body["model"] != "served":
            self._answer(404, {"error": {"message": f"The model `{body['model']}` does not exist"}})
            return
        choice = {"index": 0, "message": {"role": "assistant", "content": "OK"}}
        self._answer(200, {"choices": [{**choice, "finish_reason": "length"}]})

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def chat_only() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoModelsRoute)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _openai(url: str, model: str = "fake-model", **fields) -> Endpoint:
    return Endpoint(backend="openai", base_url=url, model=model, **fields)


# --- the check, in words -------------------------------------------------------------------------


def test_a_served_model_passes(fake_server) -> None:
    check = connection_check(_openai(fake_server.base_url))
    assert check.ok and f"Connected to 127.0.0.1:{fake_server.port}" in check.message
    assert "'fake-model' is listed" in check.message
    assert fake_server.requests == 0  # the models list; no chat call is paid for


def test_connection_refused_names_host_and_port(closed_port) -> None:
    check = connection_check(_openai(f"http://127.0.0.1:{closed_port}/v1"))
    assert not check.ok
    assert check.message.startswith(f"Connection refused at 127.0.0.1:{closed_port}")


def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    check = connection_check(_openai("http://no-such-model-server.invalid:8000/v1"))
    assert not check.ok
    assert check.message.startswith("DNS failure: the host name no-such-model-server.invalid")


def test_a_silent_server_is_a_timeout(silent) -> None:
    endpoint = _openai(f"http://127.0.0.1:{silent.port}/v1", parameters={"timeout": 0.3})
    check = connection_check(endpoint)
    assert not check.ok
    assert check.message == f"Timeout: no answer from 127.0.0.1:{silent.port} within 0.3 s."


def test_a_wrong_or_missing_key_is_401(monkeypatch) -> None:
    with FakeOpenAIServer(api_key="sk-right") as server:
        check = connection_check(_openai(server.base_url))
        assert not check.ok and "401 Unauthorized" in check.message
        assert "wants an API key" in check.message
        monkeypatch.setenv("DISTILLERY_KEY_TEST", "sk-wrong")
        check = connection_check(_openai(server.base_url, api_key_env="DISTILLERY_KEY_TEST"))
        assert not check.ok
        assert "401 Unauthorized" in check.message and "DISTILLERY_KEY_TEST" in check.message
        assert "sk-wrong" not in check.message
        monkeypatch.setenv("DISTILLERY_KEY_TEST", "sk-right")
        assert connection_check(_openai(server.base_url, api_key_env="DISTILLERY_KEY_TEST")).ok


def test_an_unset_key_variable_is_said(monkeypatch, fake_server) -> None:
    monkeypatch.delenv("DISTILLERY_KEY_UNSET", raising=False)
    check = connection_check(_openai(fake_server.base_url, api_key_env="DISTILLERY_KEY_UNSET"))
    assert not check.ok and "DISTILLERY_KEY_UNSET" in check.message and "not set" in check.message


def test_a_model_the_server_does_not_serve(fake_server) -> None:
    check = connection_check(_openai(fake_server.base_url, model="gpt-5"))
    assert not check.ok
    assert check.message == (
        f"Model 'gpt-5' is not served at 127.0.0.1:{fake_server.port}; it serves: fake-model."
    )


def test_without_a_models_route_one_token_is_asked_for(chat_only) -> None:
    url = f"http://127.0.0.1:{chat_only.server_port}/v1"
    check = connection_check(_openai(url, model="served"))
    assert check.ok and "answered a one-token call" in check.message
    assert chat_only.bodies[-1]["max_tokens"] == 1
    check = connection_check(_openai(url, model="other"))
    assert not check.ok and "Model 'other' is not served" in check.message
    assert "does not exist" in check.message


def test_a_redirect_is_said_and_not_followed(live_server) -> None:
    """Distillery's own site as a model server: /v1/models sends to the login page."""
    check = connection_check(_openai(f"{live_server.url}/v1"))
    assert not check.ok and "redirects (302) to /accounts/login/" in check.message


def test_transformers_folders_need_a_config(tmp_path, monkeypatch) -> None:
    model = tmp_path / "tiny"
    model.mkdir()
    endpoint = Endpoint(backend="transformers", model_path=str(model), model="tiny")
    check = connection_check(endpoint)
    assert (
        not check.ok
        and check.message
        == f"The folder {model} has no config.json: it is not a transformers model."
    )
    (model / "config.json").write_text('{"model_type": "llama"}')
    check = connection_check(endpoint)
    assert check.ok and check.message == f"Found the model in {model} (model type llama)."
    (model / "config.json").write_text("{not json")
    assert "not a readable JSON model config" in connection_check(endpoint).message
    missing = Endpoint(backend="transformers", model_path=str(tmp_path / "nowhere"), model="m")
    assert connection_check(missing).message == f"No folder {tmp_path / 'nowhere'} on this machine."


def test_a_hub_id_must_be_in_the_cache_unless_downloads_are_allowed(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    endpoint = Endpoint(backend="transformers", model_path="someone/model", model="m")
    check = connection_check(endpoint)
    assert not check.ok and "neither a folder on this machine nor a model" in check.message
    endpoint.parameters = {"allow_download": True}
    check = connection_check(endpoint)
    assert check.ok and "will download it" in check.message


def test_the_check_keeps_to_the_address_rules(settings, closed_port) -> None:
    settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = False
    check = connection_check(_openai(f"http://127.0.0.1:{closed_port}/v1"))
    assert not check.ok and "DISTILLERY_ALLOW_PRIVATE_ENDPOINTS" in check.message
    settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = True
    check = connection_check(_openai("http://169.254.169.254/v1"))
    assert not check.ok and "never allowed" in check.message


# --- the service ---------------------------------------------------------------------------------


def test_the_service_saves_only_what_answers_when_asked(fake_server, closed_port) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1"
    with pytest.raises(ValidationError) as error:
        endpoint_create(
            name="down", backend="openai", base_url=url, model="m", test_connection=True
        )
    assert error.value.message_dict["connection"][0].startswith("Connection refused at")
    assert not Endpoint.objects.exists()
    endpoint = endpoint_create(
        name="up", backend="openai", base_url=fake_server.base_url, model="fake-model",
        test_connection=True,
    )  # fmt: skip
    assert endpoint.connection_check.ok
    with pytest.raises(ValidationError, match="Connection refused"):
        endpoint_update(endpoint=endpoint, base_url=url, test_connection=True)
    endpoint.refresh_from_db()
    assert endpoint.base_url == fake_server.base_url
    # Without the test (the callers' "save anyway"), nothing is asked of the network.
    saved = endpoint_create(name="later", backend="openai", base_url=url, model="m")
    assert saved.connection_check is None


def test_testing_saves_nothing_and_checks_the_fields_first(fake_server) -> None:
    check = endpoint_connection_test(
        name="x", backend="openai", base_url=fake_server.base_url, model="fake-model"
    )
    assert check.ok and not Endpoint.objects.exists()
    with pytest.raises(ValidationError) as error:
        endpoint_connection_test(name="x", backend="openai", base_url="not a url", model="m")
    assert "base_url" in error.value.message_dict
    stored = endpoint_create(name="s", backend="openai", base_url=fake_server.base_url, model="m")
    assert not endpoint_connection_test(endpoint=stored).ok  # model "m" is not served
    assert endpoint_connection_test(endpoint=stored, model="fake-model").ok
    stored.refresh_from_db()
    assert stored.model == "m"


# --- the API -------------------------------------------------------------------------------------


def test_api_refuses_an_endpoint_that_does_not_answer(admin_api, closed_port, fake_server) -> None:
    payload = {
        "name": "down",
        "backend": "openai",
        "base_url": f"http://127.0.0.1:{closed_port}/v1",
        "model": "m",
    }
    response = admin_api.post("/api/endpoints/", payload, format="json")
    assert response.status_code == 400
    message = response.json()["connection"][0]
    assert message.startswith(f"Connection refused at 127.0.0.1:{closed_port}")
    assert message.endswith('Send "save_without_connection": true to save it anyway.')
    assert not Endpoint.objects.exists()
    response = admin_api.post(
        "/api/endpoints/", {**payload, "save_without_connection": True}, format="json"
    )
    assert response.status_code == 201 and response.json()["connection"] is None
    endpoint_id = response.json()["id"]
    # A change is tested too: this one makes it work.
    response = admin_api.patch(
        f"/api/endpoints/{endpoint_id}/",
        {"base_url": fake_server.base_url, "model": "fake-model"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["connection"]["ok"] is True
    response = admin_api.patch(f"/api/endpoints/{endpoint_id}/", {"model": "gpt-5"}, format="json")
    assert (
        response.status_code == 400 and "'gpt-5' is not served" in response.json()["connection"][0]
    )
    assert Endpoint.objects.get(pk=endpoint_id).model == "fake-model"


@pytest.mark.parametrize("value", ["maybe", 2, None, [True]])
def test_api_refuses_a_broken_save_without_connection(admin_api, fake_server, value) -> None:
    payload = {"name": "x", "backend": "openai", "base_url": fake_server.base_url, "model": "m"}
    response = admin_api.post(
        "/api/endpoints/", {**payload, "save_without_connection": value}, format="json"
    )
    assert response.status_code == 400 and "save_without_connection" in response.json()
    assert not Endpoint.objects.exists()


# --- the command ---------------------------------------------------------------------------------


def test_endpoint_add_tests_the_connection(closed_port, fake_server, capsys) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1"
    args = ["--backend=openai", "--model=m"]
    with pytest.raises(CommandError) as error:
        call_command("endpoint_add", "down", f"--base-url={url}", *args)
    assert str(error.value) == (
        f"connection test failed: Connection refused at 127.0.0.1:{closed_port}: nothing listens "
        "there. Is the model server running, on that port? Nothing was saved; pass --no-check "
        "to save it anyway."
    )
    assert not Endpoint.objects.exists()
    call_command("endpoint_add", "down", f"--base-url={url}", *args, "--no-check")
    call_command(
        "endpoint_add", "up", f"--base-url={fake_server.base_url}", "--backend=openai",
        "--model=fake-model",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "added without testing its connection." in out
    assert f"Connected to 127.0.0.1:{fake_server.port}: model 'fake-model' is listed" in out
    assert set(Endpoint.objects.values_list("name", flat=True)) == {"down", "up"}


def test_endpoint_add_checks_a_model_folder(tmp_path) -> None:
    with pytest.raises(CommandError, match="has no config.json"):
        call_command(
            "endpoint_add", "local", "--backend=transformers", f"--model-path={tmp_path}",
            "--model=m",
        )  # fmt: skip
    assert not Endpoint.objects.exists()


# --- the page ------------------------------------------------------------------------------------


def _form(url: str, **extra) -> dict:
    return {"name": "vllm", "backend": "openai", "base_url": url, "model": "fake-model",
            "concurrency": 4, **extra}  # fmt: skip


def test_page_refuses_saving_what_does_not_answer(admin_client, closed_port) -> None:
    url = f"http://127.0.0.1:{closed_port}/v1"
    response = admin_client.post(reverse("generation:endpoint-new"), _form(url))
    assert response.status_code == 400 and not Endpoint.objects.exists()
    text = response.content.decode()
    assert f"The connection test failed: Connection refused at 127.0.0.1:{closed_port}" in text
    assert "Tick “Save without a working connection” to save it anyway." in text
    response = admin_client.post(
        reverse("generation:endpoint-new"), _form(url, save_without_connection="on"), follow=True
    )
    assert "Endpoint vllm added without testing its connection." in response.content.decode()
    assert Endpoint.objects.get().base_url == url


def test_page_test_button_checks_without_saving(admin_client, fake_server, closed_port) -> None:
    response = admin_client.post(
        reverse("generation:endpoint-new"), _form(fake_server.base_url, action="test")
    )
    assert response.status_code == 200 and not Endpoint.objects.exists()
    assert response.context["check"].ok
    assert "Connection works." in response.content.decode()
    endpoint = endpoint_create(name="e", backend="openai", base_url=fake_server.base_url, model="m")
    edit = reverse("generation:endpoint-edit", args=[endpoint.pk])
    response = admin_client.post(
        edit, _form(f"http://127.0.0.1:{closed_port}/v1", name="e", action="test")
    )
    assert response.status_code == 200 and not response.context["check"].ok
    assert "Connection failed." in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.base_url == fake_server.base_url
    response = admin_client.post(edit, _form("not a url", name="e", action="test"))
    assert response.status_code == 400 and "Enter a valid http(s) URL." in response.content.decode()


# --- testing a stored endpoint -------------------------------------------------------------------


def test_a_stored_endpoint_is_tested_from_the_list_and_the_api(
    admin_client, admin_api, fake_server, closed_port
) -> None:
    up = endpoint_create(
        name="up", backend="openai", base_url=fake_server.base_url, model="fake-model"
    )
    down = endpoint_create(
        name="down", backend="openai", base_url=f"http://127.0.0.1:{closed_port}/v1", model="m"
    )
    listing = admin_client.get(reverse("generation:endpoint-list")).content.decode()
    assert reverse("generation:endpoint-test", args=[up.pk]) in listing
    response = admin_client.post(reverse("generation:endpoint-test", args=[up.pk]), follow=True)
    assert f"up: Connected to 127.0.0.1:{fake_server.port}" in response.content.decode()
    response = admin_client.post(reverse("generation:endpoint-test", args=[down.pk]), follow=True)
    assert f"down: Connection refused at 127.0.0.1:{closed_port}" in response.content.decode()
    assert admin_client.get(reverse("generation:endpoint-test", args=[up.pk])).status_code == 405
    answer = admin_api.post(f"/api/endpoints/{up.pk}/test/").json()
    assert answer["ok"] is True and answer["message"].startswith("Connected to")
    answer = admin_api.post(f"/api/endpoints/{down.pk}/test/").json()
    assert answer == {
        "ok": False,
        "message": f"Connection refused at 127.0.0.1:{closed_port}: nothing listens there. "
        "Is the model server running, on that port?",
    }
    assert admin_api.post("/api/endpoints/99999999/test/").status_code == 404
    assert admin_api.post("/api/endpoints/²/test/").status_code == 404


def test_an_endpoint_stored_before_the_rules_is_refused_not_tested(admin_client, admin_api) -> None:
    stored = Endpoint.objects.create(
        name="old", backend="openai", base_url="http://169.254.169.254/v1", model="m"
    )
    response = admin_client.post(reverse("generation:endpoint-test", args=[stored.pk]), follow=True)
    assert "old: " in response.content.decode() and "never allowed" in response.content.decode()
    response = admin_api.post(f"/api/endpoints/{stored.pk}/test/")
    assert response.status_code == 400 and "never allowed" in response.json()["base_url"][0]


def test_annotators_cannot_test_endpoints(annotator_client, annotator_api, fake_server) -> None:
    endpoint = endpoint_create(
        name="e", backend="openai", base_url=fake_server.base_url, model="fake-model"
    )
    url = reverse("generation:endpoint-test", args=[endpoint.pk])
    assert annotator_client.post(url).status_code == 403
    assert annotator_api.post(f"/api/endpoints/{endpoint.pk}/test/").status_code == 403
    assert fake_server.requests == 0
