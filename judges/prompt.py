"""The judge's prompt: a versioned template, the request it builds, and the parse of its answer.

A judge sees what an annotator sees on the rating page: the campaign's instructions, the post's
text and image description, the item and its relation label, the question, and the scale with its
anchors. Templates are files `judges/prompts/<version>.txt`; the sha256 of the text is recorded on
the run and, through the request, is part of every rating's call key.

The judge plugs into the generation runner as a pipeline (`JudgePipeline`): one stage per
question, all in one wave, whose parser turns the answer into `{"value": N}`.
"""

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotation.relations import relation_label
from annotation.scales import Scale
from generation.backends.base import ChatRequest
from generation.pipelines.base import ParseError, Pipeline, Stage, StageInput, render_template

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
DEFAULT_VERSION = "v1"
_VERSION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# "rating: 4", "Rating = 4", "**Rating:** 4" on a line of its own.
_RATING_LINE = re.compile(r"^\W*rating\W*[:=]\W*(-?\d+)\W*$", re.IGNORECASE | re.MULTILINE)


class UnknownTemplateVersion(ValueError):
    pass


def template_versions() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.txt") if _VERSION_NAME.match(p.stem))


@functools.cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def template_text(version: str) -> str:
    if version not in template_versions():
        known = ", ".join(template_versions())
        raise UnknownTemplateVersion(f"no judge template version {version!r} (known: {known})")
    return _read(PROMPTS_DIR / f"{version}.txt")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rating_schema(scale: Scale) -> dict[str, Any]:
    """The structured-output schema: one integer of the scale."""
    return {
        "title": "judge",
        "type": "object",
        "properties": {"rating": {"type": "integer", "enum": list(scale.values)}},
        "required": ["rating"],
        "additionalProperties": False,
    }


def parse_rating(answer: str, *, scale: Scale) -> dict[str, Any]:
    """`{"value": N}` from `{"rating": N}` or from one line "rating: N"; N must be on the scale.

    Anything else is a ParseError (the runner keeps the raw answer): no line, two lines that
    disagree, or a value off the scale. Other lines (a reason given first) are allowed.
    """
    text = answer.strip()
    value: Any = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ParseError(f"the answer is not valid JSON: {error}") from None
        if not isinstance(data, dict) or "rating" not in data:
            raise ParseError('the JSON answer has no "rating"')
        value = data["rating"]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParseError(f"the rating {value!r} is not a whole number")
    else:
        found = {int(v) for v in _RATING_LINE.findall(text)}
        if not found:
            raise ParseError('no line "rating: N" in the answer')
        if len(found) > 1:
            raise ParseError(f"the answer gives several ratings: {sorted(found)}")
        value = found.pop()
    if value not in scale.values:
        allowed = ", ".join(str(v) for v in scale.values)
        raise ParseError(f"rating {value} is not on the scale ({allowed})")
    return {"value": value}


def scale_lines(scale: Scale) -> str:
    return "\n".join(
        f"{value} = {scale.anchors[value]}" if value in scale.anchors else str(value)
        for value in scale.values
    )


@dataclass(frozen=True)
class QuestionPrompt:
    """What the prompt says of one question: its name (the stage), wording and scale."""

    name: str
    prompt: str
    scale: Scale


@dataclass(frozen=True)
class JudgePipeline(Pipeline):
    """A pipeline for the runner's executor: one stage per question, rendered from `template`.

    Each unit of work is an item (`judges.runner.ItemSubject`): its metadata holds the item's
    text, kind and image description, which `build_request` reads.
    """

    template: str = ""
    instructions: str = ""
    questions: dict[str, QuestionPrompt] = field(default_factory=dict, hash=False)

    def build_request(
        self,
        stage: Stage,
        stage_input: StageInput,
        parameters: dict[str, Any],
        variant: str | None = None,
    ) -> ChatRequest:
        question = self.questions[stage.name]
        item = stage_input.metadata
        prompt = render_template(
            self.template,
            {
                "instructions": self.instructions.strip() or "(none)",
                "text": stage_input.text,
                "description": item.get("description") or "",
                "relation": relation_label(item["kind"]),
                "item": item["text"],
                "question": question.prompt,
                "scale": scale_lines(question.scale),
                "values": ", ".join(str(v) for v in question.scale.values),
            },
        )
        return ChatRequest(
            messages=[{"role": "user", "content": prompt}],
            parameters=dict(parameters),
            json_schema=stage.json_schema,
        )


def judge_pipeline(
    *, template: str, instructions: str, questions: list[QuestionPrompt], structured: bool
) -> JudgePipeline:
    stages = tuple(
        Stage(
            name=q.name,
            template="",
            parse=functools.partial(parse_rating, scale=q.scale),
            json_schema=rating_schema(q.scale) if structured else None,
        )
        for q in questions
    )
    return JudgePipeline(
        name="judge",
        stages=stages,
        template=template,
        instructions=instructions,
        questions={q.name: q for q in questions},
    )


def call_key(*, endpoint_key: str, model: str, request: ChatRequest) -> str:
    """The key of one call: the same server, model and request give the same key."""
    body = {
        "endpoint": endpoint_key,
        "model": model,
        "messages": request.messages,
        "parameters": request.parameters,
        "json_schema": request.json_schema,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
