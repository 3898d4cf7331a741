"""Statements the hot read paths build once, at import, with bound parameters.

Building a SQLAlchemy Core statement costs about as much CPU as running it, so the
reads the server serves most (a customer, the 360's parts) keep theirs ready.

On PostgreSQL, :func:`rows` runs such a statement on the driver's cursor: compiled once
per dialect, its parameters bound and its columns converted by the same SQLAlchemy type
processors as :meth:`Connection.execute <sqlalchemy.engine.Connection.execute>` uses, so
the values are the same; what is skipped is SQLAlchemy's per-call work (execution
context, cache key, result metadata: about 60 µs a statement, twice the driver's own).
Driver errors go through SQLAlchemy's handling (wrapped, a dropped connection
invalidated). :func:`rows` is for reads (``before_cursor_execute`` listeners do not see
them); :func:`write` runs one INSERT the same way and does call those listeners (the
audit log's safety net, the token cache watch the statements written).
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Integer, Select, bindparam


def picker(columns: tuple[str, ...], names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """What takes the values named ``names`` (in that order) from a row whose columns are
    ``columns``, by position: building an entity from fifty rows by name cost as much as
    building the entities. Made once per pair (a statement's rows all share one)."""
    found = _PICKERS.get((columns, names))
    if found is None:
        found = _PICKERS[columns, names] = itemgetter(*(columns.index(n) for n in names))
    return found


_PICKERS: dict[tuple[tuple[str, ...], tuple[str, ...]], Callable[[Any], tuple[Any, ...]]] = {}


def with_optional_limit(query: Select[Any]) -> dict[bool, Select[Any]]:
    """``query`` keyed by whether a limit is given: with a bound ``limit`` parameter
    (``True``) and without one (``False``)."""
    return {True: query.limit(bindparam("limit", type_=Integer)), False: query}


class _Plan:
    """A statement compiled for one dialect: SQL text, fixed parameters, converters."""

    __slots__ = ("binds", "defaults", "processors", "returns", "row", "sql", "types")

    def __init__(
        self, statement: Any, dialect: Any, column_keys: Sequence[str] | None = None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if (
            compiled.positional
            or compiled.literal_execute_params
            or compiled.post_compile_params
            or getattr(compiled, "insert_prefetch", None)  # Python-side column defaults
            or getattr(compiled, "postfetch", None)
        ):
            raise _Unsupported()
        self.sql: str = compiled.string
        # values the statement holds itself (status == 'paid'); given ones replace them
        self.defaults: dict[str, Any] = compiled.construct_params(_check=False)
        self.binds: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
        columns = compiled._result_columns
        self.types = [column[3] for column in columns]
        self.row: Any = namedtuple("Row", [column[0] for column in columns])  # noqa: PYI024
        #: (index, converter) of the columns needing one, and whether the statement
        #: returns rows: known after the first run
        self.processors: list[tuple[int, Callable[[Any], Any]]] | None = None
        self.returns = True

    def params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **given}
        for name, process in self.binds.items():
            if name in values:
                values[name] = process(values[name])
        return values

    def convert(self, dialect: Any, description: Sequence[Any]) -> None:
        found = []
        self.returns = bool(description)
        if not description:  # a statement returning nothing
            self.processors = found
            return
        for index, (type_, column) in enumerate(zip(self.types, description, strict=True)):
            process = type_._cached_result_processor(dialect, column[1])
            if process is not None:
                found.append((index, process))
        self.processors = found


class _Unsupported(Exception):
    """A statement the driver path does not run (positional or expanding parameters)."""


#: per dialect (dropped with its engine's dialect): (id(statement), column keys) ->
#: (statement, plan). The entry holds the statement, so no other statement can take its id
#: while the plan is kept (a freed statement's id may be reused by a new one).
_PLANS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], tuple[Any, _Plan | None]]] = (
    weakref.WeakKeyDictionary()
)


def _plan(statement: Any, dialect: Any, column_keys: tuple[str, ...] | None = None) -> Any:
    plans = _PLANS.get(dialect)
    if plans is None:
        plans = _PLANS[dialect] = {}
    key = (id(statement), column_keys)
    entry = plans.get(key)
    if entry is None:
        try:
            plan = _Plan(statement, dialect, column_keys)
        except _Unsupported:
            plan = None
        entry = plans[key] = (statement, plan)
    return entry[1]


def _usable(connection: Connection) -> bool:
    """The connection's transaction state lets the driver run the statement (else
    SQLAlchemy's own path runs it, and raises its error for a transaction that failed)."""
    transaction = connection.get_transaction()
    nested = connection.get_nested_transaction()
    return (transaction is None or transaction.is_active) and (nested is None or nested.is_active)


def driver_rows(connection: Connection, sql: str, params: Mapping[str, Any]) -> list[Any]:
    """The rows of one read, as the driver's tuples, run on the driver's cursor: for a hot
    read whose values need no conversion, SQLAlchemy's per-call work (execution context,
    result metadata, a ``Row`` per row) is skipped (0.17 ms for 20 rows of 23 columns).
    ``sql`` is in the driver's parameter style (SQLite's ``:name``, psycopg's
    ``%(name)s``). Driver errors still go through SQLAlchemy's handling, and in a failed
    transaction SQLAlchemy raises its own error; ``before_cursor_execute`` listeners do not
    see the statement. Since API 1.7."""
    if not _usable(connection):
        return list(connection.exec_driver_sql(sql, dict(params)))  # raises SQLAlchemy's error
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    except Exception as exc:
        connection._handle_dbapi_exception(exc, sql, params, cursor, None)
        raise  # not reached: the handler raises
    finally:
        cursor.close()


def write(connection: Connection, statement: Any, params: Mapping[str, Any]) -> list[Any]:
    """Run one INSERT (built once, given every column in ``params``) with ``params``; its
    RETURNING rows as named tuples. On the driver's cursor on PostgreSQL, inside the
    connection's transaction; through ``connection.execute`` elsewhere."""
    dialect = connection.dialect
    if dialect.name != "postgresql":
        result = connection.execute(statement, params)
        return result.all() if result.returns_rows else []
    plan = _plan(statement, dialect, tuple(params))
    if plan is None or not _usable(connection):
        result = connection.execute(statement, params)
        return result.all() if result.returns_rows else []
    if connection.get_transaction() is None:
        connection.begin()  # as execute() would
    return _run(connection, plan, plan.params(params), write=True)


def rows(connection: Connection, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
    """The rows of prebuilt ``statement`` with ``params``, as named tuples (attribute,
    index and ``_asdict()`` access, as SQLAlchemy's rows): on the driver's cursor on
    PostgreSQL, through ``connection.execute`` elsewhere."""
    dialect = connection.dialect
    if dialect.name != "postgresql":
        return connection.execute(statement, params).all()
    plan = _plan(statement, dialect)
    if plan is None or not _usable(connection):
        return connection.execute(statement, params).all()
    driver = connection.connection.dbapi_connection
    if connection.get_transaction() is None and not driver.autocommit:  # type: ignore[union-attr]
        # as execute() would: the connection knows it is in a transaction (in autocommit
        # there is none to know of, and ending it would cost a rollback call per read)
        connection.begin()
    return _run(connection, plan, plan.params(params), write=False)


def _cursor(connection: Connection, plan: _Plan) -> Any:
    """The driver connection's cursor for ``plan``, kept with the connection (its pool
    record's ``info``, emptied when the connection is replaced): a cursor running the same
    statement again skips the driver's per-cursor setup, about a third of its work."""
    pooled = connection.connection
    cursors = pooled.info.get("crmkit_cursors")
    if cursors is None:
        cursors = pooled.info["crmkit_cursors"] = {}
    cursor = cursors.get(plan)
    if cursor is None or cursor.closed or cursor.connection is not pooled.dbapi_connection:
        cursor = cursors[plan] = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
    return cursor


def _run(connection: Connection, plan: _Plan, values: dict[str, Any], *, write: bool) -> list[Any]:
    cursor = _cursor(connection, plan)
    try:
        if write:
            connection.dispatch.before_cursor_execute(
                connection, cursor, plan.sql, values, None, False
            )
        cursor.execute(plan.sql, values)
        if plan.processors is None:
            plan.convert(connection.dialect, cursor.description or ())
        found = cursor.fetchall() if plan.returns else []
    except Exception as exc:
        connection._handle_dbapi_exception(exc, plan.sql, values, cursor, None)
    make = plan.row._make
    processors = plan.processors
    if not processors:
        return [make(row) for row in found]
    converted = []
    for row in found:
        values_ = list(row)
        for index, process in processors:
            values_[index] = process(values_[index])
        converted.append(make(values_))
    return converted
