"""The generic table: a CSV file with a header.

Columns `id` and `text` are required; `image` (a file name under `--images`) is optional, and
`metadata` may hold a JSON object. Every other column is kept in the post's metadata as text.
"""

import csv
import json
from collections.abc import Iterator

from generation.importers.base import PostRecord, Source

NAME = "csv"
PIPELINE = "import"
RESERVED = {"id", "text", "image", "metadata"}


def detect(head: str) -> bool:
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return False
    columns = {column.strip() for column in header}
    return {"id", "text"} <= columns


def read(source: Source) -> Iterator[PostRecord]:
    # A field may be as long as a line may be (the csv module's own limit is 128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), source.max_line_bytes))
    lines = (text for _, text in source)
    reader = csv.reader(lines)
    try:
        header: list[str] = []
        while not header:
            header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise source.error(1, "the file is empty") from None
    except csv.Error as exc:
        raise source.error(source.lineno, f"bad CSV: {exc}") from None
    for column in ("id", "text"):
        if column not in header:
            raise source.error(source.lineno, f"missing column '{column}' in the header")
    if len(set(header)) != len(header):
        raise source.error(1, "a column name appears twice in the header")
    while True:
        start = source.lineno + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise source.error(start, f"bad CSV: {exc}") from None
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise source.error(start, f"expected {len(header)} columns, found {len(row)}")
        values = dict(zip(header, row, strict=True))
        if not values["id"].strip():
            raise source.error(start, "column 'id' is empty")
        metadata = {key: value for key, value in values.items() if key not in RESERVED}
        if values.get("metadata", "").strip():
            try:
                extra = json.loads(values["metadata"])
            except json.JSONDecodeError as exc:
                raise source.error(start, f"column 'metadata': bad JSON: {exc.msg}") from None
            if not isinstance(extra, dict):
                raise source.error(start, "column 'metadata' must hold a JSON object")
            metadata.update(extra)
        yield PostRecord(
            line=start,
            external_id=values["id"].strip(),
            text=values["text"],
            image=values.get("image", "").strip() or None,
            metadata=metadata,
        )
