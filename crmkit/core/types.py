"""Column types that keep crmkit's data rules in the database layer.

* :class:`UTCDateTime` stores timezone-aware datetimes as UTC and returns them
  aware (UTC) on every backend; naive datetimes are refused.
* :class:`Money` is NUMERIC(18, 4) returning :class:`~decimal.Decimal` with 2
  to 4 decimal places on every backend. SQLite has no decimal type: values go
  in as text (NUMERIC affinity, stored as a double) and come back exact for
  amounts below 10^11 with at most 4 decimal places.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric
from sqlalchemy.types import TypeDecorator

_FOUR_PLACES = Decimal("0.0001")
_THREE_PLACES = Decimal("0.001")
_TWO_PLACES = Decimal("0.01")


class UTCDateTime(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give a time zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None or value.__class__ is dt.datetime and value.tzinfo is dt.UTC:
            return value  # PostgreSQL's answer in a UTC session: already what we return
        if isinstance(value, str):  # raw SQL text results on SQLite
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Money(TypeDecorator):
    impl = Numeric(18, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            # bind and read ourselves, so SQLAlchemy never goes through float
            return dialect.type_descriptor(Numeric(18, 4, asdecimal=False))
        return dialect.type_descriptor(Numeric(18, 4))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        if dialect.name == "sqlite":
            return str(value)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return money_scale(to_decimal(value))


def money_scale(value: Decimal) -> Decimal:
    """At least 2 and at most 4 decimal places, the same on every backend.

    PostgreSQL returns NUMERIC(18, 4) as ``250.0000`` and SQLite as ``250``;
    both read back as ``250.00``, and ``0.0001`` stays ``0.0001``.
    """
    value = value.quantize(_FOUR_PLACES)
    # the places its trailing zeros leave, from the integer it is in ten-thousandths
    # (what normalize().as_tuple() told, at less than half the cost: every amount read)
    units = int(value.scaleb(4))
    if units % 100 == 0:
        return value.quantize(_TWO_PLACES)
    if units % 10 == 0:
        return value.quantize(_THREE_PLACES)
    return value


def to_decimal(value: Any) -> Decimal:
    """Turn a numeric value read from SQL (int, float, str, Decimal) into Decimal."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_FOUR_PLACES)
    return Decimal(str(value))
