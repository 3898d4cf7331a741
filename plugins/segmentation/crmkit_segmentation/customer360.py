"""The customer 360 section "Segments and value": current segments, value to date, CLV.

A customer who withdrew profiling consent gets the section with the reason instead of
segments and predicted value (``profiling``: when they withdrew and what is not shown);
the plain totals of their own orders stay, as on their order list.
"""

from __future__ import annotations

import datetime as dt
import weakref
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import CrmError, Forbidden, Money, NotFound, Resource, Section, orders

from . import access, profiling
from . import snapshots as snaps

CLV_FIELDS = (
    ("clv", "CLV (discounted)"),
    ("expected_purchases", "expected purchases"),
    ("p_alive", "P(alive)"),
    ("expected_spend", "expected spend per purchase"),
    ("historical_clv", "historical CLV"),
)

#: the CLV model fitted for each open CRM, with the day it was fitted for
_CLV_MODELS: weakref.WeakKeyDictionary[Any, tuple[dt.date, Any]] = weakref.WeakKeyDictionary()


def historical_value(crm: Any, customer_id: int) -> dict[str, Any]:
    """The customer's counted orders, revenue and margin to date.

    The margin is known only when every counted order has a cost: an order without
    one would count as pure margin (100%), so the margin is then ``None`` (shown as
    unknown) and ``uncosted`` says how many orders lack a cost.
    """
    query = sa.select(
        sa.func.count(),
        sa.type_coerce(sa.func.sum(orders.c.amount), Money),
        sa.type_coerce(sa.func.sum(orders.c.amount - orders.c.cost), Money),
        sa.func.count().filter(orders.c.cost.is_(None)),
    ).where(orders.c.customer_id == customer_id, orders.c.status.in_(("placed", "paid")))
    with crm.reading() as conn:
        count, revenue, margin, uncosted = conn.execute(query).one()
    known = None if uncosted else (margin or 0)
    return {"orders": int(count), "revenue": revenue or 0, "margin": known, "uncosted": uncosted}


def _fitted_model(crm: Any, clv: Any) -> Any:
    """Today's CLV model of ``crm``: fitted once per CRM and day, then reused.

    One fit reads every customer's summary; a process showing many 360 pages, such as a
    web front end, fits once and scores each view."""
    today = dt.datetime.now(dt.UTC).date()
    cached = _CLV_MODELS.get(crm)
    if cached is None or cached[0] != today:
        cached = (today, clv.fit_model(crm, today, sample=10_000))
        _CLV_MODELS[crm] = cached
    return cached[1]


def clv_figures(crm: Any, customer: Any) -> dict[str, Any] | None:
    """Per-customer lifetime value from the CLV module when it offers one."""
    try:
        from . import clv
    except ImportError:
        return None
    fn = getattr(clv, "customer_clv", None)
    if fn is None:
        return None
    try:
        found = fn(crm, customer.id, model=_fitted_model(crm, clv))
    except CrmError:
        return None  # too few customers, no convergence: show the historical value only
    if not found:
        return None
    figures = {label: str(found[key]) for key, label in CLV_FIELDS if key in found}
    if "horizon" in found and "time_unit" in found:
        figures["horizon"] = f"{float(found['horizon']):g} {found['time_unit']}s"
    if "as_of" in found:
        figures["as of"] = str(found["as_of"])
    return figures


def not_profiled(crm: Any, customer: Any) -> str | None:
    """Why the customer has no segment or score, when they withdrew profiling consent."""
    with crm.reading() as conn:
        since = profiling.withdrawal(conn, customer.id)
    if since is None:
        return None
    return (
        f"not profiled: the customer withdrew consent to profiling on {since:%Y-%m-%d}, so "
        "no segment, value class or lifetime value is computed or shown for them"
    )


def section(crm: Any, customer: Any) -> Section | None:
    """The section, or None for a customer in no snapshot and without counted orders, or
    for an actor without ``segmentation.read`` on the customer."""
    try:
        crm.authorise(access.READ, Resource.customer(customer.id, owner=customer.owner))
    except (Forbidden, NotFound):
        return None
    history = historical_value(crm, customer.id)
    reason = not_profiled(crm, customer)
    if reason is not None:
        return Section(
            title="Segments and value",
            name="segmentation",
            template="segmentation/section.html",
            data={
                "profiling": reason,
                "segments": [],
                "historical": {k: str(v) for k, v in history.items()},
                "clv": None,
            },
        )
    segments = snaps.latest_memberships(crm, [customer.id])
    if not segments and not history["orders"]:
        return None
    return Section(
        title="Segments and value",
        name="segmentation",
        template="segmentation/section.html",
        data={
            "segments": [
                {
                    "scheme": s["scheme"],
                    "segment": s["segment"],
                    "as_of": s["as_of"].isoformat(),
                    "snapshot_id": s["snapshot_id"],
                }
                for s in segments
            ],
            "historical": {k: str(v) for k, v in history.items()},
            "clv": clv_figures(crm, customer),
        },
    )
