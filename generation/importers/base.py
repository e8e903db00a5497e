"""What every importer shares: the records it yields, the error it raises, and a careful reader.

An importer is a module with `NAME`, `PIPELINE` (the pipeline its items are filed under),
`detect(head) -> bool` (does this text, the start of a file, look like the format?) and
`read(source) -> Iterator[PostRecord]`. Importers only parse and validate; the service writes.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO, Any, NamedTuple

from generation.pipelines.base import ItemSpec

NO_PROVENANCE: Any = MappingProxyType({})


class ImportedItem(NamedTuple):
    """An item read from a file: ItemSpec's fields in a lighter shape (files hold millions)."""

    kind: str
    position: int
    text: str
    provenance: Any = NO_PROVENANCE


class ImportFileError(Exception):
    """A problem in the input that stops the import; the message reads `file:line: what`."""


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

    def error(self, line: int, what: str) -> ImportFileError:
        return ImportFileError(f"{self.name}:{line}: {what}")

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


def json_array(source: Source) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array, one at a time, with the line each starts on.

    A streaming reader so that a large export is never held whole: lines are added to a buffer
    until the next element decodes. An element longer than the line cap is refused.
    """
    decoder = json.JSONDecoder()
    lines = iter(source)
    buf, pos, base_line, eof = "", 0, 1, False

    def fill(at_least: int = 1) -> None:
        nonlocal buf, eof
        chunks, size = [buf], 0
        while size < at_least:
            try:
                _, text = next(lines)
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

    def line_at(index: int) -> int:
        return base_line + buf.count("\n", 0, index)

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
                raise source.error(line_at(pos), "bad JSON: expected ',' or ']'")
            pos += 1
            expect_element = True
            continue
        start_line = line_at(pos)
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                # The buffer ends at a line end, so an element cut short fails only where the
                # buffer ends; an error before that is in the file.
                cut_short = not buf[exc.pos :].strip()
                pending = len(buf) - pos
                if eof or not cut_short:
                    raise source.error(line_at(exc.pos), f"bad JSON: {exc.msg}") from None
                if pending > source.max_line_bytes:
                    raise source.error(
                        start_line,
                        f"array element longer than {source.max_line_bytes} bytes; refused",
                    ) from None
                fill(at_least=max(pending, 4096))
        if end - pos > source.max_line_bytes:
            raise source.error(
                start_line, f"array element longer than {source.max_line_bytes} bytes; refused"
            )
        yield start_line, value
        # Drop what was read so the buffer holds one element at a time.
        base_line = line_at(end)
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
