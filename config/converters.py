"""Ids from URLs and query strings, parsed as bounded integers.

An id is one to nineteen ASCII digits no greater than the largest bigint (2**63 - 1): a path with
anything else (`²`, a 30-digit number) does not match, so it is a 404 before any view or query
runs, and a query parameter read with `parse_id` is None, which the view answers with a 400.
Django's `<int:...>` takes any length of digits, which the database then cannot compare.

`<id:name>` is registered when this module is imported; the URLconfs that use it import it.
"""

import re

from django.urls import register_converter

MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")


def parse_id(value: object) -> int | None:
    """`value` as an id (a whole number from 0 to MAX_ID written in ASCII digits), else None."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


def query_id(request, name: str) -> int | None:
    """The id in query parameter `name` of a DRF request: None when absent; a 400 naming the
    parameter when it is not an id."""
    from rest_framework.exceptions import ValidationError

    value = request.query_params.get(name)
    if value is None:
        return None
    number = parse_id(value)
    if number is None:
        raise ValidationError({name: [f"A {name} id is a whole number from 0 to {MAX_ID}."]})
    return number


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(f"{value!r} is not an id")  # the URL does not match: a 404
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
