"""Current value × potential value: four quadrants and a relationship level for each.

*Current value* is the customer's revenue or margin in the last ``months`` (12) before
the as-of day (summed in SQL). *Potential value* is an estimate of what more the customer
could bring in such a period:

* when the customer has the custom attribute ``potential_value`` (name configurable) —
  the company's estimate of the customer's whole yearly spend on what it sells (the
  "wallet"), in the same measure — the potential is the share-of-wallet gap
  ``max(potential_value - current, 0)``;
* otherwise the trend: ``max(current - previous, 0)`` where *previous* is the value of the
  ``months`` before that — a customer who grew by 300 last year is assumed able to grow
  by as much again; a flat or shrinking customer shows no potential.

Each row says which source it used. A customer is *high* on an axis when strictly above
the split, by default the median over the in-scope customers (customers with at least
one order up to as-of). Quadrants: ``invest`` (high current, high potential),
``maintain`` (high, low), ``develop`` (low, high), ``harvest`` (low, low); the default
relationship levels (Kotler) are partnership, proactive, accountable and basic.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import ValidationError, customers, money_scale, orders

from .analyses import (
    check_measure,
    money,
    no_customers,
    order_units,
    prepare,
    relationship_map,
)
from .profiling import allowed
from .scope import (
    add_months,
    as_of_end,
    counted_orders,
    customer_key,
    orders_in_scope,
    scope_clauses,
)

QUADRANTS = ("invest", "maintain", "develop", "harvest")
DEFAULT_POTENTIAL_ATTRIBUTE = "potential_value"


def _quadrant(high_current: bool, high_potential: bool) -> str:
    if high_current:
        return "invest" if high_potential else "maintain"
    return "develop" if high_potential else "harvest"


def value_matrix(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    measure: str = "revenue",
    *,
    months: int = 12,
    potential_attribute: str = DEFAULT_POTENTIAL_ATTRIBUTE,
    current_split: Decimal | None = None,
    potential_split: Decimal | None = None,
    relationships: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per in-scope customer with orders up to ``as_of`` (by customer id).

    Rows: ``customer_id, external_id, current, previous, potential, potential_source,
    quadrant, relationship``. ``current_split``/``potential_split`` override the medians.
    """
    check_measure(measure, ("revenue", "margin"))
    if not 1 <= months <= 120:
        raise ValidationError(f"segmentation: --months must be 1..120, got {months}")
    levels = relationship_map("matrix", QUADRANTS, relationships)
    end = as_of_end(as_of)
    start = as_of_end(add_months(as_of, -months))
    before = as_of_end(add_months(as_of, -2 * months))
    with crm.engine.connect() as conn:
        scope = prepare(conn, as_of, scope, measure)
        units = order_units(measure, end, conn.dialect.name)
        in_window = sa.case((orders.c.occurred_at >= start, units), else_=0)
        in_previous = sa.case(
            (sa.and_(orders.c.occurred_at >= before, orders.c.occurred_at < start), units),
            else_=0,
        )
        per_customer = (
            sa.select(
                customer_key().label("cid"),
                sa.func.sum(in_window).label("current"),
                sa.func.sum(in_previous).label("previous"),
            )
            .select_from(orders_in_scope(scope))
            .where(*counted_orders(end), *scope_clauses(scope))
            .group_by(customer_key())
            .subquery("m")
        )
        query = (
            sa.select(
                per_customer,
                customers.c.external_id,
                customers.c.attributes[potential_attribute].as_string().label("wallet"),
            )
            .select_from(per_customer.join(customers, customers.c.id == per_customer.c.cid))
            .where(allowed(per_customer.c.cid))
            .order_by(per_customer.c.cid)
        )
        rows = conn.execute(query).all()
    if not rows:
        raise no_customers(as_of, scope, crm)
    out = []
    for r in rows:
        current, previous = money(r.current), money(r.previous)
        if r.wallet is not None and str(r.wallet) != "":
            try:
                wallet = Decimal(str(r.wallet))
            except InvalidOperation:
                raise ValidationError(
                    f"segmentation: customer {r.external_id or r.cid} has {potential_attribute}"
                    f" = {r.wallet!r}, not a number; fix the attribute"
                ) from None
            potential, source = max(wallet - current, Decimal(0)), "attribute"
        else:
            potential, source = max(current - previous, Decimal(0)), "trend"
        out.append(
            {
                "customer_id": r.cid,
                "external_id": r.external_id,
                "current": current,
                "previous": previous,
                "potential": money_scale(potential),
                "potential_source": source,
            }
        )
    c_split = _split(current_split, [row["current"] for row in out])
    p_split = _split(potential_split, [row["potential"] for row in out])
    for row in out:
        quadrant = _quadrant(row["current"] > c_split, row["potential"] > p_split)
        row["quadrant"] = quadrant
        row["relationship"] = levels[quadrant]
    return out


def _split(given: Decimal | None, values: list[Decimal]) -> Decimal:
    return Decimal(given) if given is not None else Decimal(statistics.median(values))
