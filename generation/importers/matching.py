"""Recognising a post by its text (`--match-by text`), for files that number posts their own way.

The MIKO expert annotation is one Label Studio export per annotator, each from its own
installation: one post has a different task id in every file. Matched by text (whitespace
collapsed; for Label Studio the text before the intention lines), the files' ratings land on the
same items and the overlap between annotators yields agreement. Two posts of one text are told
apart by their image's file name; where that does not settle it, the import stops and says so.
"""

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from generation.importers.base import ImportFileError, PostRecord, Source
from generation.models import Dataset, Post

MATCH_BY = ("id", "text")


def text_key(text: str) -> bytes:
    """The digest of the text with its whitespace collapsed: what two copies of a post share."""
    return hashlib.blake2b(" ".join(text.split()).encode(), digest_size=16).digest()


@dataclass(frozen=True)
class MatchedPost:
    pk: int
    external_id: str
    text: str
    metadata: Any


class PostsByText:
    """A dataset's posts by the digest of their text, read once (ids only: datasets are large)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.ids: dict[bytes, int | list[int]] = {}
        rows = Post.objects.filter(dataset=dataset).values_list("pk", "text")
        for pk, text in rows.iterator(chunk_size=5000):
            key = text_key(text)
            found = self.ids.get(key)
            if found is None:
                self.ids[key] = pk
            elif isinstance(found, int):
                self.ids[key] = [found, pk]
            else:
                found.append(pk)

    def candidates(self, text: str) -> list[int]:
        found = self.ids.get(text_key(text))
        if found is None:
            return []
        return [found] if isinstance(found, int) else list(found)

    def resolve(self, wanted: dict[Any, tuple[str, str | None]]) -> dict[Any, MatchedPost | list]:
        """For each key's (text, image name): its post, or the candidate external ids if several
        posts have that text and the image does not tell which; keys that match none are left out.
        """
        pks = {pk for text, _ in wanted.values() for pk in self.candidates(text)}
        posts = {
            pk: (external_id, text, metadata)
            for pk, external_id, text, metadata in Post.objects.filter(pk__in=pks).values_list(
                "pk", "external_id", "text", "metadata"
            )
        }
        found: dict[Any, MatchedPost | list] = {}
        for key, (text, image) in wanted.items():
            matches = [MatchedPost(pk, *posts[pk]) for pk in self.candidates(text) if pk in posts]
            if len(matches) > 1 and image:
                same_image = [m for m in matches if _image_of(m.metadata) == image]
                matches = same_image if len(same_image) == 1 else matches
            if len(matches) == 1:
                found[key] = matches[0]
            elif matches:
                found[key] = sorted(m.external_id for m in matches)
        return found


def _image_of(metadata: Any) -> str | None:
    name = metadata.get("image_name") if isinstance(metadata, dict) else None
    return PurePosixPath(str(name).replace("\\", "/")).name if name else None


def record_image(record: PostRecord) -> str | None:
    name = record.metadata.get("image_name") or record.image
    return PurePosixPath(str(name).replace("\\", "/")).name if name else None


def records_match_by_text(
    *, posts: PostsByText, records: list[PostRecord], source: Source
) -> list[str]:
    """Make each record whose text is a post's already in the dataset that very post.

    Such a record takes the post's id, text and metadata, so the import skips it as already
    there (its items too: the post keeps those it has). A record that matches no post but whose
    id another post holds is renamed `<file>:<id>`. Returns warnings; raises ImportFileError where
    several posts share the text and the image does not tell which is meant.
    """
    found = posts.resolve({i: (r.text, record_image(r)) for i, r in enumerate(records)})
    warnings = []
    for index, record in enumerate(records):
        match = found.get(index)
        if isinstance(match, list):
            raise source.error(
                record.line,
                f"its text is the text of several posts ({', '.join(match)}); "
                "import it with --match-by id",
            )
        if match is not None:
            record.external_id, record.text, record.metadata = (
                match.external_id,
                match.text,
                match.metadata,
            )
    unmatched = {r.external_id: r for i, r in enumerate(records) if i not in found}
    taken = Post.objects.filter(dataset=posts.dataset, external_id__in=unmatched).values_list(
        "external_id", flat=True
    )
    stem = PurePosixPath(source.name).stem
    for external_id in taken:
        record = unmatched[external_id]
        record.external_id = f"{stem}:{external_id}"
        warnings.append(
            f"{source.where(record.line)}: id {external_id!r} is another post's in this "
            f"dataset; imported as {record.external_id!r}"
        )
    return warnings


def match_by_checked(match_by: str) -> str:
    if match_by not in MATCH_BY:
        raise ImportFileError(f"--match-by {match_by!r}: choose one of {', '.join(MATCH_BY)}")
    return match_by
