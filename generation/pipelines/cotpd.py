"""CoTPD: chain-of-thought knowledge and augmentations for multimodal NER and RE.

Stage `caption` describes the image (posts without one skip it). The explanations `cot_noun`
(entities, slang, terms), `cot_sentence` (background: who, why, sentiment) and `cot_multimodal`
(how text and image relate; only for posts with an image) read the caption. The augmentations
`aug_style` (social-media rewrite), `aug_entity` (entities swapped, then a yes/no plausibility
judgement) and `aug_image` (an imagined fitting image) need only the text, so they run beside the
caption. Every answer but the caption is one knowledge item of the stage's kind.

Gold labels (the tokens' BIO tags, entity spans and types, MNRE relations, all in the post's
metadata) reach one prompt only: `aug_entity`, which has to know which entities to swap.
"""

import re
from collections.abc import Callable
from typing import Any

from generation.pipelines.base import ItemSpec, ParseError, Pipeline, Stage, StageInput, register
from generation.pipelines.parsing import (
    DESCRIPTION_SCHEMA,
    clean_text,
    json_answer,
    object_schema,
    parse_free_text,
    strip_markup,
)

COTPD_KINDS = ("cot_noun", "cot_sentence", "cot_multimodal", "aug_style", "aug_entity", "aug_image")

_TEXT_SCHEMA = object_schema({"text": {"type": "string"}})
_AUG_ENTITY_SCHEMA = object_schema(
    {
        "text": {"type": "string", "description": "the sentence with its entities replaced"},
        "plausible": {"type": "string", "enum": ["yes", "no"]},
    }
)

_REWRITTEN = re.compile(
    r"^(?:rewritten(?: sentence| text)?|new sentence|sentence)\s*[:\-–—]\s*(.*)$", re.IGNORECASE
)
_PLAUSIBLE = re.compile(
    r"^(?:plausible|plausibility|still plausible|judgement|judgment)\??\s*[:\-–—]?\s*(.*)$",
    re.IGNORECASE,
)
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def parse_caption(raw: str) -> dict[str, str]:
    """The caption as `{"description": ...}`, like MIKO's image description."""
    return parse_free_text(raw, key="description", labels=("caption", "image description"))


# Labels a model may put before its answer ("Explanation: ..."), removed from the text.
_ANSWER_LABELS = ("explanation", "answer", "rewritten(?: text)?", "post", "(?:image )?description")


def parse_text_answer(raw: str) -> dict[str, str]:
    """A free-text answer (explanation, rewrite, imagined image) as `{"text": ...}`."""
    return parse_free_text(raw, key="text", labels=_ANSWER_LABELS)


def _judgement(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    match = _YES_NO.match(str(value or ""))
    if not match:
        raise ParseError(f"the plausibility judgement is not yes or no: {str(value)[:40]!r}")
    return match.group(1).lower() == "yes"


def parse_aug_entity(raw: str) -> dict[str, Any]:
    """The rewritten sentence and the yes/no judgement: `{"text": ..., "plausible": bool}`.

    Reads `Rewritten: ...` and `Plausible: yes|no` lines (labels optional for the sentence, a bare
    final yes/no line accepted) or the JSON object of structured output.
    """
    data = json_answer(raw)
    if data is not None:
        text = clean_text(str(data.get("text") or data.get("rewritten") or ""))
        if not text:
            raise ParseError("the rewritten sentence is empty or missing")
        return {"text": text, "plausible": _judgement(data.get("plausible"))}
    lines = [strip_markup(line) for line in raw.splitlines() if line.strip()]
    sentence: list[str] = []
    judgement = None
    for line in lines:
        plausible = _PLAUSIBLE.match(line)
        rewritten = _REWRITTEN.match(line)
        if plausible and judgement is None:
            judgement = plausible.group(1)
        elif rewritten:
            sentence = [rewritten.group(1)]
        elif judgement is None and _YES_NO.fullmatch(line.rstrip(".!")) and sentence:
            judgement = line
        elif judgement is None:
            sentence.append(line)
    if judgement is None:
        raise ParseError("no 'Plausible: yes|no' judgement in the answer")
    text = clean_text(" ".join(sentence))
    if not text:
        raise ParseError("the rewritten sentence is empty or missing")
    return {"text": text, "plausible": _judgement(judgement)}


def _single_item(kind: str) -> Callable[[dict[str, Any]], list[ItemSpec]]:
    def items(parsed: dict[str, Any]) -> list[ItemSpec]:
        if not parsed.get("text"):
            raise ParseError(f"the parsed {kind} answer has no text")
        extra = {"plausible": parsed["plausible"]} if "plausible" in parsed else {}
        return [ItemSpec(kind=kind, position=1, text=parsed["text"], provenance=extra)]

    return items


def entity_variables(stage_input: StageInput) -> dict[str, Any]:
    """`entities`: the gold entities of the post (Twitter NER spans or MNRE pairs), if any.

    Only `aug_entity` reads them (it must know what to replace). Every other stage sees the text
    alone: knowledge generated for dev and test posts must not carry their gold labels.
    """
    metadata = stage_input.metadata or {}
    names: list[str] = []
    for entity in metadata.get("entities") or []:
        if isinstance(entity, dict) and entity.get("text"):
            kind = entity.get("type")
            names.append(f"{entity['text']} ({kind})" if kind else entity["text"])
    for pair in metadata.get("relations") or []:
        for role in ("head", "tail"):
            name = (pair.get(role) or {}).get("name") if isinstance(pair, dict) else None
            if name and name not in names:
                names.append(name)
    return {"entities": names}


def _stage(name: str, parse: Callable[[str], dict[str, Any]], **options: Any) -> Stage:
    return Stage(
        name=name,
        template=f"{name}.txt",
        parse=parse,
        items=_single_item(name),
        json_schema=_TEXT_SCHEMA,
        **options,
    )


COTPD = register(
    Pipeline(
        name="cotpd",
        stages=(
            Stage(
                name="caption",
                template="caption.txt",
                parse=parse_caption,
                uses_image=True,
                requires_image=True,
                json_schema=DESCRIPTION_SCHEMA,
            ),
            _stage("cot_noun", parse_text_answer, needs=("caption",)),
            _stage("cot_sentence", parse_text_answer, needs=("caption",)),
            # Without an image there is no relation to explain: such posts skip the stage.
            _stage(
                "cot_multimodal",
                parse_text_answer,
                needs=("caption",),
                requires_image=True,
            ),
            _stage("aug_style", parse_text_answer),
            Stage(
                name="aug_entity",
                template="aug_entity.txt",
                parse=parse_aug_entity,
                items=_single_item("aug_entity"),
                json_schema=_AUG_ENTITY_SCHEMA,
                variables=entity_variables,
            ),
            _stage("aug_image", parse_text_answer),
        ),
    )
)
