"""Importers, one module a format, and the format detection that picks one from content."""

from importlib import import_module
from types import ModuleType

from generation.importers.base import ImportFileError

# Format name → module. Modules are imported when used; the order is the detection order
# (the more specific JSON shapes before the generic ones).
FORMATS: dict[str, str] = {
    "miko-pipeline": "generation.importers.miko_pipeline",
    "jsonl": "generation.importers.jsonl",
    "miko-release": "generation.importers.miko_release",
    "label-studio": "generation.importers.label_studio",
    "twitter-conll": "generation.importers.twitter_conll",
    "mnre": "generation.importers.mnre",
    "csv": "generation.importers.csv",
}
FORMAT_CHOICES = ["auto", *FORMATS]
DETECT_BYTES = 64 * 1024


def importer_for(format_name: str) -> ModuleType:
    if format_name not in FORMATS:
        raise ImportFileError(
            f"unknown format {format_name!r}; choose one of {', '.join(FORMAT_CHOICES)}"
        )
    return import_module(FORMATS[format_name])


def format_detect(head: bytes, *, name: str) -> str:
    """The format whose shape the start of a file has, or an error that lists the formats."""
    text = head.decode("utf-8", errors="replace")
    if not text.strip():
        raise ImportFileError(f"{name}:1: the file is empty")
    for format_name in FORMATS:
        if importer_for(format_name).detect(text):
            return format_name
    raise FormatNotRecognised(name)


class FormatNotRecognised(ImportFileError):
    """`auto` found no format. Its message is the command line's; `words` fit other places."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(self.words("pass --format"))

    def words(self, how: str) -> str:
        """The message, with `how` to choose the format (`choose it in the Format menu`)."""
        return (
            f"{self.name}:1: cannot tell the format from the content; {how} ({', '.join(FORMATS)})"
        )


__all__ = [
    "FORMATS",
    "FORMAT_CHOICES",
    "FormatNotRecognised",
    "ImportFileError",
    "format_detect",
    "importer_for",
]
