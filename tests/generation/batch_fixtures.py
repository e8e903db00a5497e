"""Shared set-up for the batch tests: MIKO posts with real texts and tiny images, a fake server."""

import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from PIL import Image

from generation.fake_openai import FakeOpenAIServer
from generation.models import Dataset, Endpoint, Post
from generation.services.endpoints import endpoint_create

__all__ = ["call_log", "fake_server", "fast_retries"]

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data/miko/pipeline_outputs_sample.jsonl"


def sample_texts() -> list[str]:
    with SAMPLE.open(encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color=(seed % 256, 80, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_posts(name: str, count: int, *, images: bool = True) -> Dataset:
    """`count` posts whose texts are the real sample posts (so the fake replays real answers)."""
    dataset, _ = Dataset.objects.get_or_create(name=name)
    texts = sample_texts()
    for index in range(count):
        post = Post(dataset=dataset, external_id=str(index), text=texts[index % len(texts)])
        if images:
            post.image.save(f"{name}-{index}.png", ContentFile(png_bytes(index)), save=False)
        post.save()
    return dataset


class CallLog:
    """Records every answered call's (stage, prompt) on the fake server: a key is called once."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str | None, str]] = Counter()

    def __call__(self, stage: str | None, body: dict[str, Any]) -> None:
        self.calls[(stage, json.dumps(body.get("messages"), sort_keys=True))] += 1
        return None

    def repeated(self) -> list[tuple[str | None, str]]:
        return [key for key, count in self.calls.items() if count > 1]


@pytest.fixture
def fast_retries(settings) -> None:
    settings.DISTILLERY_RETRY_BASE_SECONDS = 0.01
    settings.DISTILLERY_RETRY_MAX_SECONDS = 0.05
    settings.DISTILLERY_FLUSH_SECONDS = 0.05


@pytest.fixture
def call_log() -> CallLog:
    return CallLog()


@pytest.fixture
def fake_server(call_log) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(latency=0.01, answers=call_log, retry_after=0.01) as server:
        yield server


def fake_endpoint(server: FakeOpenAIServer, name: str = "fake", **extra: Any) -> Endpoint:
    extra.setdefault("concurrency", 8)
    return endpoint_create(
        name=name, backend="openai", base_url=server.base_url, model="fake-model", **extra
    )
