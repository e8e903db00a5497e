"""The released MIKO benchmark: a JSON array of posts with their ten intentions and 0/1 labels.

`{"text", "image": "80.jpg", "intentions": {"Intention 1": ..., "Intention 10": ...},
"intention_labels": [1, 0, ...]}`. The external id is the image name without extension ("80");
intentions are items at their slot positions; the labels stay in the metadata for `import_ratings`.

The other public release (`MIKO_benchmark.json`) names the image `image_name` and carries the
`prompt` that was sent, kept in the metadata. Labels are optional: a file without them imports
posts and items only.
"""

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from generation.importers.base import ImportedItem, PostRecord, Source, json_array, require
from generation.importers.label_studio import slots_named
from generation.pipelines.miko import MIKO_KINDS

NAME = "miko-release"
PIPELINE = "miko"
KEY = re.compile(r"^\s*intention\s*(\d+)\s*$", re.IGNORECASE)


def detect(head: str) -> bool:
    return head.lstrip("\ufeff \r\n\t").startswith("[") and (
        '"intention_labels"' in head
        or ('"intentions"' in head and ('"image"' in head or '"image_name"' in head))
    )


def image_field(obj: dict) -> str:
    """`image` in one release, `image_name` in the other."""
    return "image_name" if "image" not in obj and "image_name" in obj else "image"


def read(source: Source) -> Iterator[PostRecord]:
    for line, obj in json_array(source):
        image_key = image_field(obj) if isinstance(obj, dict) else "image"
        image = require(source, line, obj, image_key, str)
        external_id = PurePosixPath(image.replace("\\", "/")).stem
        if not external_id:
            raise source.error(line, f"field '{image_key}' must name an image file")
        line = line.named(f"post {external_id!r}")
        text = require(source, line, obj, "text", str)
        intentions = require(source, line, obj, "intentions", dict)
        labels = None
        if obj.get("intention_labels") is not None:
            labels = require(source, line, obj, "intention_labels", list)
        numbered: dict[int, str] = {}
        for key, value in intentions.items():
            match = KEY.match(key)
            if not match or not isinstance(value, str):
                raise source.error(line, f"bad intention {key!r}: expected 'Intention N': text")
            numbered[int(match.group(1))] = value
        if not numbered or not set(numbered) <= set(range(1, 11)):
            raise source.error(line, "expected intentions numbered 'Intention 1' to 'Intention 10'")
        if labels is not None and (
            len(labels) != 10 or any(label not in (0, 1) or label is True for label in labels)
        ):
            raise source.error(line, "'intention_labels' must be ten 0/1 values")
        warnings = []
        if len(numbered) < 10:
            # The release has a few posts with nine intentions: keep the ones there are.
            missing = [MIKO_KINDS[n - 1] for n in range(1, 11) if n not in numbered]
            noun = "intention" if len(missing) == 1 else "intentions"
            warnings.append(
                f"{source.where(line)}: {noun} {slots_named(missing)} missing; "
                f"imported the other {len(numbered)}"
            )
        items = [ImportedItem(MIKO_KINDS[n - 1], n, numbered[n].strip()) for n in sorted(numbered)]
        metadata: dict = {"image_name": image}
        if labels is not None:
            metadata["intention_labels"] = labels
        if obj.get("prompt") is not None:
            metadata["prompt"] = require(source, line, obj, "prompt", str)
        yield PostRecord(
            line=line,
            external_id=external_id,
            text=text,
            image=image,
            metadata=metadata,
            items=items,
            warnings=warnings,
        )
