"""The WSGI application a worker loads: every view imported and out of the collector's sight."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, sys
import config.wsgi
views = ("annotation.apis", "generation.apis", "evaluation.apis", "accounts.views")
print(gc.get_freeze_count(), all(name in sys.modules for name in views))
"""


def test_loading_the_application_imports_the_views_and_freezes_what_it_loaded():
    env = {**os.environ, "DATABASE_URL": "sqlite:///:memory:"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    frozen, views_loaded = result.stdout.split()
    assert int(frozen) > 50_000  # Django, DRF and our modules: a full collection skips them
    assert views_loaded == "True"


def test_the_api_is_resolved_before_the_pages():
    from django.urls import resolve, reverse

    match = resolve("/api/campaigns/1/next/")
    assert match.url_name == "api-task-next"
    # The URLconf each tried pattern came from at the top level (a module, or a list for admin).
    tried = {
        getattr(getattr(path[0], "urlconf_name", None), "__name__", None) for path in match.tried
    }
    assert not tried & {"generation.urls", "annotation.urls", "evaluation.urls"}
    assert reverse("api-schema") == "/api/schema/"
    assert reverse("api-docs") == "/api/docs/"
