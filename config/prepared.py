"""Prepared statements for the few queries that run on every annotator request (PostgreSQL only).

Django sends each query as text with its parameters inlined, so PostgreSQL parses and plans it
anew every time: for the statements an annotator runs twice per post that costs more than running
them. `prepared_cursor()` hands out Django's own cursor wrapper around a psycopg cursor with
server-side binding that executes with `prepare=True`: psycopg prepares each statement once per
connection and reuses its plan. Because the wrapper is Django's, the statements are seen like any
other query: `connection.queries` (DEBUG), `connection.execute_wrapper`, `assertNumQueries` and
`CaptureQueriesContext` count them, database errors come out as Django's (`IntegrityError`, ...),
a broken transaction is refused, and the statements join whatever transaction is open.

A connection pooler in transaction mode (PgBouncer before 1.21) cannot keep prepared statements
between transactions: set DATABASE_PREPARED=false (config/settings.py), which turns psycopg's
preparing off (`prepare_threshold=None`), and the same statements run unprepared.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper


class PreparingCursor(psycopg.Cursor):
    """A psycopg cursor (server-side binding) that prepares every statement it executes."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        prepare = True if prepare is None else prepare
        return super().execute(query, params, prepare=prepare, binary=binary)


@contextmanager
def prepared_cursor() -> Iterator[CursorWrapper]:
    # What `connection.cursor()` does, with our psycopg cursor in place of Django's client-side
    # one: connect (after a failed health check too), check thread sharing, wrap for logging.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = PreparingCursor(connection.connection)
    if connection.queries_logged:
        cursor = connection.make_debug_cursor(raw)
    else:
        cursor = connection.make_cursor(raw)
    with cursor:
        yield cursor


def fetchone(sql: str, params) -> tuple | None:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
