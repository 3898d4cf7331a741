"""The spend an import's earlier batches added, per calendar quarter: a tighter bound of
an order's 12-month spend than the spend of all time.

A set-based batch reads an order's 12-month spend only when the member's spend bound
(``crmkit_loyalty.bounds``) plus the batch's orders up to it could reach the next tier.
During an import the bound is the member's row (everything before the import) plus what
the import's earlier batches added (``crmkit_loyalty.pending``), all of it whatever its
date. An import of two years of orders in random time order thus reads the window of
most orders of members near a threshold though half of what they bought lies outside
it. The pending row also keeps what the import added per quarter, so the bound counts
only the quarters the window touches.

Nine quarters (lanes, by quarter number modulo 9), each in whole currency units rounded
up (never below the spend), 21 bits each, three to an integer: ``lanes_0`` holds lanes
0-2, ``lanes_1`` 3-5, ``lanes_2`` 6-8. A window of up to 24 months touches at most nine
consecutive quarters, so no two of them share a lane; quarters nine apart do share one,
which only adds spend (still a bound). A lane cannot overflow into the next while the
member's pending spend in whole units, each order rounded up, stays below 2**21
(:func:`window_spend` checks that and falls back to the pending spend of all time).
Integers to add up: merging a batch's lanes into the pending row is one addition per
integer (wider rows of one column per quarter cost more to rebuild each batch than the
reads they save).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, and_, case, cast, extract, func, literal
from sqlalchemy.sql.elements import ColumnElement

#: money is stored with at most 4 decimals: amounts are integers of 1/10,000
SCALE = 10_000
LANES = 9
PER_WORD = 3
WORDS = LANES // PER_WORD
BITS = 21
MASK = (1 << BITS) - 1
#: past this pending spend (1/10,000, with one unit per order) a lane may have overflowed
LIMIT = (1 << BITS) * SCALE
#: the pending row's columns holding the lanes
COLUMNS = tuple(f"lanes_{i}" for i in range(WORDS))


def quarter(column: Any, dialect: str) -> ColumnElement[Any]:
    """A UTC time's calendar quarter as a number (year * 4 + quarter of the year)."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)
        year = cast(func.substr(column, 1, 4), Integer)
        month = cast(func.substr(column, 6, 2), Integer)
    else:
        utc = func.timezone("UTC", column)
        year, month = cast(extract("year", utc), Integer), cast(extract("month", utc), Integer)
    return year * 4 + (month - 1) // 3


def span(window_months: int) -> int | None:
    """How many quarters back from an order's the window ending at it can reach (the
    quarters to add: this many and the order's own); None when it touches more than
    :data:`LANES`."""
    back = -(-window_months // 3)  # a window starts in quarter q - window/3 or later
    return back if back + 1 <= LANES else None


def lane(quarter_number: Any) -> ColumnElement[Any]:
    """A quarter's lane."""
    return quarter_number % LANES


def whole(units: Any) -> ColumnElement[Any]:
    """Spend in 1/10,000 in whole units, rounded up: the lanes never count less."""
    return (units + (SCALE - 1)) // SCALE


def pack(lane_number: Any, units: Any, dialect: str) -> list[ColumnElement[Any]]:
    """The :data:`WORDS` aggregates packing one member's rows of (lane, whole units), one
    row per lane: a lane past :data:`MASK` is cut to it (its member's pending spend is
    then past :func:`fits`, and the lanes are not read), so lanes never overlap and the
    sums are exact integers."""
    least = func.min if dialect == "sqlite" else func.least
    value = cast(least(units, MASK), BigInteger)
    shifted = value.op("<<", return_type=BigInteger)(BITS * (lane_number % PER_WORD))
    zero = literal(0, BigInteger)
    return [
        cast(func.sum(case((lane_number // PER_WORD == i, shifted), else_=zero)), BigInteger)
        for i in range(WORDS)
    ]


def fits(spend: Any, orders: Any) -> ColumnElement[bool]:
    """Whether no lane of a pending row with this spend (1/10,000) and order count can
    have overflowed: each order rounded up adds less than one whole unit."""
    return spend + orders * SCALE < LIMIT


def merged(old: list[Any], new: list[Any], spend: Any, orders: Any) -> list[ColumnElement[Any]]:
    """Two pending rows' lanes added up (``spend`` and ``orders``: the sum's), or 0 once a
    lane could overflow (never read again: the pending spend only grows)."""
    zero = literal(0, BigInteger)
    return [case((fits(spend, orders), a + b), else_=zero) for a, b in zip(old, new, strict=True)]


def window_spend(
    lanes: list[Any], orders: Any, spend: Any, quarter_number: Any, back: int
) -> ColumnElement[Any]:
    """What earlier batches added to the window of an order of quarter ``quarter_number``,
    at most: the lanes of its quarter and ``back`` before it (in 1/10,000), or ``spend``
    (their spend of all time) when that is less or a lane could have overflowed."""
    total: ColumnElement[Any] = literal(0, BigInteger)
    for k in range(back + 1):
        lane = (quarter_number + (LANES - k)) % LANES  # quarter numbers are positive
        word = case(*((lane // PER_WORD == i, lanes[i]) for i in range(WORDS - 1)),
                    else_=lanes[WORDS - 1])  # fmt: skip
        shifted = cast(word, BigInteger).op(">>", return_type=BigInteger)(BITS * (lane % PER_WORD))
        total = total + shifted.op("&", return_type=BigInteger)(MASK)
    total = total * SCALE
    return case((and_(fits(spend, orders), total < spend), total), else_=spend)
