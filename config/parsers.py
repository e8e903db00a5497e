"""DRF's parsers, refusing what would otherwise reach the database as a 500: JSON nested too deeply
for Python, and NUL characters in form and multipart bodies (PostgreSQL cannot store them).

JSON bodies are checked for NULs before any view (`config.middleware.RejectNulMiddleware`); form
and multipart bodies are checked here, once parsed, so a NUL is answered as a 400 naming the field
(`{"name": ["NUL characters are not allowed."]}`) and only by views that take such bodies (the
others answer 415). The settings make these the API's parsers.
"""

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

NUL_MESSAGE = "NUL characters are not allowed."


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, refusing bodies nested too deeply for Python's json (a 400, not a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


def nul_field(data: QueryDict, files: MultiValueDict | None = None) -> str | None:
    """The first field of a parsed form whose name or a value holds a NUL (the name shown with
    `\\x00` in its place); None when none does. Django's multipart parser already drops
    unprintable characters from uploaded files' names."""
    fields = [*data.lists(), *((name, []) for name in files or ())]
    for name, values in fields:
        if "\x00" in name or any("\x00" in value for value in values):
            return name.replace("\x00", "\\x00")
    return None


def nul_refused(data: QueryDict, files: MultiValueDict | None = None) -> None:
    """Raise DRF's ValidationError (a 400 naming the field) when a field holds a NUL."""
    field = nul_field(data, files)
    if field is not None:
        raise ValidationError({field: [NUL_MESSAGE]})


class SafeFormParser(FormParser):
    """DRF's form parser, refusing a NUL in a field."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        nul_refused(data)
        return data


class SafeMultiPartParser(MultiPartParser):
    """DRF's multipart parser, refusing a NUL in a field or an uploaded file's name."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        nul_refused(parsed.data, parsed.files)
        return parsed
