"""Runs of CSV order rows converted column by column into SQLite's driver form (the hot path).

A run's rows are turned into columns; each check then runs over a whole column in C
(lengths, whitespace, NUL), and what repeats in a file -- days, times of day, amounts,
currencies, statuses, channels -- is checked once per distinct value. The function answers
only when every row of the run is in the common form whose conversion it knows: keys
without surrounding whitespace, times written ``YYYY-MM-DDTHH:MM:SS+00:00``, amounts and
costs in their canonical text (:data:`~crmkit.transfer.orderrows.CANONICAL_MONEY`). For
those rows it gives what :func:`~crmkit.transfer.orderrows.sqlite_order_rows` gives row by
row (a property test holds the two equal, ``tests/core/test_import_fast_paths.py``); for
any other run it answers None, and the rows go one by one through that function, which
says what is wrong with a bad one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Sequence
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


def sqlite_order_runs(converter: Converter, names: list[str]) -> Run:  # noqa: C901, PLR0915
    """The function converting a run of CSV order rows (lists of strings in ``names`` order,
    all of that width) into the columns (:data:`Run`) of the driver form
    ``sqlite_order_rows`` gives; None when a row is out of the common form (see the
    module)."""
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
    id_length, ref_length = ID_LENGTH or 0, CUSTOMER_REF_LENGTH or 0

    def convert(rows: list[list[str]]) -> list[Sequence[Any]] | None:  # noqa: C901
        count = len(rows)
        columns = list(zip(*rows, strict=True))
        ext, customer, at = columns[i_ext], columns[i_cust], columns[i_at]
        if not _plain_keys(ext, id_length):
            return None
        # customers repeat: each checked once
        new = set(customer).difference(refs)
        if new:
            if not _plain_keys(tuple(new), ref_length):
                return None
            if len(refs) > REFS_REMEMBERED:
                refs.clear()
            refs.update(new)
        # times: YYYY-MM-DD (a real day) and THH:MM:SS+00:00, stored as
        # YYYY-MM-DD HH:MM:SS.000000
        joined = "\n".join(at)
        if _TIMES.fullmatch(joined) is None or joined.count("\n") != count - 1:
            return None  # (a line end in a cell would make more lines than cells)
        new = set(map(day_of, at)).difference(days)
        if new:
            if not all(map(_good_day, new)):
                return None
            if len(days) > DAYS_REMEMBERED:
                days.clear()
            days.update(new)
        # each time holds one T and one +00:00 (checked above)
        times = joined.replace("T", " ").replace("+00:00", ".000000").split("\n")
        # money: canonical texts (their own driver form, never negative)
        amount = columns[i_amount]
        if not _one_a_line(amount, _MONEY):
            return None
        cost: Sequence[Any] = (None,) * count
        if i_cost >= 0:
            cost = columns[i_cost]
            if not _one_a_line(cost, _MONEY_OR_EMPTY):
                return None
            if "" in cost:
                cost = list(map(_NONE_IF_EMPTY.get, cost, cost))
        currency: Sequence[Any] = (default,) * count
        if i_currency >= 0:
            column = columns[i_currency]
            raws = _distinct(column)
            if not _known(raws, currencies, currency_code):
                return None
            currency = _mapped(column, raws, currencies)
        status: Sequence[Any] = ("paid",) * count
        if i_status >= 0:
            column = columns[i_status]
            raws = _distinct(column)
            if not _known(raws, statuses, _status):
                return None
            status = _mapped(column, raws, statuses)
        channel: Sequence[Any] = (None,) * count
        if i_channel >= 0:
            column = columns[i_channel]
            raws = _distinct(column)
            if not _known(raws, channels, _channel):
                return None
            channel = _mapped(column, raws, channels)
        return [ext, customer, times, amount, cost, currency, status, channel]

    return convert
