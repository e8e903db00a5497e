"""Label Studio tasks: one an item, each annotator's ratings of it as an annotation."""

import json
from typing import IO

from evaluation.exports.export import Export


def write_label_studio(export: Export, out: IO[str]) -> None:
    """A JSON list of Label Studio tasks, one an item, each annotator's ratings as an annotation."""
    out.write("[")
    first = True
    for rows in export.chunks():
        by_item: dict[int, dict[str, list]] = {}
        for item_id, annotator, question, value, _ in export.raw_ratings(rows):
            by_item.setdefault(item_id, {}).setdefault(annotator, []).append(
                {
                    "from_name": question,
                    "to_name": "item",
                    "type": "rating",
                    "value": {"rating": value},
                }
            )
        for r in rows:
            task = {
                "id": r.item_id,
                "data": {
                    "post_id": r.post_id,
                    "text": r.post_text,
                    "image": r.image,
                    "image_description": r.image_description,
                    "kind": r.kind,
                    "item": r.text,
                },
                "annotations": [
                    {"completed_by": annotator, "result": result}
                    for annotator, result in by_item.get(r.item_id, {}).items()
                ],
            }
            out.write(("\n" if first else ",\n") + json.dumps(task, ensure_ascii=False))
            first = False
    out.write("\n]\n")
