"""Interactions: list (the CLI's filters), log one, a customer's interactions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmkit.core.entities import CHANNELS, DIRECTIONS
from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Page, Route

TAGS = ("interactions",)


def _page(req: ApiRequest, query: Any, customer_id: int | None) -> Page:
    c.choice(query.channel, "channel", CHANNELS)
    c.choice(query.direction, "direction", DIRECTIONS)
    limit = common.limit_of(query.limit)
    crm = req.crm
    filters = {
        "customer_id": customer_id,
        "channel": query.channel,
        "staff": query.staff,
        "text": query.q or None,
        "direction": query.direction,
        "since": c.moment(crm, query.since, "since"),
    }

    def fetch(until: dt.datetime | None, offset: int, size: int) -> list[Any]:
        return crm.interactions.list(**filters, until=until, limit=size, offset=offset)

    until = c.moment(crm, query.until, "until")
    items, cursor = common.time_page(fetch, lambda i: i.occurred_at, limit, query.cursor, until)
    return Page([c.interaction_out(i) for i in items], cursor)


def list_interactions(req: ApiRequest) -> Page:
    """Interactions matching the filters, newest first (cursor paging)."""
    query: s.InteractionQuery = req.query or s.InteractionQuery()
    return _page(req, query, c.customer_id_of(req.crm, query.customer))


def customer_interactions(req: ApiRequest) -> Page:
    """A customer's interactions, newest first (cursor paging)."""
    query: s.CustomerInteractionQuery = req.query or s.CustomerInteractionQuery()
    customer_id = req.path["customer_id"]
    req.crm.customers.get(customer_id)  # 404 for no customer (or one outside your scope)
    return _page(req, query, customer_id)


def log_interaction(req: ApiRequest) -> ApiResponse:
    """Log an interaction; ``staff`` defaults to the signed-in staff member."""
    body: s.InteractionIn = req.body
    logged = req.crm.interactions.log(
        body.customer_id,
        body.channel,
        occurred_at=common.storable(body.occurred_at, "occurred_at"),
        direction=body.direction,
        subject=body.subject,
        body=body.body,
        staff=body.staff if body.staff is not None else common.acting_username(req),
        external_id=body.external_id,
    )
    return ApiResponse(
        body=c.interaction_out(logged),
        status=201,
        headers={"Location": f"/api/v1/interactions/{logged.id}"},
    )


def get_interaction(req: ApiRequest) -> s.InteractionOut:
    """One interaction."""
    found = req.crm.interactions.get(req.path["interaction_id"])
    req.crm.customers.get(found.customer_id)  # out of scope: 404 like no interaction
    return c.interaction_out(found)


def routes() -> list[Route]:
    return [
        Route("GET", "/interactions", list_interactions, "List interactions",
              query=s.InteractionQuery, response=list[s.InteractionOut], tags=TAGS, quick=True),
        Route("POST", "/interactions", log_interaction, "Log an interaction",
              body=s.InteractionIn, response=s.InteractionOut, status=201, tags=TAGS, quick=True,
              errors=(404, 409)),
        Route("GET", "/interactions/{interaction_id:int}", get_interaction,
              "Get an interaction", response=s.InteractionOut, tags=TAGS, quick=True,
              errors=(404,)),
        Route("GET", "/customers/{customer_id:int}/interactions", customer_interactions,
              "List a customer's interactions", query=s.CustomerInteractionQuery,
              response=list[s.InteractionOut], tags=TAGS, quick=True, errors=(404,)),
    ]  # fmt: skip
