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

from generation.backends.base import ChatRequest, sampling_parameters

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

#: The variant name of a stage's own template file (`<stage>.txt`); other variants live beside it
#: as `<stage>.<variant>.txt`.
DEFAULT_VARIANT = "default"
#: Batch parameters that are not sampling parameters: per-stage overrides and the template variant.
BATCH_OPTIONS = frozenset({"stages", "template_variant"})
_VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ParseError(ValueError):
    """An answer that cannot be read into the stage's structure; its message says why."""


class UnknownTemplateVariant(ValueError):
    """A template variant (or a stage of a variant mapping) that the pipeline does not have."""


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
    # Template variables only this stage reads (e.g. gold labels for one augmentation stage),
    # over the pipeline's `variables`.
    variables: Callable[[StageInput], dict[str, Any]] | None = None
    # Sampling defaults of the stage (e.g. MIKO's temperature per stage); see `stage_parameters`.
    defaults: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # The slots a parsed output lacks (kind names, in slot order): a partial result; see
    # `merge_partial`. By default the parser's `parsed["missing"]`.
    missing: Callable[[dict[str, Any]], list[str]] = lambda parsed: parsed.get("missing") or []
    # The slot names of a stage whose output is a set of slots (MIKO's ten kinds), in order;
    # `merge_partial` keeps a merged output in this order.
    slots: tuple[str, ...] = ()

    def missing_slots(self, parsed: dict[str, Any] | None) -> list[str]:
        """The slots a parsed output lacks; an empty list for a complete one."""
        return list(self.missing(parsed)) if parsed else []

    def applies(self, *, has_image: bool) -> bool:
        """Whether a post runs this stage: image stages skip posts without an image."""
        return has_image or not self.requires_image


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]
    # Extra template variables from the post for every stage (beyond `text` and the needed
    # stages' outputs). Gold labels do not belong here: a stage that may see them says so itself
    # (`Stage.variables`).
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

    def template_path(self, stage: Stage, variant: str | None = None) -> Path:
        """The stage's template file: `<stage>.txt`, or `<stage>.<variant>.txt` for a variant.

        An unknown variant is an UnknownTemplateVariant naming the known ones.
        """
        default = PROMPTS_DIR / self.name / stage.template
        if variant in (None, "", DEFAULT_VARIANT):
            return default
        valid = isinstance(variant, str) and _VARIANT_NAME.match(variant)
        path = default.with_name(f"{default.stem}.{variant}{default.suffix}") if valid else None
        if path is None or not path.is_file():
            known = ", ".join(self.stage_variants(stage))
            raise UnknownTemplateVariant(
                f"stage {stage.name!r} of pipeline {self.name!r} has no template variant "
                f"{variant!r} (known: {known})"
            )
        return path

    def stage_variants(self, stage: Stage) -> list[str]:
        """The stage's template variants: `default` first, then the others by name."""
        default = PROMPTS_DIR / self.name / stage.template
        names = sorted(
            path.name[len(default.stem) + 1 : -len(default.suffix)]
            for path in default.parent.glob(f"{default.stem}.*{default.suffix}")
        )
        return [DEFAULT_VARIANT] + [n for n in names if _VARIANT_NAME.match(n)]

    def variants(self) -> dict[str, list[str]]:
        """Every stage's template variants, by stage name (`default` first)."""
        return {stage.name: self.stage_variants(stage) for stage in self.stages}

    def variant_names(self) -> list[str]:
        """Every variant name some stage has, `default` first: what a batch may choose."""
        names = {name for variants in self.variants().values() for name in variants[1:]}
        return [DEFAULT_VARIANT, *sorted(names)]

    def stage_variant(self, stage: Stage, template_variant: Any) -> str:
        """The variant a stage runs under a batch's `template_variant` parameter.

        A name applies to every stage that has a template of that name; the others keep their
        default (a variant need not rewrite every stage). A mapping names a variant per stage
        (stages left out keep their default). A name no stage has is an UnknownTemplateVariant.
        """
        if template_variant in (None, "", DEFAULT_VARIANT):
            return DEFAULT_VARIANT
        if isinstance(template_variant, dict):
            unknown = set(template_variant) - {s.name for s in self.stages}
            if unknown:
                raise UnknownTemplateVariant(
                    f"pipeline {self.name!r} has no stage {', '.join(sorted(unknown))}"
                )
            variant = template_variant.get(stage.name) or DEFAULT_VARIANT
            self.template_path(stage, variant)  # raises for an unknown variant
            return variant
        if not isinstance(template_variant, str):
            raise UnknownTemplateVariant(
                "template_variant must be a name or an object of stage: name"
            )
        if template_variant not in self.variant_names():
            known = ", ".join(self.variant_names())
            raise UnknownTemplateVariant(
                f"pipeline {self.name!r} has no template variant {template_variant!r} "
                f"(known: {known})"
            )
        if template_variant in self.stage_variants(stage):
            return template_variant
        return DEFAULT_VARIANT

    def template_text(self, stage: Stage, variant: str | None = None) -> str:
        return _read_template(self.template_path(stage, variant))

    def template_hash(self, stage: Stage, variant: str | None = None) -> str:
        """sha256 of the template file's content: editing a template keys new results."""
        return hashlib.sha256(self.template_text(stage, variant).encode()).hexdigest()

    def render(self, stage: Stage, stage_input: StageInput, variant: str | None = None) -> str:
        """The stage's prompt text for one post (see `render_template` for the rules)."""
        values = dict(self.variables(stage_input)) if self.variables else {}
        if stage.variables:
            values.update(stage.variables(stage_input))
        for name in stage.needs:
            for key, value in (stage_input.upstream.get(name) or {}).items():
                values.setdefault(key, value)
        values["text"] = stage_input.text
        return render_template(self.template_text(stage, variant), values)

    def build_request(
        self,
        stage: Stage,
        stage_input: StageInput,
        parameters: dict[str, Any],
        variant: str | None = None,
    ) -> ChatRequest:
        """An OpenAI-style chat request: one user message, with the image as a data URL part.

        A stage that uses the image sends it in the standard vision format; without an image (or
        for a text stage) the content is a plain string, which every server accepts.
        """
        prompt = self.render(stage, stage_input, variant)
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
# `[[ ... {name} ... ]]`: a piece of a line kept only when one of its placeholders has a value.
_OPTIONAL = re.compile(r"\[\[((?:(?!\]\]).)*?\{[a-z_][a-z0-9_]*\}(?:(?!\]\]).)*?)\]\]")


def render_template(template: str, values: dict[str, Any]) -> str:
    """Fill `{name}` placeholders; drop a line whose placeholders are all empty.

    Lists are joined with ", ". Dropping lines lets one template serve posts with and without an
    image description ("Image description: {description}" disappears when there is none). Within
    a line, `[[...]]` around a piece with placeholders keeps the piece (without the brackets)
    only when one of them has a value: `"{text}"[[/ "{description}"]]`. Other braces, such as a
    JSON example, are left alone.
    """

    def value_of(name: str) -> str:
        value = values.get(name)
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return str(value)

    def has_value(text: str) -> bool:
        return any(value_of(name).strip() for name in _PLACEHOLDER.findall(text))

    lines = []
    for line in template.splitlines(keepends=True):
        names = _PLACEHOLDER.findall(line)
        if names and not any(value_of(name).strip() for name in names):
            continue
        line = _OPTIONAL.sub(lambda m: m.group(1) if has_value(m.group(1)) else "", line)
        lines.append(_PLACEHOLDER.sub(lambda m: value_of(m.group(1)), line))
    return "".join(lines)


def stage_parameters(
    stage: Stage,
    *,
    endpoint_parameters: dict[str, Any] | None,
    batch_parameters: dict[str, Any] | None,
) -> dict[str, Any]:
    """The sampling parameters a stage runs with, which also key its results.

    From lowest to highest precedence: the endpoint's sampling parameters (backend options such
    as `timeout` left out), the stage's `defaults`, the batch's own parameters, and the batch's
    overrides for this stage (`batch_parameters["stages"][stage.name]`). Batch options that are
    not sampling parameters (`stages`, `template_variant`) are not part of the result.
    """
    batch_parameters = batch_parameters or {}
    effective = sampling_parameters(endpoint_parameters or {})
    effective.update(stage.defaults)
    effective.update(
        {k: v for k, v in sampling_parameters(batch_parameters).items() if k not in BATCH_OPTIONS}
    )
    overrides = (batch_parameters.get("stages") or {}).get(stage.name) or {}
    effective.update(sampling_parameters(overrides))
    return effective


def without_last_slot(stage: Stage, parsed: dict[str, Any]) -> dict[str, Any]:
    """A parsed output of a truncated answer (finish reason "length"): its last slot missing.

    The answer was cut off, so its last slot present is likely cut mid-sentence; the slot is
    dropped and named in "missing" so that a retry asks for it again. Outputs of stages without
    slots, and outputs with a single slot, are returned unchanged.
    """
    present = [slot for slot in stage.slots if parsed.get(slot)]
    if len(present) < 2:
        return dict(parsed)
    last = present[-1]
    result = {key: value for key, value in parsed.items() if key not in (last, "missing")}
    lacking = set(stage.missing_slots(parsed)) | {last}
    result["missing"] = [slot for slot in stage.slots if slot in lacking]
    return result


def merge_partial(
    stage: Stage, old_parsed: dict[str, Any], new_parsed: dict[str, Any]
) -> dict[str, Any]:
    """A partial parsed output completed from a retried answer.

    The old slots are kept as they were; only the slots the old output lacked are taken from the
    new one. "missing" is recomputed (and left out once nothing is missing), so the result reads
    like one answer that held every slot found in either. A complete old output is returned
    unchanged.
    """
    lacking = stage.missing_slots(old_parsed)
    if not lacking:
        return dict(old_parsed)
    merged = {key: value for key, value in old_parsed.items() if key != "missing"}
    for slot in lacking:
        if new_parsed.get(slot) and slot not in stage.missing_slots(new_parsed):
            merged[slot] = new_parsed[slot]
    still = [slot for slot in lacking if not merged.get(slot)]
    order = {slot: index for index, slot in enumerate(stage.slots or lacking)}
    if stage.slots:
        merged = dict(sorted(merged.items(), key=lambda pair: order.get(pair[0], len(order))))
    if still:
        merged["missing"] = sorted(still, key=lambda slot: order.get(slot, len(order)))
    return merged


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
