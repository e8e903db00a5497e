import pytest


@pytest.fixture
def eager_celery(monkeypatch) -> None:
    """`judge_run_execute.delay` runs inline, as a worker would."""
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)
