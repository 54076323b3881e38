"""Database helpers for the few hand-written statements on the hot paths (the ledger's, the statement's)."""

from __future__ import annotations

from django.db import connection
from django.db.backends.utils import CursorWrapper
from psycopg.types.numeric import Int8

from wallet_project.core.telemetry import server_binding_cursor


def prepared_cursor() -> CursorWrapper:
    """A Django cursor whose statements PostgreSQL parses and plans once per connection.

    The ORM binds parameters client-side (its SQL is not always preparable), so its statements are
    planned on every execution; a statement sent through this cursor is bound server-side and, with
    ``DB_PREPARED_STATEMENTS`` on (``prepare_threshold`` 0), prepared on first use and reused for the
    life of the connection. Pass ids through ``int8`` so that the parameter types, part of the
    prepared statement's key, do not vary with the size of the number. On SQLite, or with prepared
    statements off, this is the ordinary cursor.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        return connection.cursor()
    with connection.wrap_database_errors:
        # As BaseDatabaseWrapper._cursor does, with psycopg's server-binding cursor in place of the ORM's
        # (traced when tracing is on; _prepare_cursor is private: django-stubs leaves it out).
        cursor = server_binding_cursor(connection.connection)
        return connection._prepare_cursor(cursor)  # type: ignore[attr-defined]


def int8(value: int | None) -> Int8 | None:
    """An id as a PostgreSQL bigint parameter (psycopg would pick int2, int4 or int8 by its size)."""
    return None if value is None else Int8(value)
