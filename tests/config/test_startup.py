"""Starting Django loads no heavy package: every gunicorn worker, Celery worker and command pays
for what `django.setup()` imports, in seconds and in memory (scikit-learn, nltk and openai, pulled
in by the apps' registrations, once made each process 200 MiB larger and seconds slower to start).
The packages are imported where they are used: training a critic, scoring a run, calling a model.
"""

import json
import os
import subprocess
import sys

from tests.helpers import ROOT

HEAVY = ["torch", "transformers", "peft", "trl", "sklearn", "scipy", "pandas", "pyarrow",
         "datasets", "nltk", "rouge_score", "sacrebleu", "openai", "bert_score",
         "sentence_transformers"]  # fmt: skip


def test_django_setup_imports_no_heavy_package():
    script = (
        "import json, sys, django; django.setup(); "
        "from django.urls import get_resolver; get_resolver().url_patterns; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
