"""MIKO's pipeline outputs: one JSON object a line with every stage's answer.

`question_id`, `image_id` (image file name), `text`, `image_descrption` (sic; stage 1, LLaVA),
`keyinfo` (stage 2), `prompt` and `intention` (stage 3). Each stage becomes a StageResult of an
imported `miko` batch and the ten intentions its items. An answer the parsers cannot read is kept
as a failed StageResult with its error (and a warning), never dropped.
"""

from collections.abc import Iterator

from generation.importers.base import (
    PostRecord,
    Source,
    StageRecord,
    external_id,
    json_lines,
    require,
)
from generation.pipelines.base import ParseError
from generation.pipelines.miko import (
    intention_items,
    parse_description,
    parse_intentions,
    parse_key_info,
)

NAME = "miko-pipeline"
PIPELINE = "miko"
# The models the MIKO authors name for these outputs (LLaVA, then gpt-35-turbo).
DESCRIBE_MODEL = "llava"
TEXT_MODEL = "gpt-35-turbo"


def detect(head: str) -> bool:
    first = head.lstrip("\ufeff \r\n\t").split("\n", 1)[0]
    return first.startswith("{") and '"question_id"' in first and '"intention"' in first


def _stage(stage: str, model: str, raw: str, parse, request: dict | None = None) -> StageRecord:
    try:
        return StageRecord(stage, model, raw, parse(raw), request=request or {})
    except ParseError as exc:
        return StageRecord(stage, model, raw, None, error=str(exc), request=request or {})


def read(source: Source) -> Iterator[PostRecord]:
    for line, obj in json_lines(source):
        record = PostRecord(
            line=line,
            external_id=external_id(
                source, line, require(source, line, obj, "question_id", (int, str)), "question_id"
            ),
            text=require(source, line, obj, "text", str),
        )
        if obj.get("image_id") is not None:
            record.image = require(source, line, obj, "image_id", str)
            record.metadata["image_name"] = record.image
        description = obj.get("image_descrption", obj.get("image_description"))
        if description is not None:
            if not isinstance(description, str):
                raise source.error(line, "field 'image_descrption' must be str")
            record.stages.append(
                _stage("describe_image", DESCRIBE_MODEL, description, parse_description)
            )
        if obj.get("keyinfo") is not None:
            raw = require(source, line, obj, "keyinfo", str)
            record.stages.append(_stage("key_info", TEXT_MODEL, raw, parse_key_info))
        raw = require(source, line, obj, "intention", str)
        prompt = obj.get("prompt")
        request = {"prompt": prompt} if isinstance(prompt, str) else {}
        stage = _stage("intentions", TEXT_MODEL, raw, parse_intentions, request)
        record.stages.append(stage)
        if stage.parsed is not None:
            try:
                record.items = intention_items(stage.parsed)
            except ParseError as exc:
                stage.parsed, stage.error = None, str(exc)
        for failed in (stage for stage in record.stages if stage.error):
            record.warnings.append(
                f"{source.name}:{line}: {failed.stage} not readable ({failed.error}); "
                "kept as a failed stage result"
                + (" without items" if failed.stage == "intentions" else "")
            )
        yield record
