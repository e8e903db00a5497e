"""What every importer shares: the records it yields, the error it raises, and a careful reader.

An importer is a module with `NAME`, `PIPELINE` (the pipeline its items are filed under),
`detect(head) -> bool` (does this text, the start of a file, look like the format?) and
`read(source) -> Iterator[PostRecord]`. Importers only parse and validate; the service writes.
"""

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any, NamedTuple

from config.errors import ApplicationError
from generation.pipelines.base import ItemSpec

NO_PROVENANCE: Any = MappingProxyType({})


class ImportedItem(NamedTuple):
    """An item read from a file: ItemSpec's fields in a lighter shape (files hold millions)."""

    kind: str
    position: int
    text: str
    provenance: Any = NO_PROVENANCE


class ImportFileError(ApplicationError):
    """A problem in the input that stops the import (the API answers it as a 400).

    The message reads `file:line: what`, or `file: task 7 (element 3, line 120): what` for an
    element of a JSON array (a whole export may sit on one line).
    """


class Element(int):
    """The line a JSON array element starts on, knowing which element it is and its name.

    An int, so that it stands wherever a record's line is expected (`PostRecord.line`, item
    provenance, "first on line N"); `Source.error` and `Source.where` write it out in full.
    """

    index: int  # counted from 1
    label: str  # what the element is, once known ("task 7")

    def __new__(cls, line: int, index: int, label: str = "") -> "Element":
        element = super().__new__(cls, line)
        element.index, element.label = index, label
        return element

    def named(self, label: str) -> "Element":
        return Element(int(self), self.index, label)

    def describe(self) -> str:
        if self.label:
            return f"{self.label} (element {self.index}, line {int(self)})"
        return f"element {self.index} (line {int(self)})"


@dataclass
class StageRecord:
    """A stage's output carried by the file (MIKO's pipeline outputs), kept as a StageResult."""

    stage: str
    model: str
    raw_answer: str
    parsed: dict[str, Any] | None
    error: str = ""
    request: dict[str, Any] = field(default_factory=dict)


@dataclass
class PostRecord:
    line: int
    external_id: str
    text: str
    image: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    items: list[ItemSpec | ImportedItem] = field(default_factory=list)
    stages: list[StageRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Source:
    """Lines of an import file, checked as they are read: size cap and UTF-8.

    Reads the file in binary so that a line above `max_line_bytes` is refused before it is held,
    and counts the bytes read for the progress bar.
    """

    def __init__(self, stream: IO[bytes], *, name: str, max_line_bytes: int) -> None:
        self.stream = stream
        self.name = name
        self.max_line_bytes = max_line_bytes
        self.lineno = 0
        self.bytes_read = 0

    def where(self, line: int) -> str:
        """`file:line`, or `file: task 7 (element 3, line 120)` for a JSON array's element."""
        if isinstance(line, Element):
            return f"{self.name}: {line.describe()}"
        return f"{self.name}:{line}"

    def error(self, line: int, what: str) -> ImportFileError:
        return ImportFileError(f"{self.where(line)}: {what}")

    def blocks(self, size: int = 64 * 1024) -> Iterator[str]:
        """The file as text, `size` bytes at a time, for formats that need not break into lines.

        A JSON array may sit on one line longer than the line cap; its reader caps each element.
        """
        decoder = codecs.getincrementaldecoder("utf-8")()
        first = True
        while True:
            raw = self.stream.read(size)
            self.bytes_read += len(raw)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                line = self.lineno + 1 + raw[: max(exc.start, 0)].count(b"\n")
                raise self.error(line, "not valid UTF-8") from None
            if first:
                text, first = text.removeprefix("\ufeff"), False
            self.lineno += text.count("\n")
            if text:
                yield text
            if not raw:
                return

    def __iter__(self) -> Iterator[tuple[int, str]]:
        while True:
            raw = self.stream.readline(self.max_line_bytes + 1)
            if not raw:
                return
            self.lineno += 1
            self.bytes_read += len(raw)
            if len(raw) > self.max_line_bytes:
                raise self.error(
                    self.lineno, f"line longer than {self.max_line_bytes} bytes; refused"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self.error(
                    self.lineno,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                ) from None
            if self.lineno == 1:
                text = text.removeprefix("\ufeff")
            yield self.lineno, text


def json_lines(source: Source) -> Iterator[tuple[int, Any]]:
    """One JSON value a line; blank lines are skipped."""
    empty = True
    for line, text in source:
        if not text.strip():
            continue
        empty = False
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as exc:
            raise source.error(line, f"bad JSON: {exc.msg} (column {exc.colno})") from None
    if empty:
        raise source.error(1, "the file is empty")


def json_array(source: Source) -> Iterator[tuple[Element, Any]]:
    """The elements of a top-level JSON array, one at a time, each with its `Element`.

    A streaming reader so that a large export is never held whole, whether it is indented or
    sits on one line (Label Studio writes both): blocks are added to a buffer until the next
    element decodes. An element longer than the line cap is refused.
    """
    decoder = json.JSONDecoder()
    blocks = source.blocks()
    # The buffer starts on line `base_line`, `base_column` characters into it.
    buf, pos, base_line, base_column, eof = "", 0, 1, 0, False
    index = 0

    def fill(at_least: int = 1) -> None:
        nonlocal buf, eof
        chunks, size = [buf], 0
        while size < at_least:
            try:
                text = next(blocks)
            except StopIteration:
                eof = True
                break
            chunks.append(text)
            size += len(text)
        buf = "".join(chunks)

    def skip_space() -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or eof:
                return buf[pos] if pos < len(buf) else ""
            fill()

    def line_at(at: int) -> int:
        return base_line + buf.count("\n", 0, at)

    def column_at(at: int) -> int:
        """Counted from 1, like the line."""
        newline = buf.rfind("\n", 0, at)
        return at - newline if newline >= 0 else base_column + at + 1

    def cut_short(error: json.JSONDecodeError) -> bool:
        # The buffer can end anywhere, even inside a string or a number: an error is the file's
        # only when more text could not change it (a string still open, or too near the end).
        return error.msg.startswith("Unterminated string") or len(buf[error.pos :].strip()) < 64

    first = skip_space()
    if not first:
        raise source.error(1, "the file is empty")
    if first != "[":
        raise source.error(line_at(pos), "expected a JSON array ('[')")
    pos += 1
    expect_element = True
    while True:
        char = skip_space()
        if char == "]":
            pos += 1
            if skip_space():
                raise source.error(line_at(pos), "unexpected text after the JSON array")
            return
        if not char:
            raise source.error(line_at(pos), "bad JSON: the array is not closed")
        if not expect_element:
            if char != ",":
                raise source.error(
                    line_at(pos), f"bad JSON after element {index}: expected ',' or ']'"
                )
            pos += 1
            expect_element = True
            continue
        index += 1
        start = Element(line_at(pos), index)
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                pending = len(buf) - pos
                if eof or not cut_short(exc):
                    line = line_at(exc.pos)
                    where = "" if line == start else f" at line {line}"
                    raise source.error(
                        start, f"bad JSON{where}: {exc.msg} (column {column_at(exc.pos)})"
                    ) from None
                if pending > source.max_line_bytes:
                    raise source.error(
                        start, f"array element longer than {source.max_line_bytes} bytes; refused"
                    ) from None
                fill(at_least=max(pending, 4096))
        if end - pos > source.max_line_bytes:
            raise source.error(
                start, f"array element longer than {source.max_line_bytes} bytes; refused"
            )
        yield start, value
        # Drop what was read so the buffer holds one element at a time.
        base_line, base_column = line_at(end), column_at(end) - 1
        buf, pos = buf[end:], 0
        expect_element = False


def require(source: Source, line: int, obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """`obj[key]`, which must exist and have the given type, or an error naming both."""
    if not isinstance(obj, dict):
        raise source.error(line, f"expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise source.error(line, f"missing field '{key}'")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        names = " or ".join(t.__name__ for t in _as_tuple(kind))
        raise source.error(line, f"field '{key}' must be {names}, not {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def external_id(source: Source, line: int, value: Any, key: str = "id") -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise source.error(line, f"field '{key}' must be a non-empty string or integer")
    return str(value).strip()


def records_checked(source: Source, records: Iterator[PostRecord]) -> Iterator[PostRecord]:
    """The checks every importer shares: id length, duplicates within the file, storable text."""
    first_line: dict[str, int] = {}
    for record in records:
        if len(record.external_id) > 255:
            raise source.error(record.line, "id longer than 255 characters")
        if record.external_id in first_line:
            raise source.error(
                record.line,
                f"duplicate id {record.external_id!r} (first on line "
                f"{first_line[record.external_id]})",
            )
        first_line[record.external_id] = record.line
        if "\x00" in record.text:
            raise source.error(record.line, "text contains a NUL character")
        for item in record.items:
            if not item.kind or len(item.kind) > 32:
                raise source.error(record.line, f"item kind {item.kind!r}: 1 to 32 characters")
        yield record
