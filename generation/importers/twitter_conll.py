"""Twitter-2015/2017 multimodal NER (as distributed with the UMT code), CoNLL style.

A line `IMGID:<id>`, then one `token<TAB>BIO-tag` a line, a blank line between tweets. The post's
text is the tokens joined by spaces; tokens, tags and the entity spans go into its metadata; the
image is `<id>.jpg`.
"""

import re
from collections.abc import Iterator

from generation.importers.base import PostRecord, Source

NAME = "twitter-conll"
PIPELINE = "import"
TAG = re.compile(r"^(O|[BI]-[A-Za-z]+)$")


def detect(head: str) -> bool:
    return head.lstrip("\ufeff\n\r ").startswith("IMGID:")


def entities(tokens: list[str], tags: list[str]) -> list[dict]:
    spans: list[dict] = []
    for index, tag in enumerate(tags):
        if tag.startswith("B-") or (
            tag.startswith("I-")
            and (not spans or spans[-1]["end"] != index or spans[-1]["type"] != tag[2:])
        ):
            spans.append({"type": tag[2:], "start": index, "end": index + 1})
        elif tag.startswith("I-"):
            spans[-1]["end"] = index + 1
    for span in spans:
        span["text"] = " ".join(tokens[span["start"] : span["end"]])
    return spans


def read(source: Source) -> Iterator[PostRecord]:
    current: PostRecord | None = None
    tokens: list[str] = []
    tags: list[str] = []

    def finish() -> PostRecord:
        assert current is not None
        if not tokens:
            raise source.error(current.line, f"tweet IMGID:{current.external_id} has no tokens")
        current.text = " ".join(tokens)
        current.metadata = {
            "tokens": list(tokens),
            "tags": list(tags),
            "entities": entities(tokens, tags),
            "image_name": current.image,
        }
        return current

    seen_any = False
    for line, text in source:
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        seen_any = True
        if text.startswith("IMGID:"):
            if current is not None:
                yield finish()
            image_id = text[len("IMGID:") :].strip()
            if not image_id:
                raise source.error(line, "IMGID: without an id")
            current = PostRecord(line=line, external_id=image_id, text="", image=f"{image_id}.jpg")
            tokens, tags = [], []
            continue
        if current is None:
            raise source.error(line, "expected 'IMGID:<id>' before the first token")
        token, sep, tag = text.rpartition("\t")
        if not sep or not token:
            raise source.error(line, "expected 'token<TAB>tag'")
        if not TAG.match(tag.strip()):
            raise source.error(line, f"bad BIO tag {tag.strip()!r}")
        tokens.append(token)
        tags.append(tag.strip())
    if not seen_any:
        raise source.error(1, "the file is empty")
    if current is not None:
        yield finish()
