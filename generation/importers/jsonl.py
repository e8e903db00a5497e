"""The generic format: one JSON object a line.

`{"id": "...", "text": "...", "image": "relative/path.jpg" | null, "metadata": {...},
"items": [{"kind": "xWant", "text": "...", "position": 1}]}`; `image`, `metadata` and `items` are
optional, an item's position defaults to its place in the list.
"""

import json
from collections.abc import Iterator

from generation.importers.base import (
    ImportedItem,
    PostRecord,
    Source,
    external_id,
    json_lines,
    require,
)

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
        explicit = False
        if obj.get("items") is not None:
            for index, item in enumerate(require(source, line, obj, "items", list), start=1):
                if (
                    type(item) is dict
                    and type(item.get("kind")) is str
                    and type(item.get("text")) is str
                    and "position" not in item
                ):  # the common case, checked cheaply: files have millions of items
                    record.items.append(ImportedItem(item["kind"], index, item["text"]))
                    continue
                kind = require(source, line, item, "kind", str)
                text = require(source, line, item, "text", str)
                position = item.get("position", index)
                if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                    raise source.error(line, f"item {index}: 'position' must be an integer ≥ 0")
                record.items.append(ImportedItem(kind, position, text))
                explicit = True
            slots = {(item.kind, item.position) for item in record.items} if explicit else ()
            if explicit and len(slots) != len(record.items):
                raise source.error(line, "two items with the same kind and position")
        yield record
