"""Statements the hot read paths build once, at import, with bound parameters.

Building a SQLAlchemy Core statement costs about as much CPU as running it, so the
reads the server serves most (a customer, the 360's parts) keep theirs ready.

On PostgreSQL, :func:`rows` runs such a statement on the driver's cursor: compiled once
per dialect, its parameters bound and its columns converted by the same SQLAlchemy type
processors as :meth:`Connection.execute <sqlalchemy.engine.Connection.execute>` uses, so
the values are the same; what is skipped is SQLAlchemy's per-call work (execution
context, cache key, result metadata: about 60 µs a statement, twice the driver's own).
Driver errors go through SQLAlchemy's handling (wrapped, a dropped connection
invalidated). Only for reads: ``before_cursor_execute`` listeners do not see them.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Integer, Select, bindparam


def with_optional_limit(query: Select[Any]) -> dict[bool, Select[Any]]:
    """``query`` keyed by whether a limit is given: with a bound ``limit`` parameter
    (``True``) and without one (``False``)."""
    return {True: query.limit(bindparam("limit", type_=Integer)), False: query}


class _Plan:
    """A statement compiled for one dialect: SQL text, fixed parameters, converters."""

    __slots__ = ("binds", "defaults", "processors", "row", "sql", "types")

    def __init__(self, statement: Select[Any], dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.positional or compiled.literal_execute_params or compiled.post_compile_params:
            raise _Unsupported()
        self.sql: str = compiled.string
        # values the statement holds itself (status == 'paid'); given ones replace them
        self.defaults: dict[str, Any] = compiled.construct_params(_check=False)
        self.binds: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
        columns = compiled._result_columns
        self.types = [column[3] for column in columns]
        self.row: Any = namedtuple("Row", [column[0] for column in columns])  # noqa: PYI024
        #: (index, converter) of the columns needing one: known after the first run
        self.processors: list[tuple[int, Callable[[Any], Any]]] | None = None

    def params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **given}
        for name, process in self.binds.items():
            if name in values:
                values[name] = process(values[name])
        return values

    def convert(self, dialect: Any, description: Sequence[Any]) -> None:
        found = []
        for index, (type_, column) in enumerate(zip(self.types, description, strict=True)):
            process = type_._cached_result_processor(dialect, column[1])
            if process is not None:
                found.append((index, process))
        self.processors = found


class _Unsupported(Exception):
    """A statement the driver path does not run (positional or expanding parameters)."""


_PLANS: dict[tuple[int, int], _Plan | None] = {}


def rows(connection: Connection, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
    """The rows of prebuilt ``statement`` with ``params``, as named tuples (attribute,
    index and ``_asdict()`` access, as SQLAlchemy's rows): on the driver's cursor on
    PostgreSQL, through ``connection.execute`` elsewhere."""
    dialect = connection.dialect
    if dialect.name != "postgresql":
        return connection.execute(statement, params).all()
    key = (id(statement), id(dialect))
    plan = _PLANS.get(key, _MISSING)
    if plan is _MISSING:
        try:
            plan = _Plan(statement, dialect)
        except _Unsupported:
            plan = None
        _PLANS[key] = plan
    transaction = connection.get_transaction()
    nested = connection.get_nested_transaction()
    if (
        plan is None
        or (transaction is not None and not transaction.is_active)
        or (nested is not None and not nested.is_active)
    ):  # SQLAlchemy's own path (and its error for a transaction that failed)
        return connection.execute(statement, params).all()
    assert isinstance(plan, _Plan)
    driver = connection.connection.dbapi_connection
    if transaction is None and not driver.autocommit:  # type: ignore[union-attr]
        # as execute() would: the connection knows it is in a transaction (in autocommit
        # there is none to know of, and ending it would cost a rollback call per read)
        connection.begin()
    values = plan.params(params)
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(plan.sql, values)
        found = cursor.fetchall()
        if plan.processors is None:
            plan.convert(dialect, cursor.description)
    except Exception as exc:
        connection._handle_dbapi_exception(exc, plan.sql, values, cursor, None)
    finally:
        cursor.close()
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


_MISSING: Any = object()
