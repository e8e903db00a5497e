"""Readers of rating files: each yields one `RatingRow` a rating, with the line it came from.

The readers check the file's structure; `ratings_import` (services) checks the rows against the
database. Either names the problem as `file:line: problem`.
"""

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

FORMATS = ("csv", "label-studio", "miko-release")
CSV_COLUMNS = ("post_id", "kind", "annotator", "question", "value")
# Label Studio's MIKO project: three levels, from the lowest to the highest.
LABEL_STUDIO_LEVELS = {"不相关": 0, "一般相关": 1, "非常相关": 2}
LABEL_STUDIO_FIELD = re.compile(r"^(?P<question>[A-Za-z_]+?)(?P<position>\d+)$")
MIKO_RELEASE_QUESTION = "relevance"
MIKO_RELEASE_ANNOTATOR = "miko-release"
DEFAULT_SCALES = {"csv": "1-5", "label-studio": "miko-3", "miko-release": "binary"}


class RatingFileError(ValueError):
    pass


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
    # The MIKO release labels all ten slots even where a post has fewer intentions: such a label
    # has no item to land on and is reported, not refused.
    optional: bool = False


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, line: int, problem: str) -> RatingFileError:
        return RatingFileError(f"{self.path}:{line}: {problem}")


def _json_array(reader: _Reader) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array, each with the line it starts on."""
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
    while True:
        line = _line(text, position)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise reader.error(error.lineno, f"invalid JSON: {error.msg}") from None
        yield line, value
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
        elif text.startswith("]", position):
            return
        else:
            raise reader.error(_line(text, position), "expected ',' or ']' in the array")


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
            try:
                number = int(value)
            except ValueError:
                raise reader.error(line, f"value {value!r} is not a whole number") from None
            yield RatingRow(line, post, annotator, question, kind=kind, value=number)


def read_label_studio(path: Path) -> Iterator[RatingRow]:
    reader = _Reader(path)
    for line, task in _json_array(reader):
        if not isinstance(task, dict) or "id" not in task:
            raise reader.error(line, "a task must be an object with an id")
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise reader.error(line, "annotations must be a list")
        for annotation in annotations:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            who = annotation.get("completed_by")
            if isinstance(who, dict):
                who = who.get("email") or who.get("id")
            if who in (None, ""):
                raise reader.error(line, f"an annotation of task {task['id']} has no completed_by")
            annotator = f"label-studio-{who}"
            for result in annotation.get("result") or []:
                if not isinstance(result, dict) or result.get("type") != "choices":
                    continue
                name = str(result.get("from_name", ""))
                match = LABEL_STUDIO_FIELD.match(name)
                if not match:
                    raise reader.error(
                        line, f"task {task['id']}: {name!r} does not end with an item number"
                    )
                choices = (result.get("value") or {}).get("choices") or []
                if len(choices) != 1 or choices[0] not in LABEL_STUDIO_LEVELS:
                    known = ", ".join(LABEL_STUDIO_LEVELS)
                    raise reader.error(
                        line, f"task {task['id']}: {name} has {choices!r}; expected one of {known}"
                    )
                yield RatingRow(
                    line,
                    str(task["id"]),
                    annotator,
                    match["question"].lower(),
                    position=int(match["position"]),
                    level=(LABEL_STUDIO_LEVELS[choices[0]], len(LABEL_STUDIO_LEVELS)),
                )


def read_miko_release(path: Path) -> Iterator[RatingRow]:
    reader = _Reader(path)
    for line, record in _json_array(reader):
        if not isinstance(record, dict):
            raise reader.error(line, "a record must be an object")
        image, labels = record.get("image"), record.get("intention_labels")
        if not isinstance(image, str) or not PurePosixPath(image.replace("\\", "/")).stem:
            raise reader.error(line, "image (the file name that names the post) is missing")
        if not isinstance(labels, list) or len(labels) != 10:
            raise reader.error(line, "intention_labels must be a list of ten 0/1 labels")
        post = PurePosixPath(image.replace("\\", "/")).stem
        for position, label in enumerate(labels, start=1):
            if label not in (0, 1) or isinstance(label, bool):
                raise reader.error(line, f"intention label {position} is {label!r}, not 0 or 1")
            yield RatingRow(
                line,
                post,
                MIKO_RELEASE_ANNOTATOR,
                MIKO_RELEASE_QUESTION,
                position=position,
                level=(label, 2),
                optional=True,
            )


READERS = {"csv": read_csv, "label-studio": read_label_studio, "miko-release": read_miko_release}


def level_value(values: tuple[int, ...], rank: int, levels: int) -> int:
    """Map rank `rank` of `levels` ordered levels onto a scale: lowest to lowest, top to top."""
    if levels == 1:
        return values[-1]
    return values[(len(values) - 1) * rank // (levels - 1)]
