"""The released MIKO benchmark: a JSON array of posts with their ten intentions and 0/1 labels.

`{"text", "image": "80.jpg", "intentions": {"Intention 1": ..., "Intention 10": ...},
"intention_labels": [1, 0, ...]}`. The external id is the image name without extension ("80");
intentions are items at their slot positions; the labels stay in the metadata for `import_ratings`.
"""

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from generation.importers.base import ImportedItem, PostRecord, Source, json_array, require
from generation.pipelines.miko import MIKO_KINDS

NAME = "miko-release"
PIPELINE = "miko"
KEY = re.compile(r"^\s*intention\s*(\d+)\s*$", re.IGNORECASE)


def detect(head: str) -> bool:
    return head.lstrip("\ufeff \r\n\t").startswith("[") and '"intention_labels"' in head


def read(source: Source) -> Iterator[PostRecord]:
    for line, obj in json_array(source):
        text = require(source, line, obj, "text", str)
        image = require(source, line, obj, "image", str)
        intentions = require(source, line, obj, "intentions", dict)
        labels = require(source, line, obj, "intention_labels", list)
        numbered: dict[int, str] = {}
        for key, value in intentions.items():
            match = KEY.match(key)
            if not match or not isinstance(value, str):
                raise source.error(line, f"bad intention {key!r}: expected 'Intention N': text")
            numbered[int(match.group(1))] = value
        if not numbered or not set(numbered) <= set(range(1, 11)):
            raise source.error(line, "expected intentions numbered 'Intention 1' to 'Intention 10'")
        if len(labels) != 10 or any(label not in (0, 1) or label is True for label in labels):
            raise source.error(line, "'intention_labels' must be ten 0/1 values")
        warnings = []
        if len(numbered) < 10:
            # The release has a few posts with nine intentions: keep the ones there are.
            missing = ", ".join(str(n) for n in range(1, 11) if n not in numbered)
            warnings.append(f"{source.name}:{line}: intention {missing} missing; imported the rest")
        items = [ImportedItem(MIKO_KINDS[n - 1], n, numbered[n].strip()) for n in sorted(numbered)]
        external_id = PurePosixPath(image.replace("\\", "/")).stem
        if not external_id:
            raise source.error(line, "field 'image' must name an image file")
        yield PostRecord(
            line=line,
            external_id=external_id,
            text=text,
            image=image,
            metadata={"intention_labels": labels, "image_name": image},
            items=items,
            warnings=warnings,
        )
