"""The baseline of bench/api_load.py: a bare ASGI app running crmkit's SQL, nothing else.

No framework, no authentication, no permission check, no audit entry, no validation
beyond what the SQL needs: a raw ASGI callable, psycopg 3's async connections (a small
pool per worker process) and orjson, the JSON encoder crmkit's server uses. It answers
the same paths and bodies as the crmkit API calls the load generator makes, with the
statements crmkit's services run for them (read from crmkit/core: customers.get,
customers.list, view360.build, interactions.log, orders.add), reads in autocommit and
writes in a transaction as crmkit runs them, so the difference in throughput is what
crmkit's framework, identity, permission checks, audit log and entities cost.

The 360 follows crmkit's view360.build: one statement reads the customer with its
consents, its paid-order totals and whether it has contacts, workflow instances,
interactions and consent history, and only the parts that have rows are read; orders come
with their lines in one statement. (crmkit also reads the customer's audit entries, the
"activity" part; the bare app keeps no audit log.)

Run (bench/api_load.py does it for you)::

    BARE_DATABASE_URL=postgresql://... uvicorn bench.bare_asgi:app --workers 2 --port 8001
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row

POOL_SIZE = int(os.environ.get("BARE_POOL_SIZE", "10"))

CUSTOMER = re.compile(r"^/api/v1/customers/(\d+)$")
VIEW360 = re.compile(r"^/api/v1/customers/(\d+)/360$")

CUSTOMER_SQL = "SELECT * FROM customers WHERE id = %s"
CONSENTS_SQL = "SELECT customer_id, purpose, granted FROM consents WHERE customer_id = ANY(%s)"
LIST_SQL = "SELECT * FROM customers WHERE region = %s AND id > %s ORDER BY id LIMIT %s"
INTERACTIONS_SQL = (
    "SELECT * FROM interactions WHERE customer_id = %s ORDER BY occurred_at DESC, id DESC LIMIT %s"
)
VIEW_CUSTOMER_SQL = (
    "SELECT c.*, (SELECT coalesce(json_object_agg(purpose, granted), '{}') FROM consents"
    " WHERE customer_id = c.id) AS consents, paid.paid_orders, paid.revenue, paid.last_order,"
    " EXISTS (SELECT 1 FROM contacts WHERE customer_id = c.id) AS has_contacts,"
    " EXISTS (SELECT 1 FROM workflow_instances WHERE customer_id = c.id) AS has_workflows,"
    " EXISTS (SELECT 1 FROM interactions WHERE customer_id = c.id) AS has_interactions,"
    " EXISTS (SELECT 1 FROM consent_changes WHERE customer_id = c.id) AS has_consent_history"
    " FROM customers c, (SELECT count(*) AS paid_orders, sum(amount) AS revenue,"
    " max(occurred_at) AS last_order FROM orders WHERE customer_id = %(id)s AND status = 'paid')"
    " AS paid WHERE c.id = %(id)s"
)
CONTACTS_SQL = "SELECT * FROM contacts WHERE customer_id = %s ORDER BY id"
ORDERS_SQL = (
    "SELECT page.*, l.id AS line_id, l.product AS line_product, l.category AS line_category,"
    " l.quantity AS line_quantity, l.price AS line_price FROM (SELECT * FROM orders"
    " WHERE customer_id = %s ORDER BY occurred_at DESC, id DESC LIMIT %s) AS page"
    " LEFT JOIN order_lines l ON l.order_id = page.id"
    " ORDER BY page.occurred_at DESC, page.id DESC, l.id"
)
LINE_KEYS = ("line_id", "line_product", "line_category", "line_quantity", "line_price")
WORKFLOWS_SQL = "SELECT * FROM workflow_instances WHERE customer_id = %s ORDER BY id"
CONSENT_HISTORY_SQL = "SELECT * FROM consent_changes WHERE customer_id = %s ORDER BY changed_at, id"
WRITABLE_SQL = "SELECT erased_at, merged_into FROM customers WHERE id = %s"
INSERT_INTERACTION = (
    "INSERT INTO interactions (customer_id, channel, direction, subject, body, occurred_at, staff)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *"
)
INSERT_ORDER = (
    "INSERT INTO orders (external_id, customer_id, occurred_at, amount, cost, currency, status,"
    " channel) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *"
)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


class Pool:
    """A fixed set of async connections (created on first use, per worker process)."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self.queue: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None
        self.lock = asyncio.Lock()

    async def _fill(self) -> None:
        async with self.lock:
            if self.queue is not None:
                return
            queue: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
            for _ in range(self.size):
                queue.put_nowait(
                    await psycopg.AsyncConnection.connect(
                        self.url, row_factory=dict_row, autocommit=True
                    )
                )
            self.queue = queue

    async def get(self) -> psycopg.AsyncConnection[Any]:
        if self.queue is None:
            await self._fill()
        assert self.queue is not None
        return await self.queue.get()

    def put(self, connection: psycopg.AsyncConnection[Any]) -> None:
        assert self.queue is not None
        self.queue.put_nowait(connection)


POOL = Pool(
    os.environ.get("BARE_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres"), POOL_SIZE
)


async def _customers(cur: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    consents: dict[int, dict[str, bool]] = {}
    if ids:
        await cur.execute(CONSENTS_SQL, (ids,))
        for row in await cur.fetchall():
            consents.setdefault(row["customer_id"], {})[row["purpose"]] = row["granted"]
    for row in rows:
        row["consents"] = consents.get(row["id"], {})
    return rows


async def get_customer(cur: Any, customer_id: int) -> dict[str, Any] | None:
    await cur.execute(CUSTOMER_SQL, (customer_id,))
    row = await cur.fetchone()
    return None if row is None else (await _customers(cur, [row]))[0]


async def list_customers(cur: Any, query: dict[str, str]) -> list[dict[str, Any]]:
    limit = min(int(query.get("limit", "50")), 500)
    await cur.execute(LIST_SQL, (query.get("region", ""), int(query.get("cursor", "0")), limit))
    return await _customers(cur, await cur.fetchall())


async def view360(cur: Any, customer_id: int, limit: int = 100) -> dict[str, Any] | None:
    await cur.execute(VIEW_CUSTOMER_SQL, {"id": customer_id})
    customer = await cur.fetchone()
    if customer is None:
        return None
    interactions: list[Any] = []
    if customer.pop("has_interactions"):
        await cur.execute(INTERACTIONS_SQL, (customer_id, limit))
        interactions = await cur.fetchall()
    contacts: list[Any] = []
    if customer.pop("has_contacts"):
        await cur.execute(CONTACTS_SQL, (customer_id,))
        contacts = await cur.fetchall()
    await cur.execute(ORDERS_SQL, (customer_id, limit))
    orders: list[dict[str, Any]] = []
    for row in await cur.fetchall():  # an order's rows are adjacent, one a line
        line = {key[5:]: row.pop(key) for key in LINE_KEYS}
        if not orders or orders[-1]["id"] != row["id"]:
            row["lines"] = []
            orders.append(row)
        if line["id"] is not None:
            orders[-1]["lines"].append(line)
    workflows: list[Any] = []
    if customer.pop("has_workflows"):
        await cur.execute(WORKFLOWS_SQL, (customer_id,))
        workflows = await cur.fetchall()
    history: list[Any] = []
    if customer.pop("has_consent_history"):
        await cur.execute(CONSENT_HISTORY_SQL, (customer_id,))
        history = await cur.fetchall()
    totals = {
        "paid_orders": customer.pop("paid_orders"),
        "revenue": customer.pop("revenue") or Decimal(0),
        "last_order": customer.pop("last_order"),
    }
    return {
        "customer": customer,
        "contacts": contacts,
        "interactions": interactions,
        "orders": orders,
        "workflows": workflows,
        "totals": totals,
        "timeline": interactions,
        "consent_history": history,
    }


async def _writable(cur: Any, customer_id: int) -> bool:
    await cur.execute(WRITABLE_SQL, (customer_id,))
    row = await cur.fetchone()
    return row is not None and row["erased_at"] is None and row["merged_into"] is None


async def log_interaction(cur: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    if not await _writable(cur, int(body["customer_id"])):
        return None
    when = body.get("occurred_at") or dt.datetime.now(dt.UTC)
    await cur.execute(
        INSERT_INTERACTION,
        (body["customer_id"], body.get("channel", "phone"), body.get("direction", "inbound"),
         body.get("subject", ""), body.get("body", ""), when, body.get("staff")),
    )  # fmt: skip
    return await cur.fetchone()


async def add_order(cur: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    if not await _writable(cur, int(body["customer_id"])):
        return None
    await cur.execute(
        INSERT_ORDER,
        (body.get("external_id"), body["customer_id"],
         body.get("occurred_at") or dt.datetime.now(dt.UTC), Decimal(body["amount"]),
         Decimal(body["cost"]) if body.get("cost") is not None else None,
         body.get("currency", "CNY"), body.get("status", "paid"), body.get("channel")),
    )  # fmt: skip
    return await cur.fetchone()


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, payload: Any) -> None:
    body = dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _handle(
    cur: Any, method: str, path: str, query: dict[str, str], body: bytes
) -> tuple[int, Any]:
    if method == "GET":
        if match := CUSTOMER.match(path):
            found = await get_customer(cur, int(match[1]))
        elif match := VIEW360.match(path):
            found = await view360(cur, int(match[1]))
        elif path == "/api/v1/customers":
            return 200, await list_customers(cur, query)
        elif path == "/healthz":
            return 200, {"status": "ok"}
        else:
            return 404, {"title": "no such path"}
        return (404, {"title": "not found"}) if found is None else (200, found)
    if method == "POST" and path in ("/api/v1/interactions", "/api/v1/orders"):
        data = json.loads(body)
        write = log_interaction if path == "/api/v1/interactions" else add_order
        created = await write(cur, data)
        return (404, {"title": "customer not found"}) if created is None else (201, created)
    return 405, {"title": "method not allowed"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI callable: routes by hand, one pooled connection per request."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _read_body(receive)
    query = dict(
        pair.split("=", 1) for pair in scope["query_string"].decode().split("&") if "=" in pair
    )
    connection = await POOL.get()
    try:
        # reads in autocommit, writes in a transaction: as crmkit runs them
        if scope["method"] == "GET":
            async with connection.cursor() as cur:
                status, payload = await _handle(cur, scope["method"], scope["path"], query, body)
        else:
            async with connection.transaction(), connection.cursor() as cur:
                status, payload = await _handle(cur, scope["method"], scope["path"], query, body)
    finally:
        POOL.put(connection)
    await _respond(send, status, payload)
