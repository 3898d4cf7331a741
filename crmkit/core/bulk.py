"""Inserting many rows at once and getting their ids back, fast on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, any_, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY

from crmkit.core.types import Money, UTCDateTime

#: SQLite allows 32,766 bound parameters per statement; stay well below it
_LOOKUP_CHUNK = 10_000


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """INSERT ``rows`` (dicts) into ``table`` as one batch; return the new ids in row order.

    Rows that do not all carry the same keys go through SQLAlchemy's own
    ``insert`` so column defaults are filled in.
    """
    if not rows:
        return []
    given = set(rows[0])
    columns = [column.name for column in table.columns if column.name in given]
    if len(columns) != len(given) or any(len(row) != len(columns) for row in rows):
        before = _last_id(connection, table) if connection.dialect.name == "sqlite" else 0
        if connection.dialect.name != "sqlite":
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            return list(connection.scalars(statement, list(rows)).all())
        connection.execute(insert(table), list(rows))
        return _derived_ids(connection, table, before, len(rows))
    return insert_rows(connection, table, columns, [tuple(row[c] for c in columns) for row in rows])


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> list[int]:
    """INSERT ``rows`` (tuples in ``columns`` order) into ``table``; return the new ids in order.

    PostgreSQL: one ``INSERT ... RETURNING`` per page of rows (SQLAlchemy's
    insertmanyvalues, ordered by parameter). SQLite: one driver-level
    ``executemany`` — RETURNING with a guaranteed order would cost one
    statement per row there — and the ids are derived: crmkit's write
    transactions hold SQLite's write lock from BEGIN (``BEGIN IMMEDIATE``),
    and SQLite gives a new row the largest rowid plus one, so the batch's ids
    are consecutive. The count is checked, never assumed.
    """
    if not rows:
        return []
    if connection.dialect.name != "sqlite":
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(
            connection.scalars(statement, [dict(zip(columns, row, strict=True)) for row in rows])
        )
    before = _last_id(connection, table)
    # the compiled INSERT lists the columns in table order
    order = [c.name for c in table.columns if c.name in set(columns)]
    sql = str(insert(table).compile(dialect=connection.dialect, column_keys=order))
    position = {name: i for i, name in enumerate(columns)}
    processors = [sqlite_processor(table.c[name], connection) for name in order]
    if list(columns) == order and all(p is None for p in processors):
        values = rows if isinstance(rows, list) else list(rows)
    else:
        # column by column: the transposition and map() run in C, a per-row genexpr does not
        by_column = list(zip(*rows, strict=True))
        values = list(
            zip(
                *(
                    by_column[position[name]]
                    if process is None
                    else map(process, by_column[position[name]])
                    for name, process in zip(order, processors, strict=True)
                ),
                strict=True,
            )
        )
    connection.exec_driver_sql(sql, values)
    return _derived_ids(connection, table, before, len(rows))


def sqlite_processor(column: Column[Any], connection: Connection) -> Callable[[Any], Any] | None:
    """What SQLAlchemy's bind processing does to a value of ``column`` on SQLite, done fast.

    crmkit's own types get a direct implementation (a datetime becomes the
    exact text SQLAlchemy writes, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, so
    bulk-written times compare correctly with bound ones in WHERE clauses;
    money becomes its decimal text); other types use the dialect's processor.
    """
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return sqlite_utc_text
    if isinstance(kind, Money):
        return _money_text
    dialect = connection.dialect
    return kind.dialect_impl(dialect).bind_processor(dialect)


def sqlite_utc_text(value: dt.datetime | None) -> str | None:
    """An aware datetime as the UTC text SQLAlchemy stores on SQLite (naive ones refused)."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give a time zone")
        value = value.astimezone(dt.UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _money_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("money must be Decimal, not float")
    return str(value)


def existing_values(connection: Connection, column: Column[Any], values: Iterable[Any]) -> set[Any]:
    """Which of ``values`` are stored in ``column`` (an indexed column), in few statements."""
    wanted = list(dict.fromkeys(v for v in values if v is not None))
    found: set[Any] = set()
    if not wanted:
        return found
    name, table = column.name, column.table.name
    if connection.dialect.name == "sqlite":
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f'SELECT "{name}" FROM "{table}" WHERE "{name}" IN ({marks})'  # noqa: S608
            found.update(row[0] for row in connection.exec_driver_sql(sql, tuple(chunk)))
        return found
    # PostgreSQL: one array parameter instead of thousands of bound values
    values_param = bindparam("values", type_=ARRAY(column.type))
    statement = select(column).where(column == any_(values_param))
    found.update(connection.scalars(statement, {"values": wanted}))
    return found


def _last_id(connection: Connection, table: Table) -> int:
    return connection.scalar(select(func.max(table.c.id))) or 0


def _derived_ids(connection: Connection, table: Table, before: int, count: int) -> list[int]:
    after = _last_id(connection, table)
    if after - before != count:
        raise RuntimeError(
            f"inserted {count} rows into {table.name} but ids moved from {before} to "
            f"{after}; the write lock was not held"
        )
    return list(range(before + 1, after + 1))
