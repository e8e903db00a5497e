"""Readers of rating files: each yields one `RatingRow` a rating, with the place it came from.

The readers check the file's structure; `ratings_import` (services) checks the rows against the
database. Either names the problem as `file:line: problem` (CSV) or, in a JSON array, as
`file: task 7 (element 3, line 120): problem` (an export may sit on one line).
"""

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from annotation.errors import AnnotationError

FORMATS = ("csv", "label-studio", "miko-release")
CSV_COLUMNS = ("post_id", "kind", "annotator", "question", "value")
# Label Studio's MIKO project: three levels, from the lowest to the highest.
LABEL_STUDIO_LEVELS = {"不相关": 0, "一般相关": 1, "非常相关": 2}
LABEL_STUDIO_FIELD = re.compile(r"^(?P<question>[A-Za-z_]+?)(?P<position>\d+)$")
WHOLE_NUMBER = re.compile(r"[-+]?[0-9]+")
MIKO_RELEASE_QUESTION = "relevance"
MIKO_RELEASE_ANNOTATOR = "miko-release"
DEFAULT_SCALES = {"csv": "1-5", "label-studio": "miko-3", "miko-release": "binary"}


class RatingFileError(AnnotationError):
    """A file that cannot be read as ratings; the message names the file and the place."""


@dataclass(frozen=True)
class RatingRow:
    line: int
    post: str  # the post's external id
    annotator: str
    question: str
    kind: str | None = None  # the item, by kind (csv) ...
    position: int | None = None  # ... or by position (MIKO slots)
    value: int | None = None  # a value of the campaign's scale
    level: tuple[int, int] | None = None  # or a rank among n levels, mapped onto the scale
    # A rating of a MIKO slot (the release's labels, a Label Studio task's ten choices) may have
    # no item to land on where the post has fewer intentions: it is reported, not refused.
    optional: bool = False
    where: str = ""  # the element of a JSON array: "task 7 (element 3, line 120)"
    text: str | None = None  # the post's text, for `--match-by text`
    image: str | None = None  # the post's image name, which tells apart posts of one text

    @property
    def place(self) -> str:
        """Where in the file the row is: `:12` (a line) or `: task 7 (element 3, line 120)`."""
        return f": {self.where}" if self.where else f":{self.line}"


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, line: int | str, problem: str) -> RatingFileError:
        """`file:line: problem`, or `file: element 3 (line 120): problem` given a place."""
        place = f" {line}" if isinstance(line, str) else str(line)
        return RatingFileError(f"{self.path}:{place}: {problem}")


def _element(index: int, line: int, label: str = "") -> str:
    if label:
        return f"{label} (element {index}, line {line})"
    return f"element {index} (line {line})"


def _json_array(reader: _Reader) -> Iterator[tuple[int, int, Any]]:
    """The elements of a top-level JSON array, each with its index (from 1) and first line."""
    try:
        text = reader.path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise reader.error(1, f"not UTF-8 ({error.reason})") from None
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if not text.startswith("[", position):
        raise reader.error(_line(text, position), "expected a JSON array")
    position = _skip_space(text, position + 1)
    if text.startswith("]", position):
        return
    index = 0
    while True:
        index += 1
        line = _line(text, position)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            at = "" if error.lineno == line else f" at line {error.lineno}"
            raise reader.error(
                _element(index, line), f"invalid JSON{at}: {error.msg} (column {error.colno})"
            ) from None
        yield index, line, value
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
        elif text.startswith("]", position):
            return
        else:
            raise reader.error(
                _line(text, position), f"expected ',' or ']' in the array after element {index}"
            )


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def read_csv(path: Path) -> Iterator[RatingRow]:
    reader = _Reader(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise reader.error(1, f"the header must be {','.join(CSV_COLUMNS)}")
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                raise reader.error(line, f"expected {len(CSV_COLUMNS)} columns, found {len(row)}")
            post, kind, annotator, question, value = (cell.strip() for cell in row)
            for name, cell in zip(
                CSV_COLUMNS, (post, kind, annotator, question, value), strict=True
            ):
                if not cell:
                    raise reader.error(line, f"{name} is empty")
            if not WHOLE_NUMBER.fullmatch(value):
                raise reader.error(line, f"value {value!r} is not a whole number")
            yield RatingRow(line, post, annotator, question, kind=kind, value=int(value))


def read_label_studio(path: Path, *, annotator: str | None = None) -> Iterator[RatingRow]:
    """Ratings of a Label Studio export: the `choices` named `<question><slot>` of each annotation.

    The annotator is `label-studio-<completed_by>`, or `annotator` for the whole file: each MIKO
    annotator ran their own Label Studio, so every file says `completed_by: 1`.
    """
    from generation.importers.label_studio import image_name, split_post

    reader = _Reader(path)
    for index, line, task in _json_array(reader):
        if not isinstance(task, dict) or "id" not in task:
            raise reader.error(_element(index, line), "a task must be an object with an id")
        where = _element(index, line, f"task {task['id']}")
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise reader.error(where, "annotations must be a list")
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        text = split_post(data["text"])[0] if isinstance(data.get("text"), str) else None
        image = image_name(data["image"]) if isinstance(data.get("image"), str) else None
        for annotation in annotations:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            who = annotation.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            if annotator is None and who in (None, ""):
                raise reader.error(where, "an annotation has no completed_by")
            name = annotator or f"label-studio-{who}"
            for result in annotation.get("result") or []:
                if not isinstance(result, dict) or result.get("type") != "choices":
                    continue
                field = str(result.get("from_name", ""))
                match = LABEL_STUDIO_FIELD.match(field)
                if not match:
                    raise reader.error(where, f"{field!r} does not end with an item number")
                choices = (result.get("value") or {}).get("choices") or []
                if len(choices) != 1 or choices[0] not in LABEL_STUDIO_LEVELS:
                    known = ", ".join(LABEL_STUDIO_LEVELS)
                    raise reader.error(where, f"{field} has {choices!r}; expected one of {known}")
                yield RatingRow(
                    line,
                    str(task["id"]),
                    name,
                    match["question"].lower(),
                    position=int(match["position"]),
                    level=(LABEL_STUDIO_LEVELS[choices[0]], len(LABEL_STUDIO_LEVELS)),
                    optional=True,
                    where=where,
                    text=text,
                    image=image,
                )


def read_miko_release(path: Path, *, annotator: str | None = None) -> Iterator[RatingRow]:
    """The 0/1 `intention_labels` of either public release (`image` or `image_name`)."""
    reader = _Reader(path)
    for index, line, record in _json_array(reader):
        if not isinstance(record, dict):
            raise reader.error(_element(index, line), "a record must be an object")
        key = "image_name" if "image" not in record and "image_name" in record else "image"
        image, labels = record.get(key), record.get("intention_labels")
        if not isinstance(image, str) or not PurePosixPath(image.replace("\\", "/")).stem:
            raise reader.error(
                _element(index, line), f"{key} (the file name that names the post) is missing"
            )
        post = PurePosixPath(image.replace("\\", "/")).stem
        where = _element(index, line, f"post {post!r}")
        if not isinstance(labels, list) or len(labels) != 10:
            raise reader.error(where, "intention_labels must be a list of ten 0/1 labels")
        text = record.get("text") if isinstance(record.get("text"), str) else None
        for position, label in enumerate(labels, start=1):
            if label not in (0, 1) or isinstance(label, bool):
                raise reader.error(where, f"intention label {position} is {label!r}, not 0 or 1")
            yield RatingRow(
                line,
                post,
                annotator or MIKO_RELEASE_ANNOTATOR,
                MIKO_RELEASE_QUESTION,
                position=position,
                level=(label, 2),
                optional=True,
                where=where,
                text=text,
                image=PurePosixPath(image.replace("\\", "/")).name,
            )


READERS = {"csv": read_csv, "label-studio": read_label_studio, "miko-release": read_miko_release}


def level_value(values: tuple[int, ...], rank: int, levels: int) -> int:
    """Map rank `rank` of `levels` ordered levels onto a scale: lowest to lowest, top to top."""
    if levels == 1:
        return values[-1]
    return values[(len(values) - 1) * rank // (levels - 1)]
