"""ABC classes by cumulative share of value, computed in SQL with window functions.

Customers are ranked by value (revenue, margin or historical CLV; see :mod:`.analyses`),
highest first. A class is filled until its cumulative share is reached: a customer
belongs to the first class whose limit is above the share of value *ahead* of it, so the
customer who crosses the 80% line is still A (A always holds at least 80% of the value)
and the customer right after an exact 80% is B. Customers with equal values are tied:
they share a rank and a class (the value ahead of a tie excludes the tie itself).
Customers whose value is zero or negative add nothing to the positive total and are in
the last class.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import ValidationError, customers

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

DEFAULT_CLASSES: tuple[tuple[str, Decimal | None], ...] = (
    ("A", Decimal("0.80")),
    ("B", Decimal("0.95")),
    ("C", None),
)


def abc_classes(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    measure: str = "revenue",
    classes: Sequence[tuple[str, Decimal | None]] = DEFAULT_CLASSES,
    *,
    discount_rate: Decimal = DEFAULT_DISCOUNT_RATE,
    relationships: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per in-scope customer with orders up to ``as_of``, highest value first.

    ``classes``: ``(label, cumulative upper share)`` pairs; the last may be ``None`` (the
    rest). Rows: ``customer_id, external_id, rank, value, share, cumulative_share, class,
    relationship`` (shares of the positive total; ``cumulative_share`` includes ties).
    """
    bands = cumulative_bands(classes, cumulative=True, option="--classes")
    levels = relationship_map("abc", [label for label, _ in bands], relationships)
    end = as_of_end(as_of)
    with crm.engine.connect() as conn:
        scope = prepare(conn, as_of, scope, measure)
        v = customer_values(measure, end, scope, conn.dialect.name, discount_rate)
        positive = sa.case((v.c.units > 0, v.c.units), else_=0)
        w = sa.select(
            v.c.cid,
            v.c.units,
            sa.func.sum(positive).over(order_by=v.c.units.desc()).label("cum"),
            sa.func.sum(positive).over(partition_by=v.c.units).label("peers"),
            sa.func.sum(positive).over().label("total"),
            sa.func.rank().over(order_by=v.c.units.desc()).label("rank"),
        ).subquery("w")
        klass = sa.case(
            (w.c.units <= 0, sa.literal(bands[-1][0])),
            else_=band_case(w.c.cum - w.c.peers, w.c.total, bands),
        )
        query = (
            sa.select(
                w.c.cid,
                customers.c.external_id,
                w.c.units,
                w.c.cum,
                w.c.total,
                w.c.rank,
                klass.label("klass"),
            )  # fmt: skip
            .select_from(w.join(customers, customers.c.id == w.c.cid))
            .order_by(w.c.rank, w.c.cid)
        )
        rows = conn.execute(query).all()
    if not rows:
        raise no_customers(as_of, scope, crm)
    if rows[0].total <= 0:
        raise ValidationError(
            f"segmentation: no customer has a positive {measure} up to {as_of.isoformat()}, "
            "so there is no share to classify; use another measure or date"
        )
    return [
        {
            "customer_id": r.cid,
            "external_id": r.external_id,
            "rank": int(r.rank),
            "value": money(r.units),
            "share": share(max(int(r.units), 0), r.total),
            "cumulative_share": share(r.cum, r.total),
            "class": r.klass,
            "relationship": levels[r.klass],
        }
        for r in rows
    ]
