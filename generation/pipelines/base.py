"""What a pipeline is: named stages, each a versioned prompt template, a parser and its items.

Adding a pipeline means one module in this package (with `register(...)`) and its templates under
`generation/prompts/<pipeline>/`; nothing else changes.
"""

import functools
import hashlib
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generation.backends.base import ChatRequest

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


class ParseError(ValueError):
    """An answer that cannot be read into the stage's structure; its message says why."""


@dataclass(frozen=True)
class ItemSpec:
    """A knowledge item a stage's parsed output yields: kind, slot position and sentence."""

    kind: str
    position: int
    text: str
    # What the stage said about the item besides its text (e.g. a plausibility judgement);
    # meant to be merged into KnowledgeItem.provenance.
    provenance: dict[str, Any] = field(default_factory=dict)


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

    def applies(self, *, has_image: bool) -> bool:
        """Whether a post runs this stage: image stages skip posts without an image."""
        return has_image or not self.requires_image


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]
    # Extra template variables from the post (beyond `text` and the needed stages' outputs).
    variables: Callable[[StageInput], dict[str, Any]] | None = None

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"pipeline {self.name!r} has no stage {name!r}")

    def waves(self) -> list[list[Stage]]:
        """Stages grouped so that each wave needs only earlier waves (run a wave in parallel).

        A stage a post skips (`requires_image` without an image) counts as done for the waves
        after it: those stages run without its output.
        """
        done: set[str] = set()
        waves: list[list[Stage]] = []
        pending = list(self.stages)
        while pending:
            wave = [stage for stage in pending if set(stage.needs) <= done]
            if not wave:
                names = ", ".join(stage.name for stage in pending)
                raise ValueError(f"pipeline {self.name!r}: unmet or circular needs in {names}")
            waves.append(wave)
            done.update(stage.name for stage in wave)
            pending = [stage for stage in pending if stage.name not in done]
        return waves

    def template_path(self, stage: Stage) -> Path:
        return PROMPTS_DIR / self.name / stage.template

    def template_text(self, stage: Stage) -> str:
        return _read_template(self.template_path(stage))

    def template_hash(self, stage: Stage) -> str:
        """sha256 of the template file's content: editing a template keys new results."""
        return hashlib.sha256(self.template_text(stage).encode()).hexdigest()

    def render(self, stage: Stage, stage_input: StageInput) -> str:
        """The stage's prompt text for one post (see `render_template` for the rules)."""
        values = dict(self.variables(stage_input)) if self.variables else {}
        for name in stage.needs:
            for key, value in (stage_input.upstream.get(name) or {}).items():
                values.setdefault(key, value)
        values["text"] = stage_input.text
        return render_template(self.template_text(stage), values)

    def build_request(
        self, stage: Stage, stage_input: StageInput, parameters: dict[str, Any]
    ) -> ChatRequest:
        """An OpenAI-style chat request: one user message, with the image as a data URL part.

        A stage that uses the image sends it in the standard vision format; without an image (or
        for a text stage) the content is a plain string, which every server accepts.
        """
        prompt = self.render(stage, stage_input)
        content: str | list[dict[str, Any]] = prompt
        if stage.uses_image:
            if stage_input.image_data_url:
                content = [
                    {"type": "text", "text": prompt},
                    {"type": "image_url", "image_url": {"url": stage_input.image_data_url}},
                ]
            elif stage.requires_image:
                raise ValueError(f"stage {stage.name!r} needs an image and the post has none")
        return ChatRequest(
            messages=[{"role": "user", "content": content}],
            parameters=dict(parameters),
            json_schema=stage.json_schema,
        )


_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def render_template(template: str, values: dict[str, Any]) -> str:
    """Fill `{name}` placeholders; drop a line whose placeholders are all empty.

    Lists are joined with ", ". Dropping lines lets one template serve posts with and without an
    image description ("Image description: {description}" disappears when there is none). Other
    braces, such as a JSON example, are left alone.
    """

    def value_of(name: str) -> str:
        value = values.get(name)
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return str(value)

    lines = []
    for line in template.splitlines(keepends=True):
        names = _PLACEHOLDER.findall(line)
        if names and not any(value_of(name).strip() for name in names):
            continue
        lines.append(_PLACEHOLDER.sub(lambda m: value_of(m.group(1)), line))
    return "".join(lines)


@functools.cache
def _read_template(path: Path) -> str:
    return path.read_text(encoding="utf-8")


PIPELINES: dict[str, Pipeline] = {}


def register(pipeline: Pipeline) -> Pipeline:
    PIPELINES[pipeline.name] = pipeline
    return pipeline


_NOT_PIPELINES = {"base", "parsing"}


def all_pipelines() -> dict[str, Pipeline]:
    """Every pipeline, by name: each module of this package registers one on import."""
    import generation.pipelines as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_PIPELINES:
            importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(sorted(PIPELINES.items()))


def get_pipeline(name: str) -> Pipeline:
    """The registered pipeline of that name (KeyError naming the known ones otherwise)."""
    if name not in PIPELINES:
        all_pipelines()
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise KeyError(f"unknown pipeline {name!r} (known: {known})") from None
