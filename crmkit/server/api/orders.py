"""Orders: list (the CLI's filters), add with lines, read, change status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from crmkit.core import access
from crmkit.core.entities import ORDER_STATUSES, Order, OrderLine
from crmkit.core.types import money_scale
from crmkit.errors import ValidationError
from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Page, Route

TAGS = ("orders",)


def list_orders(req: ApiRequest) -> Page:
    """Orders matching the filters, newest first (cursor paging)."""
    query: s.OrderQuery = req.query or s.OrderQuery()
    c.choice(query.status, "status", ORDER_STATUSES)
    limit = common.limit_of(query.limit)
    crm = req.crm
    filters = {
        "customer_id": c.customer_id_of(crm, query.customer),
        "status": query.status,
        "text": query.q or None,
        "owner": query.owner,
        "region": query.region,
        "channel": query.channel,
        "since": c.moment(crm, query.since, "since"),
    }

    def fetch(until: dt.datetime | None, offset: int, size: int) -> list[Any]:
        return crm.orders.list(**filters, until=until, limit=size, offset=offset)

    until = c.moment(crm, query.until, "until")
    items, cursor = common.time_page(fetch, lambda o: o.occurred_at, limit, query.cursor, until)
    return Page([c.order_out(o) for o in items], cursor)


def add_order(req: ApiRequest) -> ApiResponse:
    """Add an order (with its lines); ``external_id`` already stored is a 409."""
    body: s.OrderIn = req.body
    currency = (body.currency or req.crm.config.currency).upper()
    if not (len(currency) == 3 and currency.isalpha() and currency.isascii()):
        raise ValidationError(
            f"currency {body.currency!r} is not a 3-letter ISO code such as EUR", field="currency"
        )
    lines = [
        OrderLine(product=x.product, quantity=x.quantity, price=x.price, category=x.category)
        for x in body.lines
    ]
    added = req.crm.orders.add(
        customer_id=body.customer_id,
        amount=body.amount,
        occurred_at=common.storable(body.occurred_at, "occurred_at") or dt.datetime.now(dt.UTC),
        external_id=body.external_id,
        cost=body.cost,
        currency=currency,
        status=body.status,
        channel=body.channel,
        lines=lines,
    )
    # the answer shows the order: the same check as reading it back (orders.get), without
    # the two queries; the values as every later read gives them (money scale, UTC)
    access.authorise(req.crm, "orders.read", added.customer_id, kind="order", id=added.id)
    stored = as_stored(added)
    return ApiResponse(
        body=c.order_out(stored), status=201, headers={"Location": f"/api/v1/orders/{added.id}"}
    )


def as_stored(order: Order) -> Order:
    """``order`` as reading it back gives it: money at its stored scale, the time in UTC
    (the values were checked to fit their columns, so nothing else changes)."""
    lines = [
        attrs.evolve(x, quantity=money_scale(x.quantity), price=money_scale(x.price))
        for x in order.lines
    ]
    return attrs.evolve(
        order,
        amount=money_scale(order.amount),
        cost=None if order.cost is None else money_scale(order.cost),
        occurred_at=order.occurred_at.astimezone(dt.UTC),
        lines=lines,
    )


def _order(req: ApiRequest) -> Any:
    found = req.crm.orders.get(req.path["order_id"])
    req.crm.customers.get(found.customer_id)  # out of scope: 404 like no order
    return found


def get_order(req: ApiRequest) -> s.OrderOut:
    """One order with its lines."""
    return c.order_out(_order(req))


def set_order_status(req: ApiRequest) -> s.OrderOut:
    """Change an order's status (placed, paid, refunded, cancelled)."""
    body: s.OrderStatusIn = req.body
    c.choice(body.status, "status", ORDER_STATUSES)
    return c.order_out(req.crm.orders.set_status(req.path["order_id"], body.status))


def routes() -> list[Route]:
    one = "/orders/{order_id:int}"
    return [
        Route("GET", "/orders", list_orders, "List orders", query=s.OrderQuery,
              response=list[s.OrderOut], tags=TAGS, quick=True),
        Route("POST", "/orders", add_order, "Add an order", body=s.OrderIn,
              response=s.OrderOut, status=201, tags=TAGS, quick=True, errors=(404, 409)),
        Route("GET", one, get_order, "Get an order", response=s.OrderOut, tags=TAGS, quick=True,
              errors=(404,)),
        Route("POST", one + "/status", set_order_status, "Change an order's status",
              body=s.OrderStatusIn, response=s.OrderOut, tags=TAGS, quick=True, errors=(404,)),
    ]  # fmt: skip
