"""What a pipeline is: named stages, each a versioned prompt template, a parser and its items.

Adding a pipeline means one module in this package (with `register(...)`) and its templates under
`generation/prompts/<pipeline>/`; nothing else changes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generation.backends.base import ChatRequest


class ParseError(ValueError):
    """An answer that cannot be read into the stage's structure; its message says why."""


@dataclass(frozen=True)
class ItemSpec:
    """A knowledge item a stage's parsed output yields: kind, slot position and sentence."""

    kind: str
    position: int
    text: str


@dataclass(frozen=True)
class StageInput:
    """What a stage's prompt may read: the post and the parsed outputs of the stages it needs."""

    text: str
    image_data_url: str | None
    metadata: dict[str, Any]
    upstream: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    name: str
    # Template file under generation/prompts/<pipeline>/; its content hash keys every result.
    template: str
    parse: Callable[[str], dict[str, Any]]
    # Knowledge items from a parsed output; intermediate stages (descriptions, key info) yield none.
    items: Callable[[dict[str, Any]], list[ItemSpec]] = lambda parsed: []
    needs: tuple[str, ...] = ()
    # The stage sends the post's image; with `requires_image`, posts without one skip the stage.
    uses_image: bool = False
    requires_image: bool = False
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}")

    def waves(self) -> list[list[Stage]]:
        """Stages grouped so that each wave needs only earlier waves (run a wave in parallel)."""
        raise NotImplementedError

    def template_text(self, stage: Stage) -> str:
        raise NotImplementedError

    def template_hash(self, stage: Stage) -> str:
        raise NotImplementedError

    def build_request(
        self, stage: Stage, stage_input: StageInput, parameters: dict[str, Any]
    ) -> ChatRequest:
        raise NotImplementedError


PIPELINES: dict[str, Pipeline] = {}


def register(pipeline: Pipeline) -> Pipeline:
    PIPELINES[pipeline.name] = pipeline
    return pipeline


def get_pipeline(name: str) -> Pipeline:
    raise NotImplementedError
