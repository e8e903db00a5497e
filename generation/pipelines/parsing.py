"""Small helpers the stage parsers share: reading JSON answers and cleaning surface noise."""

import json
import re
from typing import Any

from generation.pipelines.base import ParseError

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_BOLD = re.compile(r"\*\*|__")
_SPACE = re.compile(r"\s+")
_DOUBLE_DOT = re.compile(r"(?<!\.)\.\.$")


def json_answer(raw: str) -> dict[str, Any] | None:
    """The answer as a JSON object when it is one (structured output), else None.

    A code fence around it is accepted. Text that opens like a JSON object but does not load is
    an error rather than prose, so a broken structured answer is never read as text.
    """
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"the answer looks like JSON but does not load: {exc}") from exc
    if not isinstance(value, dict):
        raise ParseError("the JSON answer is not an object")
    return value


def object_schema(properties: dict[str, Any]) -> dict[str, Any]:
    """A strict JSON schema for an object with exactly these (all required) properties."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


#: Image stages answer `{"description": ...}`, the text annotators see beside the image.
DESCRIPTION_SCHEMA = object_schema({"description": {"type": "string"}})


def strip_markup(line: str) -> str:
    """A line without markdown bold markers, list bullets or heading marks."""
    line = _BOLD.sub("", line).strip()
    return re.sub(r"^(?:#+\s*|[-*•]\s+)", "", line).strip()


def clean_text(text: str) -> str:
    """One-line text with collapsed spacing, outer quotes removed and a doubled final dot fixed."""
    text = _SPACE.sub(" ", _BOLD.sub("", text)).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return _DOUBLE_DOT.sub(".", text)


def require_text(value: Any, what: str) -> str:
    """A non-empty cleaned string, or a ParseError naming what was missing."""
    if not isinstance(value, str) or not clean_text(value):
        raise ParseError(f"{what} is empty or missing")
    return clean_text(value)


def parse_free_text(raw: str, *, key: str, labels: tuple[str, ...] = ()) -> dict[str, str]:
    """A whole answer as one text under `key`, without a leading label such as `Caption:`.

    Paragraph breaks are kept; an empty answer is an error. A JSON answer must hold `key`.
    """
    data = json_answer(raw)
    if data is not None:
        return {key: require_text(data.get(key), f"the JSON field {key!r}")}
    lines = [_BOLD.sub("", line).rstrip() for line in raw.strip().splitlines()]
    if lines and labels:
        label = re.compile(rf"^\s*(?:{'|'.join(labels)})\s*:\s*", re.IGNORECASE)
        lines[0] = label.sub("", lines[0])
    paragraphs = [" ".join(p.split()) for p in "\n".join(lines).split("\n\n")]
    text = "\n\n".join(p for p in paragraphs if p)
    if not text:
        raise ParseError("the answer is empty")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return {key: _DOUBLE_DOT.sub(".", text)}
