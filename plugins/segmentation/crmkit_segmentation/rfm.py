"""RFM scoring computed inside the database with NTILE window functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import ValidationError, orders

from .profiling import allowed
from .scope import (
    SCOPE_FIELDS,
    check_scope,
    counted_orders,
    customer_key,
    orders_in_scope,
    require_orders_before,
    scope_clauses,
)
from .scope import as_of_end as _as_of_end  # kept: older callers import it from here

__all__ = ["DEFAULT_SEGMENT_MAP", "SCOPE_FIELDS", "name_segments", "rfm_scores"]


def rfm_scores(
    crm: Any, as_of: dt.date, scope: dict[str, str] | None = None, bins: int = 5
) -> list[dict[str, Any]]:
    """Score every in-scope customer with orders up to ``as_of`` (inclusive).

    R, F and M are 1..bins (bins = worst); ties are split by customer id so the
    result is deterministic. Computed with one SQL statement. Customers who withdrew
    profiling consent are left out before scoring (they take no share of a bin).
    """
    if bins < 2:
        raise ValidationError(f"segmentation: bins must be at least 2, got {bins}")
    scope = check_scope(scope)
    end = _as_of_end(as_of)
    agg = (
        sa.select(
            customer_key().label("cid"),
            sa.func.max(orders.c.occurred_at).label("last_at"),
            sa.func.count().label("frequency"),
            sa.func.sum(orders.c.amount).label("monetary"),
        )
        .select_from(orders_in_scope(scope))
        .where(*counted_orders(end), *scope_clauses(scope))
        .group_by(customer_key())
    )
    a = agg.subquery("a")
    query = (
        sa.select(
            a.c.cid,
            a.c.last_at,
            a.c.frequency,
            a.c.monetary,
            sa.func.ntile(bins).over(order_by=(a.c.last_at.asc(), a.c.cid)).label("r"),
            sa.func.ntile(bins).over(order_by=(a.c.frequency.asc(), a.c.cid)).label("f"),
            sa.func.ntile(bins).over(order_by=(a.c.monetary.asc(), a.c.cid)).label("m"),
        )
        .where(allowed(a.c.cid))
        .order_by(a.c.cid)
    )
    with crm.engine.connect() as conn:
        require_orders_before(conn, as_of)
        rows = conn.execute(query).all()
    return [
        {
            "customer_id": r.cid,
            "frequency": int(r.frequency),
            "monetary": r.monetary,
            "r": int(r.r),
            "f": int(r.f),
            "m": int(r.m),
        }
        for r in rows
    ]


# First matching rule wins: (segment, (r_min, r_max), (f_min, f_max)) on a 1..5 scale.
DEFAULT_SEGMENT_MAP: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...] = (
    ("lost", (1, 1), (1, 1)),
    ("hibernating", (1, 2), (1, 2)),
    ("at risk", (1, 2), (3, 4)),
    ("can't lose", (1, 2), (5, 5)),
    ("about to sleep", (3, 3), (1, 2)),
    ("need attention", (3, 3), (3, 3)),
    ("loyal", (3, 4), (4, 5)),
    ("promising", (4, 4), (1, 1)),
    ("new", (5, 5), (1, 1)),
    ("potential loyalists", (4, 5), (2, 3)),
    ("champions", (5, 5), (4, 5)),
)


def _to5(score: int, bins: int) -> int:
    return -(-score * 5 // bins)


def name_segments(rows: list[dict[str, Any]], bins: int = 5, segment_map=DEFAULT_SEGMENT_MAP):
    """Add ``segment`` to each RFM row from its R and F scores (rescaled to 1..5).

    A row no rule matches is a configuration error (the map must cover the whole grid).
    """
    for row in rows:
        r5, f5 = _to5(row["r"], bins), _to5(row["f"], bins)
        for name, (rlo, rhi), (flo, fhi) in segment_map:
            if rlo <= r5 <= rhi and flo <= f5 <= fhi:
                row["segment"] = name
                break
        else:
            raise ValidationError(
                f"segmentation: the RFM segment map has no rule for R={r5}, F={f5}; "
                "add a rule covering it"
            )
    return rows
