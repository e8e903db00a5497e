"""A Label Studio JSON export: an array of tasks.

The external id is the task id, the text is `data.text` and the image the file name at the end of
`data.image` (a URL or Label Studio's `/data/local-files/?d=...` path). When the text carries MIKO's
`Intention N:` lines, the text before the first one is the post and the lines are its items.
"""

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from generation.importers.base import PostRecord, Source, external_id, json_array, require
from generation.pipelines.base import ParseError
from generation.pipelines.miko import intention_items, parse_intentions

NAME = "label-studio"
PIPELINE = "miko"
INTENTION_LINE = re.compile(r"^\s*Intention\s*\d+\s*[:：.]", re.IGNORECASE | re.MULTILINE)


def detect(head: str) -> bool:
    return (
        head.lstrip("\ufeff \r\n\t").startswith("[")
        and '"data"' in head
        and ('"annotations"' in head or '"predictions"' in head or '"id"' in head)
    )


def image_name(url: str) -> str | None:
    parts = urlsplit(url)
    path = parse_qs(parts.query).get("d", [parts.path])[0]
    name = PurePosixPath(unquote(path).replace("\\", "/")).name
    return name or None


def read(source: Source) -> Iterator[PostRecord]:
    for line, task in json_array(source):
        task_id = external_id(source, line, require(source, line, task, "id", (int, str)))
        data = require(source, line, task, "data", dict)
        text = require(source, line, data, "text", str)
        record = PostRecord(line=line, external_id=task_id, text=text)
        match = INTENTION_LINE.search(text)
        if match:
            record.text = text[: match.start()].strip()
            try:
                record.items = intention_items(parse_intentions(text[match.start() :]))
            except ParseError as exc:
                raise source.error(line, f"intentions: {exc}") from None
        if data.get("image") is not None:
            url = require(source, line, data, "image", str)
            record.image = image_name(url)
            record.metadata["image_url"] = url
            record.metadata["image_name"] = record.image
        others = {key: value for key, value in data.items() if key not in ("text", "image")}
        if others:
            record.metadata["data"] = others
        yield record
