"""Issue 13, point 2: an endpoint cannot send the worker's environment to any address.

The probe: an admin saved an endpoint whose key variable was DJANGO_SETTINGS_MODULE and whose base
URL was a listener on 127.0.0.1, launched a batch, and the listener read
`Authorization: Bearer config.settings`; http://169.254.169.254/ was a valid base URL. Now the key
variable must be on DISTILLERY_API_KEY_ENV_ALLOWED and never a Django, database or broker
variable, link-local and metadata addresses are refused, and private ones need
DISTILLERY_ALLOW_PRIVATE_ENDPOINTS; all of it when the endpoint is saved (page, API, command) and
again when the backend reads the key (an endpoint stored before these checks).
"""

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.backends import backend_for
from generation.backends.base import BackendError, ChatRequest
from generation.backends.guard import api_key_env_error, base_url_error
from generation.models import Batch, Endpoint
from generation.runner.run import batch_execute
from generation.services.batches import batch_launch
from generation.services.endpoints import endpoint_create
from tests.factories import make_posts

pytestmark = pytest.mark.django_db

FORBIDDEN_VARIABLES = [
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "DATABASE_URL",
    "POSTGRES_PASSWORD",
    "EMAIL_HOST_PASSWORD",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "SECRET_KEY_FILE",
    "DISTILLERY_TRUSTED_PROXIES",
]
METADATA_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v1",
    "http://[fe80::1]:8000/v1",
    "http://[::ffff:169.254.169.254]/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://METADATA.GOOGLE.INTERNAL./v1",
    "http://100.100.100.200/latest/meta-data",
    "http://[fd00:ec2::254]/latest",
]


ANSWER = b"HTTP/1.1 500 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Listener:
    """A plain TCP listener on 127.0.0.1 that keeps every byte it is sent and answers 500."""

    def __init__(self, answer: bytes = ANSWER) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.received = b""
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def settings_module(monkeypatch) -> str:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings")
    return "config.settings"


# --- the probe -----------------------------------------------------------------------------------


def test_the_probe_endpoint_is_refused_by_api_page_and_command(
    admin_api, admin_client, listener, settings_module
) -> None:
    payload = {
        "name": "probe",
        "backend": "openai",
        "base_url": listener.base_url,
        "model": "m",
        "api_key_env": "DJANGO_SETTINGS_MODULE",
    }
    response = admin_api.post("/api/endpoints/", payload, format="json")
    assert response.status_code == 400
    message = response.json()["api_key_env"][0]
    assert "DJANGO_SETTINGS_MODULE" in message and "never sent to a model server" in message
    page = admin_client.post(reverse("generation:endpoint-new"), {**payload, "concurrency": 1})
    assert page.status_code == 400 and "never sent to a model server" in page.content.decode()
    with pytest.raises(CommandError, match="api_key_env: DJANGO_SETTINGS_MODULE holds a setting"):
        call_command(
            "endpoint_add",
            "probe",
            "--backend=openai",
            f"--base-url={listener.base_url}",
            "--model=m",
            "--api-key-env=DJANGO_SETTINGS_MODULE",
        )
    assert not Endpoint.objects.exists()
    # Changing a good endpoint into the probe is refused too.
    good = endpoint_create(name="good", backend="openai", base_url=listener.base_url, model="m")
    response = admin_api.patch(
        f"/api/endpoints/{good.pk}/", {"api_key_env": "DJANGO_SETTINGS_MODULE"}, format="json"
    )
    assert response.status_code == 400
    good.refresh_from_db()
    assert good.api_key_env == ""


def test_a_stored_probe_endpoint_sends_nothing_to_the_listener(listener, settings_module) -> None:
    """An endpoint saved before the checks (straight into the table): the batch fails, naming
    the variable, and the listener never hears the variable's value."""
    endpoint = Endpoint.objects.create(
        name="probe",
        backend="openai",
        base_url=listener.base_url,
        model="m",
        api_key_env="DJANGO_SETTINGS_MODULE",
    )
    batch = batch_launch(
        dataset=make_posts("miko", 2, images=False),
        pipeline="miko",
        endpoint=endpoint,
        enqueue=False,
    )
    try:
        batch_execute(batch_id=batch.pk)
    except BackendError as error:
        assert "refused API key variable" in str(error)
    assert settings_module.encode() not in listener.received
    assert b"authorization" not in listener.received.lower() and listener.connections == 0
    batch.refresh_from_db()
    assert batch.status == Batch.Status.FAILED and "DJANGO_SETTINGS_MODULE" in batch.error


def test_an_allowed_variable_still_reaches_the_server(listener, monkeypatch) -> None:
    monkeypatch.setenv("DISTILLERY_KEY_PROBE", "sk-allowed")
    endpoint = endpoint_create(
        name="ok",
        backend="openai",
        base_url=listener.base_url,
        model="m",
        api_key_env="DISTILLERY_KEY_PROBE",
    )
    backend = backend_for(endpoint)
    assert backend._api_key == "sk-allowed"


# --- key variables -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FORBIDDEN_VARIABLES)
def test_django_database_and_broker_variables_never_qualify(name, settings) -> None:
    settings.DISTILLERY_API_KEY_ENV_ALLOWED = ["*", name]  # even when the allow-list names them
    assert api_key_env_error(name) and "never sent" in api_key_env_error(name)
    with pytest.raises(BackendError, match="refused API key variable"):
        backend_for(Endpoint(backend="openai", base_url="http://x/v1", model="m", api_key_env=name))


def test_the_allow_list_decides_the_others(settings) -> None:
    assert api_key_env_error("OPENAI_API_KEY") is None
    assert api_key_env_error("DISTILLERY_KEY_VLLM") is None
    assert "not a variable an API key may come from" in api_key_env_error("HF_TOKEN")
    settings.DISTILLERY_API_KEY_ENV_ALLOWED = ["HF_TOKEN", "ANTHROPIC_*"]
    assert api_key_env_error("HF_TOKEN") is None and api_key_env_error("ANTHROPIC_KEY") is None
    assert api_key_env_error("OPENAI_API_KEY")


# --- addresses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", METADATA_URLS)
def test_metadata_and_link_local_addresses_are_always_refused(
    url, admin_api, admin_client, settings
) -> None:
    settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = True
    payload = {"name": "meta", "backend": "openai", "base_url": url, "model": "m"}
    response = admin_api.post("/api/endpoints/", payload, format="json")
    assert response.status_code == 400 and "never allowed" in response.json()["base_url"][0]
    page = admin_client.post(reverse("generation:endpoint-new"), {**payload, "concurrency": 1})
    assert page.status_code == 400 and "never allowed" in page.content.decode()
    with pytest.raises(CommandError, match="never allowed"):
        call_command("endpoint_add", "meta", "--backend=openai", f"--base-url={url}", "--model=m")
    assert not Endpoint.objects.exists()
    with pytest.raises(BackendError, match="refused base URL"):
        backend_for(Endpoint(backend="openai", base_url=url, model="m"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.7:8000/v1",
        "http://192.168.1.2/v1",
        "http://[::1]:8000/v1",
        "http://0.0.0.0:8000/v1",
        "http://localhost:8000/v1",  # by what the name resolves to
    ],
)
def test_private_addresses_need_the_setting(url, admin_api, settings) -> None:
    settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = False
    payload = {"name": "local", "backend": "openai", "base_url": url, "model": "m"}
    response = admin_api.post("/api/endpoints/", payload, format="json")
    assert response.status_code == 400
    assert "DISTILLERY_ALLOW_PRIVATE_ENDPOINTS" in response.json()["base_url"][0]
    with pytest.raises(BackendError, match="refused base URL"):
        backend_for(Endpoint(backend="openai", base_url=url, model="m"))
    settings.DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = True
    payload["save_without_connection"] = True  # allowed: whether a server is there is not the point
    assert admin_api.post("/api/endpoints/", payload, format="json").status_code == 201


def test_public_addresses_and_unresolved_names_pass() -> None:
    assert base_url_error("https://8.8.8.8/v1") is None
    assert base_url_error("http://vllm.invalid:8000/v1") is None  # nothing to connect to


def test_a_redirect_is_not_followed(listener) -> None:
    """A model server that answers 307 to another address: the worker does not go there."""
    target = listener.base_url
    redirect = (
        f"HTTP/1.1 307 Go\r\nLocation: {target}/chat/completions\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    redirector = Listener(answer=redirect)
    try:
        backend = backend_for(
            Endpoint(backend="openai", base_url=redirector.base_url, model="m", concurrency=1)
        )
        error = asyncio.run(_failure(backend))
        assert error.status == 307 and not error.retryable
        assert redirector.connections == 1 and listener.connections == 0
    finally:
        redirector.close()


async def _failure(backend) -> BackendError:
    try:
        await backend.acomplete(ChatRequest([{"role": "user", "content": "hi"}]))
    except BackendError as error:
        return error
    finally:
        await backend.aclose()
    raise AssertionError("the redirect was followed")
