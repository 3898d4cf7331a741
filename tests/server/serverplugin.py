"""A test plugin serving routes that exercise the server framework (loaded by the server
process through CRMKIT_EXTRA_PLUGINS; see tests/server/conftest.py)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from decimal import Decimal
from typing import Any, Literal

import attrs
import sqlalchemy as sa

import crmkit
from crmkit.plugin import ApiRequest, ApiResponse, Page, PermissionSpec, Route

CRMKIT_NAME = "servertest"
CRMKIT_API = ">=1.7,<2"

log = logging.getLogger("crmkit.servertest")


@attrs.define
class Line:
    sku: str
    amount: Decimal


@attrs.define
class EchoBody:
    name: str
    count: int = 1
    price: Decimal | None = None
    at: dt.datetime | None = None
    day: dt.date | None = None
    flag: bool = False
    kind: Literal["a", "b"] = "a"
    tags: list[str] = attrs.field(factory=list)
    lines: list[Line] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class ListQuery:
    limit: int = 50
    cursor: str | None = None
    kind: Literal["a", "b"] | None = None
    since: dt.datetime | None = None


@attrs.define
class Item:
    n: int


@attrs.define
class CustomerBody:
    name: str
    sleep: float = 0.0


@attrs.define
class Created:
    customer_ids: list[int]
    echo: str


@attrs.define
class SlowQuery:
    seconds: float = 1.0


def echo(req: ApiRequest) -> Any:
    return req.body


def items(req: ApiRequest) -> Page:
    cursor = req.query.cursor or "0"
    if not cursor.isdigit() or len(cursor) > 3:
        raise crmkit.ValidationError("cursor: not a cursor this list gave", field="cursor")
    start = int(cursor)
    if not 1 <= req.query.limit <= 500:
        raise crmkit.ValidationError("limit: 1 to 500", field="limit")
    stop = min(start + req.query.limit, 7)
    cursor = str(stop) if stop < 7 else None
    return Page([Item(n) for n in range(start, stop)], cursor)


def whoami(req: ApiRequest) -> dict[str, Any]:
    return {
        "actor": req.actor.name,
        "kind": req.actor.kind,
        "request_id": req.request_id,
        "crm_actor": req.crm.actor.name,
        "language": req.language,
        "if_match": req.if_match,
    }


def tagged(req: ApiRequest) -> ApiResponse:
    return ApiResponse({"ok": True}, status=201, headers={"X-Test": "1"}, etag="v7")


def boom(req: ApiRequest) -> Any:
    raise RuntimeError("secret internal detail")


def refuse(req: ApiRequest) -> Any:
    raise crmkit.ValidationError("the name is too silly", field="name")


def add_customers(req: ApiRequest) -> Created:
    """Writes two customers in one transaction, then sleeps inside it (kill -9 test)."""
    crm = req.crm
    ids = []
    # acting_as, not transaction(actor=): an idempotent POST's transaction is already open
    with crm.acting_as(crmkit.plugin.Actor.job("servertest")), crm.transaction() as ctx:
        for suffix in ("one", "two"):
            ids.append(crm.customers.add(name=f"{req.body.name} {suffix}").id)
            if req.body.sleep:
                ctx.connection.execute(sa.text("SELECT 1"))
                log.info("servertest %s: wrote %s, sleeping", req.request_id, suffix)
                time.sleep(req.body.sleep)
    return Created(customer_ids=ids, echo=req.body.name)


def slow(req: ApiRequest) -> dict[str, Any]:
    log.info("servertest %s: sleeping", req.request_id)
    time.sleep(req.query.seconds)
    return {"slept": req.query.seconds}


def thread_name(req: ApiRequest) -> dict[str, str]:
    return {"thread": threading.current_thread().name}


def stream_count(req: ApiRequest) -> dict[str, int]:
    total = 0
    for chunk in req.stream:
        total += len(chunk)
    return {"bytes": total}


@crmkit.hookimpl
def crmkit_register_permissions() -> list[PermissionSpec]:
    return [PermissionSpec("servertest.use", "use the test routes", scoped=False)]


@crmkit.hookimpl
def crmkit_register_routes() -> list[Route]:
    public = {"public": True}
    return [
        Route("POST", "/echo", echo, "Echo a body", body=EchoBody, response=EchoBody, **public),
        Route(
            "GET", "/items", items, "A paged list", query=ListQuery, response=list[Item], **public
        ),
        Route("GET", "/whoami", whoami, "Who is acting", **public),
        Route("GET", "/private", whoami, "Needs sign-in", operation_id="private_read"),
        Route("POST", "/private", whoami, "Needs sign-in to write", operation_id="private_write"),
        Route(
            "GET",
            "/tagged/{n:int}",
            tagged,
            "A response with status, headers, ETag",
            status=201,
            **public,
        ),
        Route("GET", "/boom", boom, "Fails unexpectedly", **public),
        Route(
            "GET",
            "/refuse",
            refuse,
            "Refuses",
            description="Refuses <script>alert('x')</script>",
            **public,
        ),
        # signed in: honours Idempotency-Key (public routes ignore it)
        Route(
            "POST",
            "/customers",
            add_customers,
            "Add two customers",
            body=CustomerBody,
            response=Created,
            status=201,
        ),
        Route(
            "POST",
            "/open-customers",
            add_customers,
            "Add two customers without signing in",
            body=CustomerBody,
            response=Created,
            status=201,
            operation_id="add_open_customers",
            **public,
        ),
        Route("GET", "/slow", slow, "Answers after a while", query=SlowQuery, **public),
        Route("GET", "/thread", thread_name, "The thread that ran the handler", **public),
        Route(
            "GET",
            "/thread-quick",
            thread_name,
            "The thread that ran a quick handler",
            operation_id="thread_quick",
            quick=True,
            **public,
        ),
        Route(
            "POST", "/stream", stream_count, "Counts a streamed body", body_kind="stream", **public
        ),
    ]
