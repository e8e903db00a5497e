"""Production settings: `check --deploy` is clean; the compose file has what production needs."""

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "SECRET_KEY": "x7!q2v" * 10,
    "DISTILLERY_HTTPS": "true",
    "ALLOWED_HOSTS": "distillery.example.org",
    "DATABASE_URL": "sqlite:///:memory:",
}


def test_check_deploy_is_clean_with_production_settings():
    env = {**os.environ, **PRODUCTION_ENV}
    env.pop("DEBUG", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the test run for Playwright only
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_with_the_development_defaults():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DISTILLERY_HTTPS")}
    env["DATABASE_URL"] = "sqlite:///:memory:"
    env["DISTILLERY_ENV_FILE"] = os.devnull  # not the checkout's .env (make writes a key there)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr + result.stdout


def test_compose_file_runs_migrations_with_health_checks_and_restarts():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"web", "worker", "beat", "gpu-worker", "postgres", "redis"}
    assert "celery -A config beat" in services["beat"]["command"]
    assert "migrate" in services["web"]["command"]
    assert "gunicorn" in services["web"]["command"]
    for name in services:
        assert "healthcheck" in services[name], name
    anchor = compose["x-app"]
    assert anchor["restart"] == "unless-stopped"
    reservation = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert reservation["capabilities"] == ["gpu"]
    assert "-Q gpu -c 1" in services["gpu-worker"]["command"]
    assert set(compose["volumes"]) == {"media", "postgres", "redis", "caddy"}


def test_openapi_schema_is_valid_without_warnings():
    env = {**os.environ, "DATABASE_URL": "sqlite:///:memory:"}
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "openapi: 3" in result.stdout


def _without_development_key(**extra: str) -> dict[str, str]:
    """The environment of a server: no SECRET_KEY, DEBUG off, not under pytest."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "PYTEST_VERSION")
    }
    # Not the checkout's .env either (make writes a key there).
    return {**env, "DATABASE_URL": "sqlite:///:memory:", "DISTILLERY_ENV_FILE": os.devnull, **extra}


@pytest.mark.parametrize("command", [["manage.py", "check"], ["-c", "import config.wsgi"]])
def test_the_app_refuses_to_start_without_a_secret_key_when_debug_is_off(command):
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=_without_development_key(),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set." in result.stderr


def test_the_secret_key_may_come_from_a_file_or_debug_may_use_the_development_key(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("from-a-file-" * 5)
    probe = "from django.conf import settings; print(settings.SECRET_KEY)"
    runs = {
        "file": _without_development_key(SECRET_KEY_FILE=str(key_file)),
        "debug": _without_development_key(DEBUG="true"),
    }
    keys = {}
    for name, env in runs.items():
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {probe}"],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        keys[name] = result.stdout.strip()
    assert keys == {
        "file": "from-a-file-" * 5,
        "debug": "distillery-insecure-development-key-change-me",
    }


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())


def test_only_the_proxy_publishes_a_port():
    services = _compose()["services"]
    published = {name for name, service in services.items() if "ports" in service}
    assert published == {"proxy"}
    assert services["web"]["expose"] == ["8000"]
    caddyfile = (ROOT / "docker" / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile
    assert "trusted_proxies" not in caddyfile  # clients' X-Forwarded-* are replaced, never kept


def test_the_app_trusts_forwarded_addresses_from_the_proxy_alone():
    compose = _compose()
    env = dict(
        line.split("=", 1)
        for line in (ROOT / "docker" / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )

    def value(text: str) -> str:  # ${NAME:-default}, as docker/.env.example sets it
        name, default = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", text).groups()
        assert env[name] == default
        return default

    proxy = value(compose["services"]["proxy"]["networks"]["default"]["ipv4_address"])
    trusted = value(compose["x-app"]["environment"]["DISTILLERY_TRUSTED_PROXIES"])
    assert trusted == proxy
    network = compose["networks"]["default"]["ipam"]["config"][0]
    subnet = ipaddress.ip_network(value(network["subnet"]))
    dynamic = ipaddress.ip_network(value(network["ip_range"]))
    assert ipaddress.ip_address(proxy) in subnet
    assert ipaddress.ip_address(proxy) not in dynamic and dynamic.subnet_of(subnet)


# A value compose takes from docker/.env or the shell, refusing to start without it.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z_]+):\?[^}]+\}$")


def test_compose_holds_no_secret_and_refuses_to_start_without_them():
    compose = _compose()
    app = compose["x-app"]["environment"]
    postgres = compose["services"]["postgres"]["environment"]
    required = {
        "SECRET_KEY": app["SECRET_KEY"],
        "POSTGRES_PASSWORD": postgres["POSTGRES_PASSWORD"],
        "DISTILLERY_DB_PASSWORD": postgres["DISTILLERY_DB_PASSWORD"],
    }
    for name, value in required.items():
        match = REQUIRED.match(value)
        assert match and match["name"] == name, (name, value)
    # The app connects as its own role, with the password from docker/.env.
    url = re.fullmatch(r"postgres://(\w+):(\$\{[^}]+\})@postgres:5432/(\w+)", app["DATABASE_URL"])
    assert url, app["DATABASE_URL"]
    assert url[1] == "distillery" != postgres["POSTGRES_USER"]
    assert REQUIRED.match(url[2])["name"] == "DISTILLERY_DB_PASSWORD"
    volumes = compose["services"]["postgres"]["volumes"]
    assert "./postgres/init-app-role.sh:/docker-entrypoint-initdb.d/10-app-role.sh:ro" in volumes
    # docker/.env.example names every secret and holds none.
    example = dict(
        line.split("=", 1)
        for line in (ROOT / "docker" / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {name: example[name] for name in required} == dict.fromkeys(required, "")


@pytest.mark.postgres
@pytest.mark.skipif(not shutil.which("psql"), reason="psql is missing")
def test_the_application_role_owns_its_database_but_is_no_superuser(tmp_path):
    """docker/postgres/init-app-role.sh against this PostgreSQL, with names of its own: the role
    migrates the whole schema, and cannot switch off foreign-key checks."""
    admin = connection.settings_dict
    suffix = uuid.uuid4().hex[:8]
    name, role, password = f"app_db_{suffix}", f"app_role_{suffix}", f"pw'{suffix}\"; --"
    env = {
        **os.environ,
        "PGHOST": admin["HOST"] or "127.0.0.1",
        "PGPORT": str(admin["PORT"] or 5432),
        "PGPASSWORD": admin["PASSWORD"] or "",
        "POSTGRES_USER": admin["USER"],
        "DISTILLERY_DB_NAME": name,
        "DISTILLERY_DB_USER": role,
        "DISTILLERY_DB_PASSWORD": password,
    }
    script = ROOT / "docker" / "postgres" / "init-app-role.sh"
    superuser = psycopg.connect(
        host=env["PGHOST"], port=env["PGPORT"], user=admin["USER"],
        password=admin["PASSWORD"] or None, dbname="postgres", autocommit=True,
    )  # fmt: skip
    try:
        result = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        flags = superuser.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s", [role]
        ).fetchone()
        assert flags == (False, False, False)
        owner = superuser.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        assert owner == (role,)
        url = f"postgres://{role}@{env['PGHOST']}:{env['PGPORT']}/{name}"
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url, "PGPASSWORD": password},
            capture_output=True,
            text=True,
        )
        assert migrate.returncode == 0, migrate.stderr
        with psycopg.connect(url, password=password) as app:
            assert app.execute("SELECT count(*) FROM generation_post").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SET session_replication_role = replica")
    finally:
        superuser.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        superuser.execute(f'DROP ROLE IF EXISTS "{role}"')
        superuser.close()
