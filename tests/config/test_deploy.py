"""Production settings: `check --deploy` is clean; the compose file has what production needs."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

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
    assert set(compose["volumes"]) == {"media", "postgres", "redis"}


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
