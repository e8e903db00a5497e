"""Fixtures of the generation tests: the tiny local models, and where a launched batch runs in
the browser tests (batch and runner fixtures that other suites share, like the fake server, are in
`tests/conftest.py`)."""

import threading
from pathlib import Path

import pytest
from django.db import connection, connections


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> Path:
    """Tiny Llama, base and LLaVA models on disk; skips without torch and transformers."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.generation.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def worker(monkeypatch) -> str:
    """Where `batch_execute.delay` runs: a thread on PostgreSQL (standing in for a Celery worker,
    so a page can watch the batch while it runs), inline on SQLite, whose in-memory test database
    cannot take writes from two threads."""
    from config.celery import app
    from generation import tasks

    if connection.vendor != "postgresql":
        monkeypatch.setattr(app.conf, "task_always_eager", True)
        return "eager"

    def run(**kwargs) -> None:
        try:
            tasks.batch_execute(**kwargs)
        finally:
            connections.close_all()

    def delay(**kwargs) -> None:
        threading.Thread(target=run, kwargs=kwargs, daemon=True).start()

    monkeypatch.setattr(tasks.batch_execute, "delay", delay)
    return "thread"
