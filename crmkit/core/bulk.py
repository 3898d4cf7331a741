"""Inserting many rows at once and getting their ids back, fast on both backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """INSERT ``rows`` into ``table`` as one batch; return the new ids in row order.

    PostgreSQL: one ``INSERT ... RETURNING`` per page of rows (SQLAlchemy's
    insertmanyvalues, ordered by parameter). SQLite: a plain ``executemany``
    — RETURNING with a guaranteed order would cost one statement per row
    there — and the ids are derived: crmkit's write transactions hold
    SQLite's write lock from BEGIN (``BEGIN IMMEDIATE``), and SQLite gives a
    new row the largest rowid plus one, so the batch's ids are consecutive.
    The count is checked, never assumed.
    """
    if not rows:
        return []
    if connection.dialect.name != "sqlite":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(connection.scalars(statement, rows).all())
    last = select(func.max(table.c.id))
    before = connection.scalar(last) or 0
    _executemany(connection, table, rows)
    after = connection.scalar(last) or 0
    if after - before != len(rows):
        raise RuntimeError(
            f"inserted {len(rows)} rows into {table.name} but ids moved from {before} to "
            f"{after}; the write lock was not held"
        )
    return list(range(before + 1, after + 1))


def _executemany(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """One driver-level ``executemany`` with the columns' own bind processors.

    The same conversions SQLAlchemy applies (our UTCDateTime and Money types
    included), without its per-row parameter bookkeeping, which costs more
    than SQLite's insert itself on large batches.
    """
    given = set(rows[0])
    # the compiled INSERT lists columns in table order: build the tuples in that order
    columns = [column.name for column in table.columns if column.name in given]
    if len(columns) != len(given) or any(len(row) != len(columns) for row in rows):
        connection.execute(insert(table), rows)  # ragged rows: let SQLAlchemy fill defaults
        return
    dialect = connection.dialect
    sql = str(insert(table).compile(dialect=dialect, column_keys=columns))
    # the dialect's own processors: on SQLite a datetime becomes the same text SQLAlchemy's
    # INSERT writes, so stored times compare correctly with bound ones in WHERE clauses
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    pairs = list(zip(columns, processors, strict=True))
    values = [
        tuple(process(row[name]) if process else row[name] for name, process in pairs)
        for row in rows
    ]
    connection.exec_driver_sql(sql, values)
