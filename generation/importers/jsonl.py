"""The generic format: one JSON object a line.

`{"id": "...", "text": "...", "image": "relative/path.jpg" | null, "metadata": {...},
"items": [{"kind": "xWant", "text": "...", "position": 1}]}`; `image`, `metadata` and `items` are
optional, an item's position defaults to its place in the list.
"""

import json
from collections.abc import Iterator

from generation.importers.base import PostRecord, Source, external_id, json_lines, require
from generation.pipelines.base import ItemSpec

NAME = "jsonl"
PIPELINE = "import"


def detect(head: str) -> bool:
    first = head.lstrip().split("\n", 1)[0]
    try:
        obj = json.loads(first)
    except ValueError:
        return False
    return isinstance(obj, dict) and "id" in obj and "text" in obj


def read(source: Source) -> Iterator[PostRecord]:
    for line, obj in json_lines(source):
        require(source, line, obj, "id", (str, int))
        record = PostRecord(
            line=line,
            external_id=external_id(source, line, obj["id"]),
            text=require(source, line, obj, "text", str),
        )
        if obj.get("image") is not None:
            record.image = require(source, line, obj, "image", str)
        if obj.get("metadata") is not None:
            record.metadata = require(source, line, obj, "metadata", dict)
        if obj.get("items") is not None:
            for index, item in enumerate(require(source, line, obj, "items", list), start=1):
                kind = require(source, line, item, "kind", str)
                text = require(source, line, item, "text", str)
                position = item.get("position", index)
                if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                    raise source.error(line, f"item {index}: 'position' must be an integer ≥ 0")
                record.items.append(ItemSpec(kind=kind, position=position, text=text))
        yield record
