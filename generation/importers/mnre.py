"""MNRE (multimodal relation extraction): one Python dict literal a line, one entity pair a line.

`{'token': [...], 'h': {'name', 'pos'}, 't': {...}, 'img_id': '...jpg', 'relation': '...'}`.
Lines of the same sentence and image become one post; its tokens and every entity pair with its
relation go into the metadata. The external id is the image file name without its extension.
"""

import ast
from collections.abc import Iterator
from pathlib import PurePosixPath

from generation.importers.base import PostRecord, Source, require

NAME = "mnre"
PIPELINE = "import"


def detect(head: str) -> bool:
    first = head.lstrip().split("\n", 1)[0]
    return first.startswith("{'") and "'token'" in first and "'img_id'" in first


def _entity(source: Source, line: int, obj: dict, key: str, n_tokens: int) -> dict:
    entity = require(source, line, obj, key, dict)
    name = require(source, line, entity, "name", str)
    pos = require(source, line, entity, "pos", list)
    if (
        len(pos) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos)
        or not 0 <= pos[0] < pos[1] <= n_tokens
    ):
        raise source.error(line, f"'{key}.pos' must be [start, end) within the tokens")
    return {"name": name, "pos": pos}


def read(source: Source) -> Iterator[PostRecord]:
    # Lines of one sentence are gathered from anywhere in the file, so posts are held until the
    # end: MNRE files are small (12,247 lines in the largest split).
    posts: dict[tuple[str, tuple[str, ...]], PostRecord] = {}
    sentences_of_image: dict[str, int] = {}
    for line, text in source:
        if not text.strip():
            continue
        try:
            obj = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise source.error(line, "not a Python dict literal") from None
        tokens = require(source, line, obj, "token", list)
        if not tokens or not all(isinstance(token, str) for token in tokens):
            raise source.error(line, "'token' must be a non-empty list of strings")
        image = require(source, line, obj, "img_id", str)
        pair = {
            "head": _entity(source, line, obj, "h", len(tokens)),
            "tail": _entity(source, line, obj, "t", len(tokens)),
            "relation": require(source, line, obj, "relation", str),
        }
        key = (image, tuple(tokens))
        if key in posts:
            posts[key].metadata["relations"].append(pair)
            continue
        # An image with a second, different sentence gets "<image>#2" as its id.
        n = sentences_of_image[image] = sentences_of_image.get(image, 0) + 1
        stem = PurePosixPath(image).stem
        posts[key] = PostRecord(
            line=line,
            external_id=stem if n == 1 else f"{stem}#{n}",
            text=" ".join(tokens),
            image=image,
            metadata={"tokens": tokens, "relations": [pair], "image_name": image},
        )
    if not posts:
        raise source.error(1, "the file is empty")
    yield from posts.values()
