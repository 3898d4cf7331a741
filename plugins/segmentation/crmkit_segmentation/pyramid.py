"""The value pyramid: tiers by share of customers ranked by value, in SQL.

Customers are ranked by value (revenue, margin or historical CLV; see :mod:`.analyses`),
highest first, with ``RANK()`` so tied customers share a rank. A tier is filled until its
share of the customer count is reached: a customer belongs to the first tier whose
cumulative share is above the share of customers ranked *ahead* of it. Without ties the
top tier therefore holds ``ceil(1% × n)`` customers (one VIP among 50 customers, ten among
1,000); ties at a boundary all join the higher tier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import customers

from .analyses import (
    DEFAULT_DISCOUNT_RATE,
    band_case,
    cumulative_bands,
    customer_values,
    money,
    no_customers,
    prepare,
    relationship_map,
    share,
)
from .scope import as_of_end

DEFAULT_TIERS: tuple[tuple[str, Decimal | None], ...] = (
    ("vip", Decimal("0.01")),
    ("major", Decimal("0.04")),
    ("ordinary", Decimal("0.15")),
    ("small", None),
)


def value_pyramid(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    measure: str = "revenue",
    tiers: Sequence[tuple[str, Decimal | None]] = DEFAULT_TIERS,
    *,
    discount_rate: Decimal = DEFAULT_DISCOUNT_RATE,
    relationships: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per in-scope customer with orders up to ``as_of``, highest value first.

    ``tiers``: ``(label, share of customers)`` pairs, top tier first; the last may be
    ``None`` (the rest). Rows: ``customer_id, external_id, rank, value, share, tier,
    relationship`` (``share``: of the summed positive value).
    """
    bands = cumulative_bands(tiers, cumulative=False, option="--tiers")
    levels = relationship_map("pyramid", [label for label, _ in bands], relationships)
    end = as_of_end(as_of)
    with crm.engine.connect() as conn:
        scope = prepare(conn, as_of, scope, measure)
        v = customer_values(measure, end, scope, conn.dialect.name, discount_rate)
        positive = sa.case((v.c.units > 0, v.c.units), else_=0)
        w = sa.select(
            v.c.cid,
            v.c.units,
            sa.func.rank().over(order_by=v.c.units.desc()).label("rank"),
            sa.func.count().over().label("n"),
            sa.func.sum(positive).over().label("total"),
        ).subquery("w")
        tier = band_case(w.c.rank - 1, w.c.n, bands)
        query = (
            sa.select(
                w.c.cid,
                customers.c.external_id,
                w.c.units,
                w.c.rank,
                w.c.total,
                tier.label("tier"),
            )  # fmt: skip
            .select_from(w.join(customers, customers.c.id == w.c.cid))
            .order_by(w.c.rank, w.c.cid)
        )
        rows = conn.execute(query).all()
    if not rows:
        raise no_customers(as_of, scope, crm)
    return [
        {
            "customer_id": r.cid,
            "external_id": r.external_id,
            "rank": int(r.rank),
            "value": money(r.units),
            "share": share(max(int(r.units), 0), r.total),
            "tier": r.tier,
            "relationship": levels[r.tier],
        }
        for r in rows
    ]
