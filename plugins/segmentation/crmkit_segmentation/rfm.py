"""RFM scoring: one per-customer GROUP BY in the database, NTILE buckets in numpy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import NullType

from crmkit.plugin import ValidationError, orders, to_decimal

from .profiling import allowed
from .scope import (
    SCOPE_FIELDS,
    check_scope,
    counted_orders,
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

    R, F and M are 1..bins (1 worst, bins best); ties are split by customer id so the
    result is deterministic. Customers who withdrew profiling consent are left out
    before scoring (they take no share of a bin). The scores are those of
    ``NTILE(bins) OVER (ORDER BY value, customer_id)`` over the per-customer aggregate:
    one GROUP BY statement returns the customers in recency order, and F and M are
    ranked in numpy (:mod:`.ntile`) on the exact values the database summed.
    """
    if bins < 2:
        raise ValidationError(f"segmentation: bins must be at least 2, got {bins}")
    scope = check_scope(scope)
    end = _as_of_end(as_of)
    # The plain column, not customer_key(): every column read here is in the covering
    # index ix_orders_customer_time, which hands both backends the orders grouped by
    # customer (2x faster than hashing or sorting customer_id + 0).
    cid = orders.c.customer_id
    a = (
        sa.select(
            cid.label("cid"),
            sa.func.max(orders.c.occurred_at).label("last_at"),
            sa.func.count().label("frequency"),
            # raw: SQLite's float sum is what its NTILE ordered by; converted to Money below
            sa.type_coerce(sa.func.sum(orders.c.amount), NullType()).label("monetary"),
        )
        .select_from(orders_in_scope(scope))
        .where(*counted_orders(end), *scope_clauses(scope))
        .group_by(cid)
        .subquery("a")
    )
    query = (
        sa.select(a.c.cid, a.c.frequency, a.c.monetary)
        .where(allowed(a.c.cid))
        .order_by(a.c.last_at, a.c.cid)  # R's order, compared by the database itself
    )
    with crm.engine.connect() as conn:
        require_orders_before(conn, as_of)
        rows = conn.execute(query).all()
    if not rows:
        return []
    return _scored(rows, bins)


def _scored(rows: list[Any], bins: int) -> list[dict[str, Any]]:
    """Rows (customer id, frequency, raw monetary) in recency order → result rows by id."""
    import numpy as np  # here, not at import: a CLI start-up loads no numpy

    from .ntile import ntile_by_position, ntiles

    ids_, frequency_, monetary = zip(*rows, strict=True)
    ids = np.array(ids_, dtype=np.int64)
    frequency = np.array(frequency_, dtype=np.int64)
    r = ntile_by_position(len(rows), bins)
    f = ntiles(frequency, ids, bins)
    m = ntiles(monetary, ids, bins)
    by_id = np.argsort(ids, kind="stable").tolist()
    return [
        {
            "customer_id": ids_[i],
            "frequency": frequency_[i],
            "monetary": _money(monetary[i]),
            "r": r_,
            "f": f_,
            "m": m_,
        }
        for i, r_, f_, m_ in zip(
            by_id, r[by_id].tolist(), f[by_id].tolist(), m[by_id].tolist(), strict=True
        )
    ]


_PLACES = {n: Decimal(1).scaleb(-n) for n in (2, 3, 4)}


def _money(raw: Any) -> Decimal:
    """A raw SQL sum as the Money type returns it (``money_scale(to_decimal(raw))``: 2 to
    4 places), for half its cost: the places are read off the 4-place text."""
    value = (Decimal(repr(raw)) if type(raw) is float else to_decimal(raw)).quantize(_PLACES[4])
    text = str(value)  # always 4 places: a quantized Money value is never in E notation
    if text[-2:] == "00":
        return value.quantize(_PLACES[2])
    return value.quantize(_PLACES[3]) if text[-1] == "0" else value


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
    named: dict[tuple[int, int], str] = {}  # (r, f) → segment: the map is read once per cell
    for row in rows:
        cell = (row["r"], row["f"])
        name = named.get(cell)
        if name is None:
            name = named[cell] = _segment(*cell, bins, segment_map)
        row["segment"] = name
    return rows


def _segment(r: int, f: int, bins: int, segment_map) -> str:
    r5, f5 = _to5(r, bins), _to5(f, bins)
    for name, (rlo, rhi), (flo, fhi) in segment_map:
        if rlo <= r5 <= rhi and flo <= f5 <= fhi:
            return name
    raise ValidationError(
        f"segmentation: the RFM segment map has no rule for R={r5}, F={f5}; add a rule covering it"
    )
