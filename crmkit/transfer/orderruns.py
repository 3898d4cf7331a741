"""Runs of CSV order rows converted column by column (the importer's hot path).

A run's rows are turned into columns; each check then runs over a whole column in C
(lengths, whitespace, NUL), and what repeats in a file -- days, times of day, amounts,
currencies, statuses, channels -- is checked once per distinct value. The function answers
only when every row of the run is in the common form whose conversion it knows: keys
without surrounding whitespace, times written ``YYYY-MM-DDTHH:MM:SS+00:00``, amounts and
costs in their canonical text (:data:`~crmkit.transfer.orderrows.CANONICAL_MONEY`). For
those rows it gives what :func:`~crmkit.transfer.orderrows.order_rows` (PostgreSQL) or
:func:`~crmkit.transfer.orderrows.sqlite_order_rows` (SQLite's driver form) gives row by
row (property tests hold them equal, ``tests/core/test_import_fast_paths.py``); for any
other run it answers None, and the rows go one by one through that function, which says
what is wrong with a bad one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

from crmkit.core.entities import ORDER_STATUSES
from crmkit.transfer.columns import REQUIRED
from crmkit.transfer.convert import (
    CUSTOMER_REF_LENGTH,
    ID_LENGTH,
    Converter,
    _channel,
    _currency_code,
    _status,
)
from crmkit.transfer.orderrows import CANONICAL_MONEY
from crmkit.transfer.results import RowError

#: the times of a run, one a line, as the run path takes them: YYYY-MM-DDTHH:MM:SS+00:00 in
#: ASCII digits, a time of day that exists (the day is checked on its own: _good_day)
_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\+00:00"
_TIMES = re.compile(rf"(?:{_TIME}\n)*{_TIME}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: money texts of a run, one a line, that are their own driver form (CANONICAL_MONEY); with
#: the empty text (a cost not given) or without
_MONEY = re.compile(rf"(?:(?:{CANONICAL_MONEY.pattern})\n)*(?:{CANONICAL_MONEY.pattern})")
_MONEY_OR_EMPTY = re.compile(
    rf"(?:(?:{CANONICAL_MONEY.pattern})?\n)*(?:{CANONICAL_MONEY.pattern})?"
)
#: distinct days and customer references remembered per import
DAYS_REMEMBERED = REFS_REMEMBERED = 100_000
_NONE_IF_EMPTY = {"": None}

#: a run's converted columns, in ``sqlite_order_rows``'s order (each a sequence of the
#: run's length): row ``i`` converted is ``tuple(column[i] for column in columns)``
Run = Callable[[list[list[str]]], list[Sequence[Any]] | None]


def _plain_keys(column: tuple[str, ...], limit: int) -> bool:
    """Every key of ``column`` taken as it is by the row path: not empty, at most ``limit``
    characters, no whitespace around (strip gives the text itself back), no NUL."""
    lengths = set(map(len, column))
    return (
        0 not in lengths
        and max(lengths) <= limit
        and tuple(map(str.strip, column)) == column
        and "\x00" not in "".join(column)
    )


def _distinct(column: tuple[str, ...]) -> Collection[str]:
    """The distinct cells of ``column``; a column of one value (the common case: one
    currency, one status) is told by counting, cheaper than hashing every cell."""
    if column.count(column[0]) == len(column):
        return (column[0],)
    return set(column)


def _one_a_line(column: tuple[str, ...], pattern: re.Pattern[str]) -> bool:
    """Every cell of ``column`` matches ``pattern`` (cells one a line, no line end in one)."""
    joined = "\n".join(column)
    return pattern.fullmatch(joined) is not None and joined.count("\n") == len(column) - 1


def _checked_once(
    values: set[str], good: set[str], check: Callable[[set[str]], bool], limit: int
) -> bool:
    """Every one of ``values`` good: in ``good`` (those checked before, at most ``limit``
    remembered) or passing ``check`` now (then remembered)."""
    new = values.difference(good)
    if new:
        if not check(new):
            return False
        if len(good) > limit:
            good.clear()
        good.update(new)
    return True


def _plain_refs(refs: set[str]) -> bool:
    return _plain_keys(tuple(refs), CUSTOMER_REF_LENGTH or 0)


def _good_days(days: set[str]) -> bool:
    return all(map(_good_day, days))


def _good_day(text: str) -> bool:
    """``YYYY-MM-DD``, a real day, neither in year 1 nor 9999 (the row path's exceptions)."""
    if _DAY.fullmatch(text) is None or text[:4] in ("0001", "9999"):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _known(raws: Iterable[str], table: dict[str, Any], check: Callable[[str], Any]) -> bool:
    """Every one of ``raws`` in ``table`` (raw cell -> value), the new ones checked by
    ``check`` first; False when one is refused (the row path then says why)."""
    for raw in raws:
        if raw not in table:
            try:
                table[raw] = check(raw)
            except RowError:
                return False
    return True


def _mapped(column: tuple[str, ...], raws: Collection[str], table: dict[str, Any]) -> Sequence[Any]:
    """``column`` (its distinct cells ``raws``) through ``table``; the column itself when
    every cell maps to itself."""
    if len(raws) == 1:
        return (table[column[0]],) * len(column)
    if all(table[raw] == raw for raw in raws):
        return column
    return list(map(table.__getitem__, column))


def _coded(
    column: tuple[str, ...], table: dict[str, Any], check: Callable[[str], Any]
) -> Sequence[Any] | None:
    """``column`` through ``table`` (raw cell -> value; a new cell checked by ``check`` and
    remembered); None when ``check`` refuses a cell."""
    raws = _distinct(column)
    if not _known(raws, table, check):
        return None
    return _mapped(column, raws, table)


def _decimal_or_none(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def _money(
    amount: tuple[str, ...], cost: tuple[str, ...] | None, driver_form: bool
) -> tuple[Sequence[Any], Sequence[Any]] | None:
    """The amounts and costs of a run when all are canonical texts (never negative): as they
    are (SQLite's driver form) or Decimals, an empty cost None; None when one is not."""
    if not _one_a_line(amount, _MONEY):
        return None
    if cost is None:
        costs: Sequence[Any] = (None,) * len(amount)
    elif not _one_a_line(cost, _MONEY_OR_EMPTY):
        return None
    elif not driver_form:
        costs = list(map(_decimal_or_none, cost))
    else:
        costs = list(map(_NONE_IF_EMPTY.get, cost, cost)) if "" in cost else cost
    return (amount if driver_form else list(map(Decimal, amount))), costs


def order_runs(converter: Converter, names: list[str], driver_form: bool = False) -> Run:
    """The function converting a run of CSV order rows (lists of strings in ``names`` order,
    all of that width) into the columns (:data:`Run`) of what ``order_rows`` gives, or with
    ``driver_form`` of what ``sqlite_order_rows`` gives (SQLite's driver form); None when a
    row is out of the common form (see the module)."""
    position = {name: i for i, name in enumerate(names)}
    i_ext, i_cust, i_at, i_amount = (position[c] for c in REQUIRED["orders"])
    i_cost, i_currency, i_status, i_channel = (
        position.get(name, -1) for name in ("cost", "currency", "status", "channel")
    )
    default = converter.currency
    currencies: dict[str, str] = {"": default} if default else {}  # as written -> the code

    def currency_code(raw: str) -> str:
        return _currency_code(raw, currencies)

    statuses: dict[str, str] = {status: status for status in ORDER_STATUSES}
    statuses[""] = "paid"
    channels: dict[str, str | None] = {"": None}
    days: set[str] = set()
    refs: set[str] = set()  # customer references checked so far
    day_of = itemgetter(slice(0, 10))
    id_length = ID_LENGTH or 0
    fromisoformat = dt.datetime.fromisoformat

    def convert(rows: list[list[str]]) -> list[Sequence[Any]] | None:
        count = len(rows)
        columns = list(zip(*rows, strict=True))
        ext, customer, at = columns[i_ext], columns[i_cust], columns[i_at]
        if not _plain_keys(ext, id_length):
            return None
        # customers repeat: each checked once
        if not _checked_once(set(customer), refs, _plain_refs, REFS_REMEMBERED):
            return None
        # times: YYYY-MM-DDTHH:MM:SS+00:00, and each day a real one (checked once)
        joined = "\n".join(at)
        if _TIMES.fullmatch(joined) is None or joined.count("\n") != count - 1:
            return None  # (a line end in a cell would make more lines than cells)
        if not _checked_once(set(map(day_of, at)), days, _good_days, DAYS_REMEMBERED):
            return None
        money = _money(columns[i_amount], columns[i_cost] if i_cost >= 0 else None, driver_form)
        if money is None:
            return None
        if driver_form:
            # each time holds one T and one +00:00 (checked above): YYYY-MM-DD HH:MM:SS.000000
            times: Sequence[Any] = joined.replace("T", " ").replace("+00:00", ".000000").split("\n")
        else:
            times = list(map(fromisoformat, at))
        optional = []
        for i, table, check, absent in (
            (i_currency, currencies, currency_code, default),
            (i_status, statuses, _status, "paid"),
            (i_channel, channels, _channel, None),
        ):
            values = (absent,) * count if i < 0 else _coded(columns[i], table, check)
            if values is None:
                return None
            optional.append(values)
        return [ext, customer, times, *money, *optional]

    return convert


def sqlite_order_runs(converter: Converter, names: list[str]) -> Run:
    """:func:`order_runs` giving SQLite's driver form (what ``sqlite_order_rows`` gives)."""
    return order_runs(converter, names, driver_form=True)
