"""Items with their scores as jsonl and csv, and every raw rating of the selected items."""

import csv
import json
from collections.abc import Iterable
from typing import IO

from evaluation.exports.export import Export, ExportRow, empty_scores

# A spreadsheet runs a cell as a formula when its first non-blank character is one of these; a
# leading tab, carriage return or line feed is refused too (OWASP's CSV injection advice).
FORMULA_STARTS = ("=", "+", "-", "@")
CONTROL_STARTS = ("\t", "\r", "\n")


def neutralise(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and (
        value.startswith(CONTROL_STARTS) or value.lstrip().startswith(FORMULA_STARTS)
    ):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` whose every cell, headers included, passes through `neutralise`."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([neutralise(value) for value in row])


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_jsonl(export: Export, out: IO[str]) -> None:
    for rows in export.chunks():
        out.writelines(
            json_line(
                {
                    "item_id": r.item_id,
                    "post_id": r.post_id,
                    "kind": r.kind,
                    "position": r.position,
                    "text": r.text,
                    "post_text": r.post_text,
                    "image": r.image,
                    "image_description": r.image_description,
                    "scores": r.scores,
                }
            )
            for r in rows
        )


def write_csv(export: Export, out: IO[str]) -> None:
    writer, header = SafeWriter(out), None
    for rows in export.chunks():
        for r in rows:
            flat = r.flat(export.questions)
            if header is None:
                header = list(flat)
                writer.writerow(header)
            writer.writerow(flat[key] for key in header)
    if header is None:
        empty = ExportRow(0, 0, "", "", "", "", "", 0, "", empty_scores(export))
        writer.writerow(list(empty.flat(export.questions)))


def write_ratings(export: Export, out: IO[str]) -> None:
    """Every raw rating of the selected items; the first five columns are the import format."""
    writer = SafeWriter(out)
    writer.writerow(["post_id", "kind", "annotator", "question", "value", "item_id", "seconds"])
    for rows in export.chunks():
        by_id = {r.item_id: r for r in rows}
        for item_id, annotator, question, value, seconds in export.raw_ratings(rows):
            item = by_id[item_id]
            writer.writerow([item.post_id, item.kind, annotator, question, value, item_id, seconds])
