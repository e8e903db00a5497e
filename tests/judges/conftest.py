import pytest


@pytest.fixture
def eager_celery(monkeypatch) -> None:
    """`judge_run_execute.delay` runs inline, as a worker would."""
    from config.celery import app

    monkeypatch.setattr(app.conf, "task_always_eager", True)


@pytest.fixture
def judge_worker(monkeypatch) -> None:
    """Where `judge_run_execute.delay` runs: a thread beside the live server, standing in for a
    Celery worker, so a page can watch the run while it progresses (PostgreSQL only: SQLite's
    in-memory test database cannot take writes from two threads, so there it runs inline)."""
    import threading

    from django.db import connection, connections

    from config.celery import app
    from judges import tasks

    if connection.vendor != "postgresql":
        monkeypatch.setattr(app.conf, "task_always_eager", True)
        return

    def run(**kwargs) -> None:
        try:
            tasks.judge_run_execute(**kwargs)
        finally:
            connections.close_all()

    def delay(**kwargs) -> None:
        threading.Thread(target=run, kwargs=kwargs, daemon=True).start()

    monkeypatch.setattr(tasks.judge_run_execute, "delay", delay)
