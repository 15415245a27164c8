"""One-row reads for the busiest read paths, without SQLAlchemy's per-statement machinery.

A ``GET`` of a session's totals or of a widget needs one row of ``live_sessions``.
Through a SQLAlchemy ``Connection`` that costs 80–150 µs of CPU per request
(the autobegin, SQLite's ``BEGIN`` and ``ROLLBACK`` as statements of their own,
the compiled-cache lookup, the result machinery): ten times SQLite's own work.
Here the statement is compiled once per dialect and runs on a pooled DBAPI
connection; each column's own type converts its value (``dialect_impl`` and
``result_processor``), so a row holds exactly what ``conn.execute`` would give,
and a database error is raised as SQLAlchemy raises it (``sa.exc.DBAPIError``
subclasses, which the web layer answers with 503).

For single statements only: each runs in its own implicit transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa


class OneRow:
    """``first(engine, params)``: the first row of a SELECT, as a tuple, or ``None``."""

    def __init__(self, statement: sa.Select[Any]):
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, list[Callable[[Any], Any] | None]]] = {}

    def _compile(self, dialect: sa.Dialect) -> tuple[str, tuple[str, ...] | None, list[Callable[[Any], Any] | None]]:
        compiled = self.statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup is not None else None
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.selected_columns
        ]
        entry = (compiled.string, names, processors)
        self._compiled[dialect.name] = entry
        return entry

    def first(self, engine: sa.Engine, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        dialect = engine.dialect
        sql, names, processors = self._compiled.get(dialect.name) or self._compile(dialect)
        parameters: Any = tuple(params[name] for name in names) if names is not None else dict(params)
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            connection = engine.raw_connection()
        except dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, parameters, exc, dbapi_error, dialect=dialect) from exc
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(sql, parameters)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except dbapi_error as exc:
            if dialect.is_disconnect(exc, connection.dbapi_connection, None):
                connection.invalidate(exc)  # not back into the pool
            raise sa.exc.DBAPIError.instance(sql, parameters, exc, dbapi_error, dialect=dialect) from exc
        finally:
            connection.close()  # back to the pool (which rolls back what the driver began)
        if row is None:
            return None
        return tuple(value if convert is None else convert(value) for value, convert in zip(row, processors, strict=True))
