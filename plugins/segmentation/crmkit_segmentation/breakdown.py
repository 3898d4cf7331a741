"""Market breakdowns: customers, orders, revenue and margin by a customer dimension, in SQL.

Dimensions are profile columns (industry, occupation, region, ...) and ``age_band``: the
age on the as-of day from ``birth_date``, in configurable bands (default under 18, 18-24,
25-34, 35-44, 45-54, 55-64, 65+). The age test is done in SQL against cut-off birth dates
computed in Python (age ≥ 25 ⇔ born on or before as-of minus 25 years), so it is the same
on every backend. Customers count when they have an order up to as-of (in the window)
and have not withdrawn profiling consent; a missing value shows as ``(unknown)``. Margin is
left empty for a group when any of its orders has no cost, rather than understated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import ValidationError, customers, orders

from .analyses import money, no_customers, order_units, share
from .profiling import allowed
from .scope import (
    add_months,
    as_of_end,
    check_scope,
    counted_orders,
    customer_key,
    orders_in_scope,
    require_orders_before,
    scope_clauses,
)

DIMENSIONS = ("industry", "occupation", "age_band", "region", "province", "city", "kind", "type")
DEFAULT_DIMENSIONS = ("industry", "occupation", "age_band", "region")
DEFAULT_AGE_BANDS = (18, 25, 35, 45, 55, 65)
UNKNOWN = "(unknown)"


def age_band_labels(bounds: Sequence[int]) -> list[str]:
    """``(18, 25, 35)`` → ``["under 18", "18-24", "25-34", "35+"]``."""
    labels = [f"under {bounds[0]}"]
    labels += [f"{lo}-{hi - 1}" for lo, hi in zip(bounds, bounds[1:], strict=False)]
    return [*labels, f"{bounds[-1]}+"]


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def age_band(as_of: dt.date, bounds: Sequence[int]) -> Any:
    """SQL CASE giving each customer's age band on ``as_of``."""
    bounds = list(bounds)
    if not bounds or bounds != sorted(set(bounds)) or bounds[0] <= 0:
        raise ValidationError(
            f"segmentation: age bands {bounds} must be increasing positive ages, e.g. 18,25,35"
        )
    labels = age_band_labels(bounds)
    whens = [(customers.c.birth_date.is_(None), sa.literal(UNKNOWN))]
    for bound, label in zip(bounds, labels, strict=False):
        whens.append((customers.c.birth_date > _years_before(as_of, bound), sa.literal(label)))
    return sa.case(*whens, else_=sa.literal(labels[-1]))


def market_breakdown(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    *,
    age_bands: Sequence[int] = DEFAULT_AGE_BANDS,
    months: int | None = None,
) -> list[dict[str, Any]]:
    """Rows ``dimension, group, customers, orders, revenue, margin, customer_share,
    revenue_share`` per dimension (groups by revenue, age bands in age order).

    ``months``: only orders in the last ``months`` before as-of (default: all up to it).
    Within a dimension, customers, orders and revenue add up to the scope's totals.
    One SQL statement groups by every dimension at once; the roll-up per dimension is Python.
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or not dimensions:
        raise ValidationError(
            f"segmentation: unknown breakdown dimension(s) {', '.join(unknown) or '(none)'}; "
            f"use {', '.join(DIMENSIONS)}"
        )
    if months is not None and not 1 <= months <= 1200:
        raise ValidationError(f"segmentation: --months must be 1..1200, got {months}")
    dimensions = list(dict.fromkeys(dimensions))
    scope = check_scope(scope)
    end = as_of_end(as_of)
    start = as_of_end(add_months(as_of, -months)) if months else None
    out: list[dict[str, Any]] = []
    with crm.engine.connect() as conn:
        require_orders_before(conn, as_of)
        per_customer = (
            sa.select(
                customer_key().label("cid"),
                sa.func.count().label("orders"),
                sa.func.sum(order_units("revenue", end, conn.dialect.name)).label("revenue"),
                sa.func.sum(order_units("margin", end, conn.dialect.name)).label("margin"),
                sa.func.count(orders.c.cost).label("costed"),
            )
            .select_from(orders_in_scope(scope))
            .where(*counted_orders(end, start), *scope_clauses(scope))
            .group_by(customer_key())
            .subquery("p")
        )
        keys, band_order = [], {}
        for i, dimension in enumerate(dimensions):
            if dimension == "age_band":
                key = age_band(as_of, age_bands)
                labels = age_band_labels(age_bands)
                band_order[dimension] = {label: j for j, label in enumerate(labels)}
            else:
                key = sa.func.coalesce(customers.c[dimension], UNKNOWN)
            keys.append(key.label(f"d{i}"))
        # one pass over the orders: group by every dimension at once, roll up in Python
        query = (
            sa.select(
                *keys,
                sa.func.count().label("customers"),
                sa.func.sum(per_customer.c.orders).label("orders"),
                sa.func.sum(per_customer.c.revenue).label("revenue"),
                sa.func.sum(per_customer.c.margin).label("margin"),
                sa.func.sum(per_customer.c.orders - per_customer.c.costed).label("uncosted"),
            )
            .select_from(per_customer.join(customers, customers.c.id == per_customer.c.cid))
            .where(allowed(per_customer.c.cid))
            # by output names: PostgreSQL would see the CASE's bind parameters in a repeated
            # GROUP BY expression as a different expression
            .group_by(*(sa.literal_column(f"d{i}") for i in range(len(keys))))
        )
        cells = conn.execute(query).all()
    if not cells:
        raise no_customers(as_of, scope, crm, start)
    for i, dimension in enumerate(dimensions):
        groups: dict[str, dict[str, int]] = {}
        for cell in cells:
            g = groups.setdefault(cell[i], dict.fromkeys(_SUMMED, 0))
            for name in _SUMMED:
                g[name] += int(getattr(cell, name) or 0)
        out.extend(_rows(dimension, groups, band_order.get(dimension)))
    return out


_SUMMED = ("customers", "orders", "revenue", "margin", "uncosted")


def _rows(
    dimension: str, groups: dict[str, dict[str, int]], order: dict[str, int] | None
) -> list[dict[str, Any]]:
    n = sum(g["customers"] for g in groups.values())
    revenue = sum(g["revenue"] for g in groups.values())
    if order is None:
        names = sorted(groups, key=lambda k: (-groups[k]["revenue"], k))
    else:
        names = sorted(groups, key=lambda k: order.get(k, len(order)))
    return [
        {
            "dimension": dimension,
            "group": name,
            "customers": groups[name]["customers"],
            "orders": groups[name]["orders"],
            "revenue": money(groups[name]["revenue"]),
            "margin": None if groups[name]["uncosted"] else money(groups[name]["margin"]),
            "customer_share": share(groups[name]["customers"], n),
            "revenue_share": share(groups[name]["revenue"], revenue),
        }
        for name in names
    ]
