"""Inserting many rows at once and getting their ids back, fast on both backends."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
)

from crmkit.core import prebuilt
from crmkit.core.types import Money, UTCDateTime
from crmkit.errors import ValidationError

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
        if connection.dialect.name != "sqlite":
            return _insert_returning(connection, table, list(rows))
        before = _last_id(connection, table)
        connection.execute(insert(table), list(rows))
        return _derived_ids(connection, table, before, len(rows))
    return insert_rows(connection, table, columns, [tuple(row[c] for c in columns) for row in rows])


#: batches up to this size go in with INSERT ... RETURNING on PostgreSQL (COPY above it)
FEW_ROWS = 16


def insert_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    driver_form: bool = False,
) -> list[int]:
    """INSERT ``rows`` (tuples in ``columns`` order) into ``table``; return the new ids in order.

    ``driver_form``: the rows were already converted by :class:`RowFormat`.
    PostgreSQL: ids taken from the table's sequence, rows streamed in with
    ``COPY``. SQLite: one driver-level
    ``executemany`` — RETURNING with a guaranteed order would cost one
    statement per row there — and the ids are derived: crmkit's write
    transactions hold SQLite's write lock from BEGIN (``BEGIN IMMEDIATE``),
    and SQLite gives a new row the largest rowid plus one, so the batch's ids
    are consecutive. The count is checked, never assumed.
    """
    if not rows:
        return []
    if not driver_form and len(rows) <= FEW_ROWS and connection.dialect.name != "sqlite":
        # a handful of rows (one order from the API): one INSERT ... RETURNING beats
        # taking ids from the sequence and opening a COPY
        statement = _returning_id(table)
        if len(rows) == 1:  # the statement built once, run on the driver
            row = dict(zip(columns, rows[0], strict=True))
            return [prebuilt.write(connection, statement, row)[0].id]
        return list(
            connection.scalars(statement, [dict(zip(columns, r, strict=True)) for r in rows])
        )
    if not driver_form:
        rows = RowFormat(connection.dialect, table, columns).to_driver(rows)
    if connection.dialect.name != "sqlite":
        return _copy_rows(connection, table, columns, rows)
    before = _last_id(connection, table)
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608
    connection.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))
    return _derived_ids(connection, table, before, len(rows))


_RETURNING_ID: dict[str, Any] = {}


def _returning_id(table: Table) -> Any:
    """``INSERT INTO table ... RETURNING id`` (ids in the order of the rows), built once."""
    found = _RETURNING_ID.get(table.name)
    if found is None or found.table is not table:
        found = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        _RETURNING_ID[table.name] = found
    return found


def _copy_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> list[int]:
    """PostgreSQL: take the ids from the table's sequence, then ``COPY`` the rows in.

    COPY streams rows without building statements: several times faster than
    multi-row ``INSERT ... RETURNING`` for large batches. It runs on the
    transaction's own connection, so it commits or rolls back with it.
    """
    sequence = connection.scalar(
        text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
    )
    if sequence is None:
        raise RuntimeError(
            f"{table.name}.id has no sequence; bulk inserts need an autoincrementing integer id"
        )
    ids = list(
        connection.scalars(
            text("SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, :count)"),
            {"sequence": sequence, "count": len(rows)},
        )
    )
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in ("id", *columns))
    raw = connection.connection.driver_connection
    statement = f"COPY {quote(table.name)} ({names}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for new_id, row in zip(ids, rows, strict=True):
            copy.write_row((new_id, *row))
    return ids


def _insert_returning(
    connection: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Multi-row ``INSERT ... RETURNING`` (SQLAlchemy's insertmanyvalues), ids in row order."""
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(connection.scalars(statement, rows))


class RowFormat:
    """How rows of some of a table's columns travel to and from the database driver.

    ``to_driver`` turns rows of Python values (tuples in ``columns`` order:
    aware datetimes, Decimals, dicts for JSON ...) into the driver's
    parameters, in the same order: what SQLAlchemy's bind processing makes
    of them. ``to_python`` is its inverse for crmkit's own types and plain
    columns. On SQLite crmkit's types become text (see
    :func:`sqlite_processor`), so rows in driver form are plain strings and
    numbers: cheap to pickle, and ready for ``executemany``.
    """

    def __init__(self, dialect: Any, table: Table, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        on_sqlite = dialect.name == "sqlite"
        self._to: list[Callable[[Any], Any] | None] = []
        self._back: list[Callable[[Any], Any] | None] = []
        for name in self.columns:
            column = table.c[name]
            if on_sqlite:
                self._to.append(sqlite_processor(column, dialect))
                self._back.append(_sqlite_reader(column, dialect))
                continue
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            self._to.append(process)
            # crmkit's types stay Python values (aware UTC datetimes, Decimals) on the server
            plain = process is None or isinstance(column.type, UTCDateTime | Money)
            self._back.append(None if plain else _not_readable(name))

    def to_driver(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return self._convert(rows, self._to)

    def to_driver_row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """One row in the driver's form (:meth:`to_driver` of a single row)."""
        return tuple(
            value if function is None else function(value)
            for value, function in zip(row, self._to, strict=True)
        )

    def to_python(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return self._convert(rows, self._back)

    def _convert(
        self, rows: Sequence[tuple[Any, ...]], functions: list[Callable[[Any], Any] | None]
    ) -> list[tuple[Any, ...]]:
        if all(f is None for f in functions) or not rows:
            return rows if isinstance(rows, list) else list(rows)
        # column by column: the transposition and map() run in C, a per-row genexpr does not
        by_column = zip(*rows, strict=True)
        converted = (
            values if function is None else map(function, values)
            for values, function in zip(by_column, functions, strict=True)
        )
        return list(zip(*converted, strict=True))


def sqlite_processor(column: Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
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
    return kind.dialect_impl(dialect).bind_processor(dialect)


def _sqlite_reader(column: Column[Any], dialect: Any) -> Callable[[Any], Any] | None:
    """The inverse of :func:`sqlite_processor` for the values it produced."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _utc_from_text
    if isinstance(kind, Money):
        return _decimal_or_none
    if kind.dialect_impl(dialect).bind_processor(dialect) is None:
        return None
    return kind.dialect_impl(dialect).result_processor(dialect, None)


def _not_readable(name: str) -> Callable[[Any], Any]:
    def refuse(_value: Any) -> Any:
        raise TypeError(f"column {name!r} cannot be read back from its driver form here")

    return refuse


def _utc_from_text(value: str | None) -> dt.datetime | None:
    # parsing the offset costs a fifth of .replace(tzinfo=...) afterwards
    return None if value is None else _fromisoformat(value + "+00:00")


_fromisoformat = dt.datetime.fromisoformat


def _decimal_or_none(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


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


def existing_values(
    connection: Connection, column: Column[Any], values: Iterable[Any], *, distinct: bool = False
) -> set[Any]:
    """Which of ``values`` are stored in ``column`` (an indexed column), in few statements.

    ``distinct``: the values are known distinct and not None (not sifted again)."""
    if distinct:
        wanted = list(values)
    else:
        unique = dict.fromkeys(values)
        unique.pop(None, None)
        wanted = list(unique)
    found: set[Any] = set()
    if not wanted:
        return found
    name, table = column.name, column.table.name
    if connection.dialect.name == "sqlite":
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            if len(chunk) >= _SETWISE and _none_or_all(connection, column, chunk, found):
                continue
            marks = ",".join("?" * len(chunk))
            sql = f'SELECT "{name}" FROM "{table}" WHERE "{name}" IN ({marks})'  # noqa: S608
            found.update(row[0] for row in connection.exec_driver_sql(sql, tuple(chunk)))
        return found
    # PostgreSQL: one array parameter instead of thousands of bound values (the dialect is
    # imported here: a SQLite run never loads it)
    from sqlalchemy.dialects.postgresql import ARRAY

    values_param = bindparam("values", type_=ARRAY(column.type))
    if len(wanted) >= _SETWISE:
        told = _none_or_all_server(connection, column, values_param, wanted)
        if told is not None:
            return told
    statement = select(column).where(column == any_(values_param))
    found.update(connection.scalars(statement, {"values": wanted}))
    return found


def _none_or_all_server(
    connection: Connection, column: Column[Any], values_param: Any, wanted: list[Any]
) -> set[Any] | None:
    """PostgreSQL: the stored ones among ``wanted`` when none or all of them are stored, told
    by one range read; None when some are, or it cannot tell (see :func:`_none_or_all`). The
    server takes the least and the greatest by the column's own collation, so the range holds
    every wanted value whatever that collation; the answer compares them as sets."""
    name, table = column.name, column.table.name
    sql = text(
        "WITH wanted AS (SELECT min(v) AS low, max(v) AS high FROM unnest(:values) AS v) "
        f'SELECT count(*), string_agg(CAST("{name}" AS text), chr(31)) FROM '  # noqa: S608
        f'(SELECT "{name}" FROM "{table}", wanted WHERE "{name}" BETWEEN low AND high '
        "LIMIT :limit) AS stored"
    ).bindparams(values_param)
    count, joined = connection.execute(sql, {"values": wanted, "limit": len(wanted) + 1}).one()
    if not count:
        return set()
    # a stored value holding the separator splits into more parts than values were counted
    if count == len(wanted) and wanted[0].__class__ is str:
        parts = joined.split("\x1f")
        if len(parts) == count and set(parts) == set(wanted):
            return set(wanted)
    return None


#: from this many values on, :func:`existing_values` first asks whether none or all are stored
_SETWISE = 1000


def _none_or_all(
    connection: Connection, column: Column[Any], chunk: list[Any], found: set[Any]
) -> bool:
    """SQLite: True when none of ``chunk`` (distinct values) is stored in ``column``, or all
    are (then added to ``found``), told by one range read; False: some are, or it cannot
    tell.

    An import's rows are mostly all new or all stored already (the same file again), and
    files mostly list them in the order of their ids. The stored values between the
    chunk's least and greatest (text compares by code point in Python and in SQLite's
    BINARY collation) come back as one string: none there, none stored; exactly the
    chunk's values, all stored. Reading one index range costs a fraction of looking each
    value up (``IN``).
    """
    try:
        low, high = min(chunk), max(chunk)
    except TypeError:  # values of different types: no order to read a range by
        return False
    name, table = column.name, column.table.name
    sql = (
        f'SELECT count(*), group_concat("{name}", char(31)) FROM '  # noqa: S608
        f'(SELECT "{name}" FROM "{table}" WHERE "{name}" BETWEEN ? AND ? LIMIT ?)'
    )
    count, text = connection.exec_driver_sql(sql, (low, high, len(chunk) + 1)).one()
    if not count:
        return True
    # a stored value holding the separator splits into more parts than values were counted
    if (
        count == len(chunk)
        and low.__class__ is str
        and high.__class__ is str
        and _same_values(text.split("\x1f"), chunk)
    ):
        found.update(chunk)
        return True
    return False


def _same_values(stored: list[str], chunk: list[str]) -> bool:
    """The same values in both lists (each without repeats); the index gives them in order,
    as ``chunk`` mostly is already (ids ascending in the file), so that is asked first."""
    return stored == chunk or sorted(stored) == sorted(chunk)


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


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size``."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------
# What the database accepts, read from the table definitions (never a second list):
# text columns refuse NUL (PostgreSQL cannot store it; SQLite cuts the text there when
# shown) and, for String(n), more than n characters (PostgreSQL refuses, SQLite would
# keep them: refused on both so a file imports the same everywhere); money columns
# refuse what NUMERIC(p, s) cannot hold; integers what INTEGER cannot; times what
# cannot be written in UTC.
# --------------------------------------------------------------------------

NUL_REASON = "contains a NUL character (\\x00), which the database cannot store; remove it"

_INTEGER_RANGE = (-(2**31), 2**31 - 1)


def text_limit(column: Column[Any]) -> int | None:
    """The most characters ``column`` (a String(n) or Text column) holds; None: no limit."""
    kind = column.type
    if not isinstance(kind, String):
        raise TypeError(f"{column.table.name}.{column.name} is not a text column")
    return kind.length


def money_limits(column: Column[Any]) -> tuple[int, int]:
    """(digits before the point, digits after it) a NUMERIC(p, s) money column holds."""
    kind = column.type
    impl = kind.impl if isinstance(kind, Money) else kind
    precision, scale = impl.precision, impl.scale
    if precision is None or scale is None:
        raise TypeError(f"{column.table.name}.{column.name} is not a NUMERIC(p, s) column")
    return precision - scale, scale


def money_problem(amount: Decimal, before: int, places: int) -> str | None:
    """Why NUMERIC(before + places, places) cannot hold ``amount``; None when it can."""
    if not amount.is_finite():
        return f"{amount} is not a finite number"
    if abs(amount) >= Decimal(10) ** before:
        return f"{amount} is too large (at most {before} digits before the point)"
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        try:
            exact = amount == amount.quantize(Decimal(1).scaleb(-places))
        except InvalidOperation:
            exact = False
        if not exact:
            return f"{amount} has more than {places} decimal places"
    return None


def utc_problem(moment: dt.datetime) -> str | None:
    """Why ``moment`` (aware) cannot be stored: it has no UTC form (years 1 and 9999)."""
    try:
        moment.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return f"{moment.isoformat()} is out of range in UTC (before year 1 or after 9999 there)"
    return None


def value_problem(column: Column[Any], value: Any) -> str | None:
    """Why the database (either backend) would refuse ``value`` in ``column``; None: it takes it.

    Derived from the column's type: see the rules above. Values of other
    types (booleans, JSON, dates) and None pass.
    """
    if value is None:
        return None
    kind = column.type
    if isinstance(value, str):
        if isinstance(kind, String):
            if "\x00" in value:
                return NUL_REASON
            if kind.length is not None and len(value) > kind.length:
                return f"is {len(value)} characters long; at most {kind.length} fit"
        return None
    if isinstance(kind, Money) and isinstance(value, Decimal):
        return money_problem(value, *money_limits(column))
    if isinstance(kind, UTCDateTime) and isinstance(value, dt.datetime):
        return utc_problem(value) if value.year in (1, 9999) else None
    if isinstance(kind, Integer) and isinstance(value, int) and not isinstance(value, bool):
        low, high = _INTEGER_RANGE
        if not low <= value <= high:
            return f"{value} is out of range (an integer from {low} to {high})"
    return None


_CHECKERS: dict[Table, Callable[[Mapping[str, Any]], tuple[str, str] | None]] = {}


def _row_checker(table: Table) -> Callable[[Mapping[str, Any]], tuple[str, str] | None]:
    """A function giving (column, problem) for the first value of a row ``table`` refuses.

    Text columns are checked inline (NUL, length): the common case costs a
    few operations per value; other typed columns go through
    :func:`value_problem`.
    """
    texts = [(c.name, c.type.length) for c in table.columns if isinstance(c.type, String)]
    typed = [c for c in table.columns if isinstance(c.type, Money | UTCDateTime | Integer)]

    def check(row: Mapping[str, Any]) -> tuple[str, str] | None:
        get = row.get
        for name, limit in texts:
            value = get(name)
            if value.__class__ is str and (
                "\x00" in value or (limit is not None and len(value) > limit)
            ):
                return name, value_problem(table.c[name], value) or ""
        for column in typed:
            value = get(column.name)
            if value is not None:
                problem = value_problem(column, value)
                if problem is not None:
                    return column.name, problem
        return None

    return check


def check_values(table: Table, row: Mapping[str, Any], *, label: str | None = None) -> None:
    """Raise ValidationError naming the first value of ``row`` that ``table`` cannot store."""
    checker = _CHECKERS.get(table)
    if checker is None:
        checker = _CHECKERS[table] = _row_checker(table)
    found = checker(row)
    if found is not None:
        name, problem = found
        field = f"{label}.{name}" if label else name
        raise ValidationError(f"{field} {problem}", field=name)


def lock_inserts(connection: Connection, table: Table) -> None:
    """Queue the writers that add rows with external ids to ``table`` until this transaction ends.

    Check-then-insert (skip the external ids already stored, insert the
    rest) is only safe if no other writer inserts the same ids in between.
    On SQLite crmkit's write transactions already run one at a time
    (``BEGIN IMMEDIATE``); on PostgreSQL this takes a transaction-scoped
    advisory lock named after the table, so a second import of the same
    file waits, then finds the rows "already present" instead of failing on
    the unique index. Taking it again in the same transaction is free.
    """
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"crmkit:insert:{table.name}".encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
