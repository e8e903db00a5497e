"""Writing many rows fast: the row shapes of stage results and items, COPY, and its one encoder.

The import and the runner write stage results and knowledge items by the thousand. On PostgreSQL
they go in with COPY in its text format, formatted here (`copy_text`): the driver's per-row
adaptation costs more than the server's whole work. `StageResultRow` and `KnowledgeItemRow` are
the one list of the columns each writer fills, in COPY order; JSON columns travel already dumped,
as text. Elsewhere (SQLite) `insert_rows` falls back to `bulk_create`.

SQL whose table or column names vary is built with `psycopg.sql` and run as text through
Django's cursor (`execute`), so query logging and `execute_wrapper` see it like any other query.
"""

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from psycopg import sql

COPY_BLOCK_LINES = 5000


class StageResultRow(NamedTuple):
    """A stage result as written by COPY (JSON fields as text)."""

    post: int
    stage: str
    template_hash: str
    model: str
    params_hash: str
    endpoint_key: str
    parameters: str
    batch: int | None
    endpoint: int | None
    status: str
    request: str
    raw_answer: str
    parsed: str | None
    error: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    attempts: int
    created_at: datetime
    updated_at: datetime


class KnowledgeItemRow(NamedTuple):
    """A knowledge item as written by COPY (provenance as JSON text)."""

    post: int
    batch: int
    kind: str
    position: int
    text: str
    stage_result: int | None
    description_result: int | None
    provenance: str
    created_at: datetime


STAGE_RESULT_FIELDS = list(StageResultRow._fields)
KNOWLEDGE_ITEM_FIELDS = list(KnowledgeItemRow._fields)


def copy_text(value: Any) -> str:
    """A value in COPY's text format (JSON columns arrive already dumped, as text).

    Dispatches on the exact type first: this runs for every value of every row.
    """
    kind = type(value)
    if kind is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            value = (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    if kind is int:
        return str(value)
    if value is None:
        return "\\N"
    if kind is bool:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def copy_lines_of(rows: list[tuple]) -> list[str]:
    """Rows as COPY text lines (without their line ends)."""
    if not rows:
        return []
    # Rows written together share their timestamps: format those once.
    constants = {
        i: copy_text(value)
        for i, value in enumerate(rows[0])
        if isinstance(value, datetime) and all(row[i] is value for row in rows)
    }
    lines = []
    for row in rows:
        if constants:
            row = [constants.get(i, value) for i, value in enumerate(row)]
        lines.append("\t".join(map(copy_text, row)))
    return lines


def column_list(model: type[models.Model], fields: Iterable[str]) -> sql.Composed:
    """The quoted database columns of these fields, comma-separated."""
    return sql.SQL(", ").join(sql.Identifier(model._meta.get_field(name).column) for name in fields)


def table(model: type[models.Model]) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def execute(cursor: Any, query: sql.Composable, params: Any = None) -> None:
    """Run a composed statement through Django's cursor, as text (SQLite reads the same quoting)."""
    context = cursor.connection if connection.vendor == "postgresql" else None
    cursor.execute(query.as_string(context), params)


def _copy_in(cursor: Any, target: sql.Composable, columns: sql.Composable, lines: list[str]):
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, columns)
    with cursor.copy(statement) as copy:
        for start in range(0, len(lines), COPY_BLOCK_LINES):
            copy.write(("\n".join(lines[start : start + COPY_BLOCK_LINES]) + "\n").encode())


def copy_lines(
    model: type[models.Model], fields: list[str], lines: list[str], *, need_ids: bool = True
) -> list[int]:
    """COPY rows given as text lines (without their ids) into the model's table (PostgreSQL).

    With `need_ids`, ids come from the table's sequence first, so that children can refer to
    them, and are returned in the lines' order; otherwise the database numbers the rows itself
    and no ids come back. Lines are sent in large writes.
    """
    if not lines:
        return []
    columns = column_list(model, fields)
    ids: list[int] = []
    with connection.cursor() as cursor:
        if need_ids:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [model._meta.db_table, len(lines)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            lines = [f"{pk}\t{line}" for pk, line in zip(ids, lines, strict=True)]
            columns = sql.SQL(", ").join([sql.Identifier("id"), columns])
        _copy_in(cursor, table(model), columns, lines)
    return ids


def insert_rows(
    model: type[models.Model], fields: list[str], rows: list[tuple], *, need_ids: bool = True
) -> list[int]:
    """Insert rows (values in `fields` order, JSON already dumped) and return their ids.

    COPY on PostgreSQL (see `copy_lines`); elsewhere `bulk_create`, which always returns ids.
    """
    if not rows:
        return []
    if connection.vendor == "postgresql":
        return copy_lines(model, fields, copy_lines_of(rows), need_ids=need_ids)
    objs = instances(model, fields, rows)
    model.objects.bulk_create(objs, batch_size=500)
    return [obj.pk for obj in objs]


def instances(model: type[models.Model], fields: list[str], rows: list[tuple]) -> list:
    """Model instances of rows (values in `fields` order, JSON already dumped), for the ORM."""
    attnames = [model._meta.get_field(name).attname for name in fields]
    json_columns = {
        f.attname for f in model._meta.concrete_fields if isinstance(f, models.JSONField)
    }
    objs = []
    for row in rows:
        values = dict(zip(attnames, row, strict=True))
        for column in json_columns & values.keys():
            if values[column] is not None:
                values[column] = json.loads(values[column])
        objs.append(model(**values))
    return objs


def copy_into_temp(
    cursor: Any, model: type[models.Model], fields: list[str], rows: list[tuple]
) -> sql.Identifier:
    """COPY rows into a session temp table shaped like the model's, emptied at commit (PostgreSQL).

    Returns the temp table, for an `INSERT ... SELECT` that decides what to keep.
    """
    temp = sql.Identifier(f"_copy_{model._meta.db_table}")
    columns = column_list(model, fields)
    execute(
        cursor,
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS "
            "AS SELECT {} FROM {} WITH NO DATA"
        ).format(temp, columns, table(model)),
    )
    _copy_in(cursor, temp, columns, copy_lines_of(rows))
    return temp


@contextmanager
def foreign_key_checks_skipped() -> Iterator[None]:
    """On PostgreSQL, skip the per-row foreign key checks of the rows written inside, if allowed.

    For writers whose rows can only point at rows they locked or wrote just before in the same
    transaction (the import): the checks (one query per row at commit, a third of the import's
    time) cannot fail. Needs superuser or `GRANT SET ON PARAMETER session_replication_role`;
    without it the checks simply run. The setting is put back on the way out, so a transaction
    around the writer checks its own rows as usual. Only when an operator opts in
    (`DISTILLERY_IMPORT_SKIP_FK_CHECKS`): by default every row is checked.
    """
    if connection.vendor != "postgresql" or not settings.DISTILLERY_IMPORT_SKIP_FK_CHECKS:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        previous = cursor.fetchone()[0]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        previous = None
    yield
    if previous is not None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('session_replication_role', %s, true)", [previous])
