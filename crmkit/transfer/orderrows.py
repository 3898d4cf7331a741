"""CSV order rows converted with as little work per row as possible (the importer's hot loop).

:func:`order_rows` gives the values :meth:`Converter.order` gives (PostgreSQL stores them
through ``row_format().to_driver``); :func:`sqlite_order_rows` gives SQLite's driver form
straight from the cells. Both check what the general path checks; a row out of the
ordinary (spaces around a value, long or odd values, a date without a time, a time without
an offset in a zone with daylight saving, years 1 and 9999) goes through the general
:meth:`Converter.order`, which says what is wrong with it. Property tests hold both to the
general path (``tests/core/test_import_fast_paths.py``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crmkit.core.entities import ORDER_STATUSES
from crmkit.transfer.columns import REQUIRED
from crmkit.transfer.convert import (
    CUSTOMER_REF_LENGTH,
    FIXED_ZONES,
    ID_LENGTH,
    MONEY_DIGITS,
    MONEY_PLACES,
    Converter,
    _channel,
    _currency_code,
    _money_text,
    _signs,
    _status,
)

#: money text that is its own driver form on SQLite: not negative, no sign, no leading zero,
#: fits NUMERIC(18, 4) (``str(Decimal(text)) == text``, so no Decimal needs to be made)
CANONICAL_MONEY = re.compile(
    rf"(?:0|[1-9][0-9]{{0,{MONEY_DIGITS - 1}}})(?:\.[0-9]{{1,{MONEY_PLACES}}})?"
)
#: canonical money texts remembered per import (amounts repeat: prices, shipping fees)
PLAIN_REMEMBERED = 100_000

Row = Callable[[list[str]], tuple[Any, ...]]


def _general(converter: Converter, names: list[str]) -> Row:
    def general(row: list[str]) -> tuple[Any, ...]:
        return converter.order(dict(zip(names, row, strict=True)))

    return general


def order_rows(converter: Converter, names: list[str]) -> Row:
    """Converts CSV order rows (lists of strings in ``names`` order) into the values
    :meth:`Converter.order` gives; raises RowError."""
    position = {name: i for i, name in enumerate(names)}
    i_ext, i_cust, i_at, i_amount = (position[c] for c in REQUIRED["orders"])
    i_cost = position.get("cost")
    i_currency = position.get("currency")
    i_status = position.get("status")
    i_channel = position.get("channel")
    zone = converter.zone
    fixed_zone = str(zone) in FIXED_ZONES
    default_currency = converter.currency
    statuses = {status: status for status in ORDER_STATUSES}
    currencies: dict[str, str] = {}  # as written -> the code, for the ones met so far
    fromisoformat = dt.datetime.fromisoformat
    general = _general(converter, names)
    id_length, ref_length = ID_LENGTH, CUSTOMER_REF_LENGTH

    def convert(row: list[str]) -> tuple[Any, ...]:
        ext = row[i_ext]
        customer = row[i_cust]
        at = row[i_at]
        # the keys and time as they are: not empty, not too long, no whitespace around (strip
        # gives the text itself back when there is none), no NUL; else the general path
        if (
            not ext
            or not customer
            or len(ext) > id_length
            or len(customer) > ref_length
            or len(at) <= 10
            or ext.strip() is not ext
            or customer.strip() is not customer
            or "\x00" in ext
            or "\x00" in customer
        ):
            return general(row)
        try:
            occurred_at = fromisoformat(at)
        except ValueError:  # the general path says why
            return general(row)
        if occurred_at.tzinfo is None:
            if not fixed_zone:
                return general(row)
            occurred_at = occurred_at.replace(tzinfo=zone)
        if occurred_at.year in (1, 9999):
            return general(row)
        amount = _money_text(row[i_amount], "amount")
        cost = None
        if i_cost is not None and row[i_cost]:
            cost = _money_text(row[i_cost], "cost")
        currency = default_currency
        if i_currency is not None and row[i_currency]:
            raw = row[i_currency]
            currency = currencies.get(raw) or _currency_code(raw, currencies)
        status = "paid"
        if i_status is not None and row[i_status]:
            status = statuses.get(row[i_status]) or _status(row[i_status])
        if amount < 0 or (cost is not None and cost < 0):
            _signs(amount, cost, status)
        channel = None
        if i_channel is not None and row[i_channel]:
            channel = _channel(row[i_channel])
        return (ext, customer, occurred_at, amount, cost, currency, status, channel)

    return convert


def _plain_money() -> tuple[set[str], Callable[[str], bool]]:
    """The canonical money texts met so far, and the test that adds to them."""
    seen: set[str] = set()
    canonical = CANONICAL_MONEY.fullmatch

    def plain(text: str) -> bool:
        if canonical(text) is None:
            return False
        if len(seen) >= PLAIN_REMEMBERED:
            seen.clear()
        seen.add(text)
        return True

    return seen, plain


def _money_driver(text: str, column: str) -> tuple[str, bool]:
    """(driver text, negative) of a money cell that is not canonical; RowError if invalid."""
    amount = _money_text(text, column)
    return str(amount), amount < 0


def sqlite_order_rows(converter: Converter, names: list[str]) -> Row:
    """Converts CSV order rows into SQLite's driver form (``row_format().to_driver_row`` of
    :meth:`Converter.order`'s values) without making those values; raises RowError.

    A time given in UTC as ``YYYY-MM-DDTHH:MM:SS+00:00`` becomes the stored
    ``YYYY-MM-DD HH:MM:SS.000000`` by slicing; a canonical amount
    (:data:`CANONICAL_MONEY`) is its own text.
    """
    position = {name: i for i, name in enumerate(names)}
    i_ext, i_cust, i_at, i_amount = (position[c] for c in REQUIRED["orders"])
    # the optional columns the file has (one it lacks reads as an empty cell)
    i_cost, i_currency, i_status, i_channel = (
        position.get(name, -1) for name in ("cost", "currency", "status", "channel")
    )
    has_cost, has_currency, has_status, has_channel = (
        i >= 0 for i in (i_cost, i_currency, i_status, i_channel)
    )
    fixed_zone = str(converter.zone) in FIXED_ZONES  # all of them UTC: the wall time is UTC
    statuses = {status: status for status in ORDER_STATUSES}
    statuses[""] = "paid"
    currencies = {"": converter.currency}  # as written -> the code, for the ones met so far
    fromisoformat, isoformat = dt.datetime.fromisoformat, dt.datetime.isoformat
    astimezone, utc = dt.datetime.astimezone, dt.UTC
    plain_seen, plain = _plain_money()
    general, to_driver = _general(converter, names), converter.crm.orders.row_format().to_driver_row
    id_length, ref_length = ID_LENGTH, CUSTOMER_REF_LENGTH

    def convert(row: list[str]) -> tuple[Any, ...]:
        ext = row[i_ext]
        customer = row[i_cust]
        at = row[i_at]
        # the keys and time as they are: not empty, not too long, no whitespace around (strip
        # gives the text itself back when there is none), no NUL; else the general path
        if (
            not ext
            or not customer
            or len(ext) > id_length
            or len(customer) > ref_length
            or len(at) <= 10
            or ext.strip() is not ext
            or customer.strip() is not customer
            or "\x00" in ext
            or "\x00" in customer
        ):
            return to_driver(general(row))
        try:
            moment = fromisoformat(at)
        except ValueError:  # the general path says why
            return to_driver(general(row))
        zone = moment.tzinfo
        if moment.year in (1, 9999) or (zone is None and not fixed_zone):
            return to_driver(general(row))
        if (
            zone is utc
            and len(at) == 25
            and at[19:] == "+00:00"
            and at[10] == "T"
            and at[7] == "-"  # not a week date (2026-W05-3)
            and at[16] == ":"
        ):
            # YYYY-MM-DDTHH:MM:SS+00:00, read by fromisoformat: digits and a real date, so
            # one T and one +00:00 in it
            at = at.replace("+00:00", ".000000").replace("T", " ")
        else:
            moment = moment if zone is None or zone is utc else astimezone(moment, utc)
            at = isoformat(moment, " ", "microseconds")[:26]
        amount, negative = row[i_amount], False
        if amount not in plain_seen and not plain(amount):
            amount, negative = _money_driver(amount, "amount")
        cost = (row[i_cost] if has_cost else "") or None
        if cost is not None and cost not in plain_seen and not plain(cost):
            cost, below = _money_driver(cost, "cost")
            negative = negative or below
        raw = row[i_currency] if has_currency else ""
        currency = currencies.get(raw) or _currency_code(raw, currencies)
        raw = row[i_status] if has_status else ""
        status = statuses.get(raw) or _status(raw)
        if negative:
            _signs(Decimal(amount), None if cost is None else Decimal(cost), status)
        raw = row[i_channel] if has_channel else ""
        channel = _channel(raw) if raw else None
        return (ext, customer, at, amount, cost, currency, status, channel)

    return convert
