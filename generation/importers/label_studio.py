"""A Label Studio JSON export: an array of tasks.

The external id is the task id, the text is `data.text` and the image the file name at the end of
`data.image` (a URL or Label Studio's `/data/local-files/?d=...` path). When the text carries MIKO's
`Intention N:` lines (`Intention1:` as often as `Intention 1:`), the text before the first one is
the post and the lines are its items, each at its own slot. A task whose text lacks some slots (the
MIKO expert files hold tasks with nine) imports the ones present, with a warning naming the task
and the missing slots.
"""

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from generation.importers.base import (
    ImportedItem,
    PostRecord,
    Source,
    external_id,
    json_array,
    require,
)
from generation.pipelines.base import ParseError
from generation.pipelines.miko import MIKO_KINDS, parse_intentions

NAME = "label-studio"
PIPELINE = "miko"
INTENTION_LINE = re.compile(r"^\s*Intention\s*(\d+)\s*[:：.]", re.IGNORECASE | re.MULTILINE)


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


def split_post(text: str) -> tuple[str, str | None]:
    """The post (the text before the first `Intention N:` line) and the intention lines, if any."""
    match = INTENTION_LINE.search(text)
    if not match:
        return text, None
    return text[: match.start()].strip(), text[match.start() :]


def slots_named(kinds: list[str]) -> str:
    """`10 (open)` or `3 (xAttr), 10 (open)`: slot numbers with their kinds."""
    return ", ".join(f"{MIKO_KINDS.index(kind) + 1} ({kind})" for kind in kinds)


def read(source: Source) -> Iterator[PostRecord]:
    for at, task in json_array(source):
        task_id = external_id(source, at, require(source, at, task, "id", (int, str)))
        at = at.named(f"task {task_id}")
        data = require(source, at, task, "data", dict)
        text = require(source, at, data, "text", str)
        record = PostRecord(line=at, external_id=task_id, text=text)
        post, intentions = split_post(text)
        if intentions is not None:
            record.text = post
            try:
                parsed = parse_intentions(intentions)  # the slots present, and "missing"
            except ParseError as exc:
                raise source.error(at, f"intentions: {exc}") from None
            record.items = [
                ImportedItem(kind, position, parsed[kind])
                for position, kind in enumerate(MIKO_KINDS, start=1)
                if parsed.get(kind)
            ]
            missing = parsed.get("missing", [])
            if missing:
                noun = "intention" if len(missing) == 1 else "intentions"
                record.warnings.append(
                    f"{source.where(at)}: {noun} {slots_named(missing)} missing; "
                    f"imported the other {len(record.items)}"
                )
        if data.get("image") is not None:
            url = require(source, at, data, "image", str)
            record.image = image_name(url)
            record.metadata["image_url"] = url
            record.metadata["image_name"] = record.image
        others = {key: value for key, value in data.items() if key not in ("text", "image")}
        if others:
            record.metadata["data"] = others
        yield record
