"""Fixtures of the generation tests: the tiny local models (batch and runner fixtures that other
suites share, like the fake server, are in `tests/conftest.py`)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> Path:
    """Tiny Llama, base and LLaVA models on disk; skips without torch and transformers."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.generation.tiny_models import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))
