"""Building blocks of the value analyses: measures, class bands, relationship levels.

Value measures, per customer, over the orders that count up to as-of (see :mod:`.scope`):

* ``revenue`` — the sum of order amounts;
* ``margin`` — the sum of ``amount - cost``; every counted order needs a cost (an order
  without one is refused rather than counted as pure profit);
* ``clv`` — *historical* lifetime value: each order's margin compounded to the as-of day
  at an annual ``discount_rate`` (``margin × (1 + rate) ** years_ago``), i.e. the present
  value of the margin the customer has brought so far. Predictive CLV (BG/NBD and
  Gamma-Gamma) is ``crmkit segment clv``; it is not used for ranking here because it is
  fitted in Python, not computed in SQL.

Sums are exact: each order's value is turned into integer ten-thousandths (the precision
of ``Money``) inside the database, so the cumulative shares ABC compares with 80% are
integer arithmetic on SQLite (which stores NUMERIC as a double) and on PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import ValidationError, money_scale, orders

from .profiling import allowed, count_left_out, note
from .scope import (
    as_of_end,
    check_scope,
    counted_orders,
    customer_key,
    describe_scope,
    orders_in_scope,
    require_orders_before,
    scope_clauses,
)

MEASURES = ("revenue", "margin", "clv")
#: value units per currency unit (Money keeps 4 decimal places)
UNITS = 10_000
DEFAULT_DISCOUNT_RATE = Decimal("0.10")
RELATIONSHIP_LEVELS = ("basic", "reactive", "accountable", "proactive", "partnership")
#: Kotler: few customers with high margins → partnership, many with thin margins → basic
DEFAULT_RELATIONSHIPS: dict[str, dict[str, str]] = {
    "abc": {"A": "proactive", "B": "accountable", "C": "reactive"},
    "pyramid": {
        "vip": "partnership",
        "major": "proactive",
        "ordinary": "accountable",
        "small": "basic",
    },
    "matrix": {
        "invest": "partnership",
        "maintain": "proactive",
        "develop": "accountable",
        "harvest": "basic",
    },
    # the named RFM segments: the best and the valuable-but-lapsing get personal attention
    "rfm": {
        "champions": "partnership",
        "can't lose": "partnership",
        "loyal": "proactive",
        "at risk": "proactive",
        "potential loyalists": "accountable",
        "need attention": "accountable",
        "new": "accountable",
        "promising": "reactive",
        "about to sleep": "reactive",
        "hibernating": "basic",
        "lost": "basic",
    },
}


def check_measure(measure: str, allowed: Sequence[str] = MEASURES) -> str:
    if measure not in allowed:
        raise ValidationError(
            f"segmentation: unknown measure {measure!r}; use one of {', '.join(allowed)}"
        )
    return measure


def _units(expr: Any) -> Any:
    """Money expression → integer ten-thousandths, computed in SQL."""
    return sa.cast(sa.func.round(expr * sa.literal_column(str(UNITS))), sa.BigInteger)


def days_before(end: dt.datetime, dialect: str, column: Any = None) -> Any:
    """Days from ``column`` (default: each order's time) to ``end``, a float SQL expression."""
    column = orders.c.occurred_at if column is None else column
    if dialect == "sqlite":
        julian_end = end.timestamp() / 86400 + 2440587.5
        return sa.literal_column(repr(julian_end)) - sa.func.julianday(column)
    epoch = sa.extract("epoch", column)
    return (sa.literal_column(repr(end.timestamp())) - epoch) / sa.literal_column("86400.0")


def order_units(
    measure: str, end: dt.datetime, dialect: str, discount_rate: Decimal = DEFAULT_DISCOUNT_RATE
) -> Any:
    """Per-order value of ``measure`` in integer ten-thousandths (a SQL expression)."""
    if measure == "revenue":
        return _units(orders.c.amount)
    margin = _units(orders.c.amount - orders.c.cost)
    if measure == "margin":
        return margin
    rate = Decimal(discount_rate)
    if not Decimal(0) <= rate < Decimal(10):
        raise ValidationError(
            f"segmentation: discount rate {rate} must be a yearly rate between 0 and 10 "
            "(0.10 means 10%)"
        )
    years = days_before(end, dialect) / sa.literal_column("365.25")
    factor = sa.func.power(sa.literal_column(repr(float(1 + rate))), years)
    return sa.cast(sa.func.round(margin * factor), sa.BigInteger)


def ensure_sql_power(conn: sa.Connection) -> None:
    """SQLite builds without math functions lack power(): provide it on this connection."""
    if conn.dialect.name != "sqlite":
        return
    try:
        conn.exec_driver_sql("SELECT power(2, 0.5)")
    except sa.exc.OperationalError:
        conn.connection.driver_connection.create_function("power", 2, math.pow, deterministic=True)


def refuse_missing_costs(
    conn: sa.Connection, measure: str, end: dt.datetime, scope: Mapping[str, str]
) -> None:
    """Margin and CLV need every counted order's cost; refuse with how many lack one."""
    if measure not in ("margin", "clv"):
        return
    missing = conn.execute(
        sa.select(sa.func.count())
        .select_from(orders_in_scope(scope))
        .where(
            *counted_orders(end),
            *scope_clauses(scope),
            orders.c.cost.is_(None),
            allowed(orders.c.customer_id),
        )
    ).scalar()
    if missing:
        raise ValidationError(
            f"segmentation: {missing} order(s) up to as-of have no cost, so their {measure} "
            "is unknown; import the costs or use --measure revenue"
        )


def customer_values(
    measure: str, end: dt.datetime, scope: Mapping[str, str], dialect: str, discount_rate: Any
) -> sa.Subquery:
    """``(cid, units)``: each in-scope customer's value up to ``end`` (customers with orders),
    without the customers who withdrew profiling consent."""
    units = sa.func.sum(order_units(measure, end, dialect, discount_rate))
    per_customer = (
        sa.select(customer_key().label("cid"), units.label("units"))
        .select_from(orders_in_scope(scope))
        .where(*counted_orders(end), *scope_clauses(scope))
        .group_by(customer_key())
        .subquery("a")
    )
    return sa.select(per_customer).where(allowed(per_customer.c.cid)).subquery("v")


def prepare(
    conn: sa.Connection, as_of: dt.date, scope: Mapping[str, str] | None, measure: str
) -> dict[str, str]:
    """Check scope, measure, as-of and costs before an analysis runs; return the scope."""
    scope = check_scope(scope)
    check_measure(measure)
    require_orders_before(conn, as_of)
    refuse_missing_costs(conn, measure, as_of_end(as_of), scope)
    if measure == "clv":
        ensure_sql_power(conn)
    return scope


def no_customers(
    as_of: dt.date, scope: Mapping[str, str], crm: Any = None, start: dt.datetime | None = None
) -> ValidationError:
    """The error of an analysis that found nobody; with ``crm``, it also says how many
    customers were left out for withdrawn profiling consent."""
    left = count_left_out(crm, as_of, scope, start) if crm is not None else 0
    because = f" ({note(left)})" if left else ""
    return ValidationError(
        f"segmentation: no customer in scope ({describe_scope(scope)}) has an order up to "
        f"{as_of.isoformat()}{because}; widen the scope or choose a later --as-of"
    )


def money(units: Any) -> Decimal:
    """Integer ten-thousandths (int or integral Decimal from SQL) → Money-scaled Decimal.

    The same as ``money_scale(units / 10000)`` (2 to 4 places), in integer steps because
    it runs once per customer row.
    """
    u = int(units)
    if u % 100 == 0:
        return Decimal(u // 100).scaleb(-2)
    if u % 10 == 0:
        return Decimal(u // 10).scaleb(-3)
    return Decimal(u).scaleb(-4)


def share(part: Any, total: Any) -> Decimal:
    """``part / total`` as a Decimal with 6 places, half up (0 when the total is not positive)."""
    part, total = int(part), int(total or 0)
    if total <= 0:
        return _ZERO_SHARE
    return Decimal((part * 2_000_000 + total) // (2 * total)).scaleb(-6)


_ZERO_SHARE = Decimal("0.000000")


# -- bands ------------------------------------------------------------------------------


def parse_bands(text: str, option: str) -> list[tuple[str, Decimal | None]]:
    """``"A=80,B=95,C"`` (percent) → ``[("A", 0.80), ("B", 0.95), ("C", None)]``."""
    bands: list[tuple[str, Decimal | None]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        label, _, value = part.partition("=")
        if not value.strip():
            bands.append((label.strip(), None))
            continue
        try:
            bands.append((label.strip(), Decimal(value.strip()) / 100))
        except ArithmeticError:
            raise ValidationError(
                f"{option} {text!r}: {value!r} is not a percentage; e.g. A=80,B=95,C"
            ) from None
    return bands


def cumulative_bands(
    bands: Sequence[tuple[str, Any]], *, cumulative: bool, option: str
) -> list[tuple[str, Fraction]]:
    """Check ``bands`` and return each label with its cumulative upper share (last = 1).

    ``cumulative``: the numbers are running shares (ABC's 0.80, 0.95); otherwise each
    band's own share (the pyramid's 0.01, 0.04, 0.15). The last band may omit its number
    (it takes the rest).
    """
    if len(bands) < 2:
        raise ValidationError(f"{option}: give at least two classes, e.g. A=80,B=95,C")
    labels = [label for label, _ in bands]
    if len(set(labels)) != len(labels) or not all(labels):
        raise ValidationError(f"{option}: class names must be non-empty and distinct")
    out: list[tuple[str, Fraction]] = []
    running = Fraction(0)
    for i, (label, value) in enumerate(bands):
        last = i == len(bands) - 1
        if value is None:
            if not last:
                raise ValidationError(f"{option}: only the last class may omit its share")
            if running >= 1:
                raise ValidationError(
                    f"{option}: the classes before {label!r} already cover 100%; drop it"
                )
            out.append((label, Fraction(1)))
            continue
        part = Fraction(Decimal(str(value)))
        upper = part if cumulative else running + part
        if part <= 0 or upper <= running or upper > 1:
            raise ValidationError(
                f"{option}: class {label!r} share {value} must be positive and keep the "
                "running total increasing and at most 100%"
            )
        if last and upper != 1:
            raise ValidationError(
                f"{option}: the classes cover {float(upper):.2%}, not 100%; "
                f"end with a class without a share (e.g. {label}=...,rest)"
            )
        running = upper
        out.append((label, upper))
    return out


def band_case(ahead: Any, whole: Any, bands: Sequence[tuple[str, Fraction]]) -> Any:
    """SQL CASE: the first band whose cumulative share is above ``ahead / whole``.

    Integer comparison ``ahead * denominator < numerator * whole`` keeps it exact.
    """
    whens = [
        (
            ahead * sa.literal_column(str(upper.denominator))
            < whole * sa.literal_column(str(upper.numerator)),
            sa.literal(label),
        )
        for label, upper in bands[:-1]
    ]
    return sa.case(*whens, else_=sa.literal(bands[-1][0]))


# -- relationship levels ----------------------------------------------------------------


def relationship_map(
    scheme: str, labels: Sequence[str], overrides: Mapping[str, str] | None = None
) -> dict[str, str | None]:
    """The relationship level per label: the scheme's defaults, then ``overrides``.

    Levels must be one of :data:`RELATIONSHIP_LEVELS`. When the caller gives overrides,
    every label must end up with a level; otherwise a label the defaults do not know
    (renamed classes) gets ``None`` rather than a guess.
    """
    mapping = {**DEFAULT_RELATIONSHIPS.get(scheme, {}), **dict(overrides or {})}
    for label, level in mapping.items():
        if level not in RELATIONSHIP_LEVELS:
            raise ValidationError(
                f"segmentation: relationship level {level!r} for {label!r} is unknown; "
                f"use one of {', '.join(RELATIONSHIP_LEVELS)}"
            )
    stray = [label for label in dict(overrides or {}) if label not in labels]
    if stray:
        raise ValidationError(
            f"segmentation: relationship given for {', '.join(map(repr, stray))}, which is not "
            f"a class here; the classes are {', '.join(labels)}"
        )
    missing = [label for label in labels if label not in mapping]
    if missing and overrides:
        raise ValidationError(
            f"segmentation: no relationship level for {', '.join(map(repr, missing))}; "
            f"add --relationship {missing[0]}=<{'|'.join(RELATIONSHIP_LEVELS)}>"
        )
    return {label: mapping.get(label) for label in labels}


def parse_pairs(items: Sequence[str], option: str) -> dict[str, str]:
    """``["vip=partnership"]`` → ``{"vip": "partnership"}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValidationError(f"{option} {item!r}: expected name=value")
        out[key.strip()] = value.strip()
    return out


def summarise(
    rows: Sequence[Mapping[str, Any]],
    key: str,
    labels: Sequence[str],
    relationships: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Per label: customers, their share, the summed value and its share (labels in order)."""
    total_n = len(rows)
    total_v = sum((r["value"] for r in rows), Decimal(0))
    out = []
    for label in labels:
        mine = [r for r in rows if r[key] == label]
        value = sum((r["value"] for r in mine), Decimal(0))
        out.append(
            {
                key: label,
                "customers": len(mine),
                "customer_share": share(len(mine), total_n),
                "value": money_scale(value),
                "value_share": _dec_share(value, total_v),
                **({"relationship": relationships[label]} if relationships else {}),
            }
        )
    return out


def _dec_share(part: Decimal, total: Decimal) -> Decimal:
    if total <= 0:
        return Decimal("0.000000")
    return (part / total).quantize(Decimal("0.000001"))
