"""The baseline of bench/api_load.py: a bare ASGI app running crmkit's SQL, nothing else.

No framework, no authentication, no permission check, no audit entry, no validation
beyond what the SQL needs: a raw ASGI callable, psycopg 3's async connections (a small
pool per worker process) and ``json.dumps``. It answers the same paths and bodies as the
crmkit API calls the load generator makes, with the same statements crmkit's services
run for them (read from crmkit/core: customers.get, customers.list, view360.build,
interactions.log, orders.add), so the difference in throughput is what crmkit's
framework, identity, permission checks, audit log and entities cost.

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
TOTALS_SQL = (
    "SELECT count(*), sum(amount), max(occurred_at) FROM orders "
    "WHERE customer_id = %s AND status = 'paid'"
)
CONTACTS_SQL = "SELECT * FROM contacts WHERE customer_id = %s ORDER BY id"
ORDERS_SQL = (
    "SELECT * FROM orders WHERE customer_id = %s ORDER BY occurred_at DESC, id DESC LIMIT %s"
)
LINES_SQL = "SELECT * FROM order_lines WHERE order_id = ANY(%s) ORDER BY id"
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
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


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
                    await psycopg.AsyncConnection.connect(self.url, row_factory=dict_row)
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
    customer = await get_customer(cur, customer_id)
    if customer is None:
        return None
    await cur.execute(INTERACTIONS_SQL, (customer_id, limit))
    interactions = await cur.fetchall()
    await cur.execute(TOTALS_SQL, (customer_id,))
    count, revenue, last = (await cur.fetchone()).values()
    await cur.execute(CONTACTS_SQL, (customer_id,))
    contacts = await cur.fetchall()
    await cur.execute(ORDERS_SQL, (customer_id, limit))
    orders = await cur.fetchall()
    lines: dict[int, list[Any]] = {}
    if orders:
        await cur.execute(LINES_SQL, ([o["id"] for o in orders],))
        for line in await cur.fetchall():
            lines.setdefault(line["order_id"], []).append(line)
    for order in orders:
        order["lines"] = lines.get(order["id"], [])
    await cur.execute(WORKFLOWS_SQL, (customer_id,))
    workflows = await cur.fetchall()
    await cur.execute(CONSENT_HISTORY_SQL, (customer_id,))
    history = await cur.fetchall()
    return {
        "customer": customer,
        "contacts": contacts,
        "interactions": interactions,
        "orders": orders,
        "workflows": workflows,
        "totals": {"paid_orders": count, "revenue": revenue or Decimal(0), "last_order": last},
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
        async with connection.transaction(), connection.cursor() as cur:
            status, payload = await _handle(cur, scope["method"], scope["path"], query, body)
    finally:
        POOL.put(connection)
    await _respond(send, status, payload)
