"""Small SQL helpers shared by the apps' raw queries."""

from collections.abc import Iterable

from django.db import connection


def in_ids(column: str, values: Iterable[int | str]) -> tuple[str, list]:
    """`column IN values` as SQL and its parameters: one array parameter on PostgreSQL, so a chunk
    of 2,000 ids is not a query of 2,000 markers (which the driver spends milliseconds
    rewriting)."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [values]
    return f"{column} IN ({', '.join(['%s'] * len(values)) or 'NULL'})", values
