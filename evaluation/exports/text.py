"""Items with their scores as jsonl and csv, and every raw rating of the selected items."""

import csv
import json
from typing import IO

from evaluation.exports.export import Export, ExportRow, empty_scores

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


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
    writer = None
    for rows in export.chunks():
        for r in rows:
            flat = r.flat(export.questions)
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(flat))
                writer.writeheader()
            writer.writerow({key: neutralise(value) for key, value in flat.items()})
    if writer is None:
        header = ExportRow(0, 0, "", "", "", "", "", 0, "", empty_scores(export)).flat(
            export.questions
        )
        csv.writer(out).writerow(list(header))


def write_ratings(export: Export, out: IO[str]) -> None:
    """Every raw rating of the selected items; the first five columns are the import format."""
    writer = csv.writer(out)
    writer.writerow(["post_id", "kind", "annotator", "question", "value", "item_id", "seconds"])
    for rows in export.chunks():
        by_id = {r.item_id: r for r in rows}
        for item_id, annotator, question, value, seconds in export.raw_ratings(rows):
            item = by_id[item_id]
            writer.writerow(
                [
                    neutralise(item.post_id),
                    neutralise(item.kind),
                    neutralise(annotator),
                    question,
                    value,
                    item_id,
                    seconds,
                ]
            )
