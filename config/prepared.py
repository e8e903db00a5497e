"""Prepared statements for the few queries that run on every annotator request (PostgreSQL only).

Django sends each query as text with its parameters inlined, so PostgreSQL parses and plans it
anew every time: for the statements an annotator runs twice per post that costs more than running
them. `prepared_cursor()` hands out a psycopg cursor with server-side binding; executing with
`prepare=True` makes psycopg prepare the statement once per connection and reuse its plan.
Database errors come out as Django's (`IntegrityError`, ...), as from `connection.cursor()`, and
the statements join whatever transaction is open.

A connection pooler in transaction mode (PgBouncer before 1.21) cannot keep prepared statements
between transactions; use session pooling there.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor]:
    # Django's cursor connects, checks thread sharing and refuses a broken transaction.
    with connection.cursor(), connection.wrap_database_errors:
        with psycopg.Cursor(connection.connection) as cursor:
            yield cursor


def fetchone(sql: str, params) -> tuple | None:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def execute(sql: str, params) -> int:
    """Run a statement; returns the number of rows it changed."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.rowcount
