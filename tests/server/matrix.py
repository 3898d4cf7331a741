"""The permission matrix: operations x principals, and the status each must get.

One explicit table (:data:`EXPECTED`), written from the issue's default roles (sales rep:
own customers; sales manager: the team; cost accounting: orders and costs, reads customers;
technical support and complaint handler: service work on every customer, no erasure;
manager: everything on customers; admin: everything) and the HTTP conventions of the brief
(401 without a valid identity, 403 for a missing permission or a missing CSRF header,
404 for another rep's customer). It is *not* derived from crmkit's role table, so a
wrong default grant or a missed check in a service shows up as a difference.

Every operation is run through three doors with the same expectations: the Python API
(``crm.acting_as(actor)``; Forbidden=403, NotFound=404, Unauthenticated=401,
TransitionRefused/Conflict=409), the CLI (``crmkit --as USER ...``: exit 0 when allowed,
exit 1 and an ``error:`` line when refused) and HTTP against a live server.

Status codes in the table: ``OK`` is any 2xx; the rest must match exactly.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

OK = 200  # any 2xx

#: who acts: the staff members below act through their own API token over HTTP;
#: ``other_rep`` is rep_b acting on rep_a's customer; the last three are a manager's
#: revoked token, a manager's expired session and a manager's live session cookie sent
#: without the X-CSRF-Token header.
PRINCIPALS = (
    "anonymous", "sales_rep", "other_rep", "sales_manager", "cost_accounting",
    "technical_support", "complaint_handler", "manager", "admin",
    "revoked_token", "expired_session", "no_csrf",
)  # fmt: skip

#: the principals that are staff members acting with their roles (the CLI's --as takes these)
STAFF_PRINCIPALS = PRINCIPALS[1:9]

#: username of each principal (the credential ones belong to the manager)
USERNAME = {
    "sales_rep": "rep_a",
    "other_rep": "rep_b",
    "sales_manager": "lead",
    "cost_accounting": "accountant",
    "technical_support": "support",
    "complaint_handler": "handler",
    "manager": "boss",
    "admin": "root",
    "revoked_token": "boss",
    "expired_session": "boss",
    "no_csrf": "boss",
}

#: staff to seed: username, roles, manager
STAFF = (
    ("lead", ["sales_manager"], None),
    ("rep_a", ["sales_rep"], "lead"),
    ("rep_b", ["sales_rep"], "lead"),
    ("accountant", ["cost_accounting"], None),
    ("support", ["technical_support"], None),
    ("handler", ["complaint_handler"], None),
    ("boss", ["manager"], None),
    ("root", ["admin"], None),
)
PASSWORD = "correct horse battery staple 42"

#: the plugins enabled in the matrix's CRM (their rows are at the end of the table)
PLUGINS = ["knowledgebase", "loyalty", "complaints", "segmentation"]

# fmt: off
#: operation -> expected status per principal, in PRINCIPALS order:
#:  anon  rep  other smgr cost tech compl mgr admin revoked expired no_csrf
#: (workflow.move moves a deal out of the sales pipeline's "presentation" stage, whose
#: roles are sales_rep and technical_support: a sales manager, cost accountant, complaint
#: handler or manager holds workflows.move but not the stage's role, so the workflow refuses
#: it: 409. Complaint handlers hold workflows.move because complaints are workflow instances.)
EXPECTED: dict[str, tuple[int, ...]] = {
    "customer.list":    (401, OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  401, 401, OK),
    "customer.get":     (401, OK,  404, OK,  OK,  OK,  OK,  OK,  OK,  401, 401, OK),
    "customer.360":     (401, OK,  404, OK,  OK,  OK,  OK,  OK,  OK,  401, 401, OK),
    "customer.create":  (401, OK,  403, OK,  403, 403, 403, OK,  OK,  401, 401, 403),
    "customer.patch":   (401, OK,  404, OK,  403, 403, 403, OK,  OK,  401, 401, 403),
    "customer.erase":   (401, 403, 403, 403, 403, 403, 403, OK,  OK,  401, 401, 403),
    "customer.export":  (401, 403, 403, 403, 403, 403, 403, OK,  OK,  401, 401, OK),
    "consent.set":      (401, OK,  404, OK,  403, 403, 403, OK,  OK,  401, 401, 403),
    "contact.add":      (401, OK,  404, OK,  403, 403, 403, OK,  OK,  401, 401, 403),
    "interaction.log":  (401, OK,  404, OK,  403, OK,  OK,  OK,  OK,  401, 401, 403),
    "order.add":        (401, OK,  404, OK,  OK,  403, 403, OK,  OK,  401, 401, 403),
    "order.status":     (401, OK,  404, OK,  OK,  403, 403, OK,  OK,  401, 401, 403),
    "staff.list":       (401, OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  401, 401, OK),
    "staff.add":        (401, 403, 403, 403, 403, 403, 403, 403, OK,  401, 401, 403),
    "workflow.start":   (401, OK,  404, OK,  OK,  OK,  OK,  OK,  OK,  401, 401, 403),
    "workflow.move":    (401, OK,  404, 409, 409, OK,  409, 409, OK,  401, 401, 403),
    "audit.list":       (401, 403, 403, 403, 403, 403, 403, OK,  OK,  401, 401, OK),
    "import.customers": (401, 403, 403, 403, 403, 403, 403, OK,  OK,  401, 401, 403),
    # the knowledge base plugin: read by every role, written by service staff and managers
    "kb.search":        (401, OK,  OK,  OK,  OK,  OK,  OK,  OK,  OK,  401, 401, OK),
    "kb.article.add":   (401, 403, 403, 403, 403, OK,  OK,  OK,  OK,  401, 401, 403),
    # loyalty: balances follow the customer's scope; points by hand are the manager's
    "loyalty.balance":  (401, OK,  404, OK,  403, OK,  OK,  OK,  OK,  401, 401, OK),
    "loyalty.adjust":   (401, 403, 403, 403, 403, 403, 403, OK,  OK,  401, 401, 403),
    # complaints: logged by the customer's rep or team and by service staff
    "complaint.log":    (401, OK,  404, OK,  403, OK,  OK,  OK,  OK,  401, 401, 403),
    # segmentation: analyses are run by sales managers (their team) and managers
    "segment.rfm":      (401, 403, 403, OK,  403, 403, 403, OK,  OK,  401, 401, 403),
}
# fmt: on


def expected(operation: str, principal: str) -> int:
    return EXPECTED[operation][PRINCIPALS.index(principal)]


@attrs.define
class Target:
    """What one case acts on: rep_a's organisation customer (fresh when the operation
    changes it for good), an order, a workflow instance, a unique suffix."""

    customer_id: int
    order_id: int | None = None
    instance_id: int | None = None
    unique: str = ""
    folder: Path | None = None


@attrs.define
class World:
    """The seeded database: an operator's CRM on it, rep_a's and rep_b's customers, and
    the credentials the HTTP door uses."""

    url: str
    crm: Any
    customer_a: int
    customer_b: int
    folder: Path
    tokens: dict[str, str] = attrs.field(factory=dict)
    sessions: dict[str, Any] = attrs.field(factory=dict)
    counter: Any = attrs.field(factory=lambda: itertools.count(1))

    def audit_mark(self) -> int:
        """The newest audit entry's id: every write is audited, so a refusal must leave it."""
        with self.crm.engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT max(id) FROM audit_log").scalar() or 0)

    def fresh_customer(self) -> int:
        n = next(self.counter)
        found = self.crm.customers.add(
            name=f"Fresh Org {n}", type="organisation", owner="rep_a", region="east"
        )
        return found.id

    def target(self, op: Operation) -> Target:
        unique = f"{next(self.counter)}"
        customer = self.fresh_customer() if op.fresh else self.customer_a
        target = Target(customer, unique=unique, folder=self.folder)
        if op.needs == "order":
            target.order_id = self.crm.orders.add(
                customer_id=customer, amount=Decimal("120.00"), status="paid",
                occurred_at=dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC),
            ).id  # fmt: skip
        elif op.needs == "instance":
            # at the sales pipeline's "presentation" stage, whose roles include sales reps,
            # technical support (and, through admin, everyone with it)
            instance = self.crm.workflows.start("sales", customer, title=f"Deal {unique}")
            self.crm.workflows.move(instance.id, "presentation")
            target.instance_id = instance.id
        return target


def seed(crm: Any, folder: Path) -> World:
    """Staff (the manager with a password), rep_a's organisation customer (with an order,
    an interaction and a loyalty membership), rep_b's customer."""
    from crmkit.core import identity

    for username, roles, manager in STAFF:
        crm.staff.add(username, username.title(), roles=roles, manager=manager)
    identity.set_password(crm, "boss", PASSWORD)  # the sessions' member (argon2id is slow)
    a = crm.customers.add(name="Acme Ltd", type="organisation", owner="rep_a", region="east")
    b = crm.customers.add(name="Bolt Ltd", type="organisation", owner="rep_b", region="west")
    crm.orders.add(customer_id=a.id, amount=Decimal("99.00"), status="paid",
                   occurred_at=dt.datetime(2026, 1, 2, 9, tzinfo=dt.UTC))  # fmt: skip
    crm.interactions.log(a.id, "phone", subject="first call")
    from crmkit_loyalty import loyalty
    from crmkit_loyalty.testing import program

    loyalty(crm).load_program(program())
    loyalty(crm).enrol(a.id)
    return World(crm.config.database, crm, a.id, b.id, folder)


def import_file(folder: Path, unique: str) -> Path:
    path = folder / f"import-{unique}.csv"
    path.write_text(f"external_id,name\nIMP-{unique},Imported {unique}\n", encoding="utf-8")
    return path


# -- the operations ---------------------------------------------------------------------


@attrs.frozen
class Operation:
    """One operation in its three forms. ``python(crm, target)`` calls the service;
    ``cli(target)`` the ``crmkit`` arguments; ``http(target)`` (method, path, json body or
    None, extra headers; ``content`` for a raw body) relative to /api/v1."""

    name: str
    python: Callable[[Any, Target], Any]
    cli: Callable[[Target], list[str]] | None
    http: Callable[[Target], dict[str, Any]]
    fresh: bool = False
    needs: str | None = None  # "order" | "instance"


def _audit_list(crm: Any, target: Target) -> Any:
    service = getattr(crm, "audit_log", None)  # the audit service (checks audit.read)
    if service is not None:
        return service.list(customer_id=target.customer_id)
    from crmkit.core import audit

    crm.authorise("audit.read")  # what the audit service does, until it exists
    with crm.reading() as connection:
        return audit.entries(connection, customer_id=target.customer_id)


def _import(crm: Any, target: Target) -> Any:
    from crmkit.transfer.importer import import_file as run_import

    assert target.folder is not None
    return run_import(crm, "customers", import_file(target.folder, target.unique))


def _import_http(target: Target) -> dict[str, Any]:
    content = f"external_id,name\nIMP-H{target.unique},Imported {target.unique}\n"
    return {"method": "POST", "path": "/import/customers", "content": content.encode(),
            "headers": {"Content-Type": "text/csv"}}  # fmt: skip


def _order_json(target: Target) -> dict[str, Any]:
    return {"customer_id": target.customer_id, "amount": "25.50", "status": "paid",
            "occurred_at": "2026-02-01T10:00:00+00:00"}  # fmt: skip


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "customer.list",
        lambda crm, t: crm.customers.list(limit=10),
        lambda t: ["customer", "list", "--limit", "10"],
        lambda t: {"method": "GET", "path": "/customers?limit=10"},
    ),
    Operation(
        "customer.get",
        lambda crm, t: crm.customers.get(t.customer_id),
        lambda t: ["customer", "show", str(t.customer_id), "--format", "json"],
        lambda t: {"method": "GET", "path": f"/customers/{t.customer_id}"},
    ),
    Operation(
        "customer.360",  # parts the reader may not see are left out, never a refusal
        lambda crm, t: crm.customers.view(t.customer_id),
        lambda t: ["customer", "show", str(t.customer_id)],
        lambda t: {"method": "GET", "path": f"/customers/{t.customer_id}/360"},
    ),
    Operation(
        "customer.create",
        lambda crm, t: crm.customers.add(name=f"New {t.unique}", owner="rep_a"),
        lambda t: ["customer", "add", "--name", f"New {t.unique}", "--owner", "rep_a"],
        lambda t: {
            "method": "POST",
            "path": "/customers",
            "json": {"name": f"New {t.unique}", "owner": "rep_a"},
        },  # fmt: skip
    ),
    Operation(
        "customer.patch",
        lambda crm, t: crm.customers.update(t.customer_id, city=f"City {t.unique}"),
        lambda t: ["customer", "edit", str(t.customer_id), "--city", f"City {t.unique}"],
        lambda t: {
            "method": "PATCH",
            "path": f"/customers/{t.customer_id}",
            "json": {"city": f"City {t.unique}"},
            "if_match": True,
        },  # fmt: skip
    ),
    Operation(
        "customer.erase",
        lambda crm, t: crm.customers.erase(t.customer_id),
        lambda t: ["customer", "erase", str(t.customer_id), "--yes"],
        lambda t: {
            "method": "POST",
            "path": f"/customers/{t.customer_id}/erase",
            "json": {"confirm": True},
        },
        fresh=True,
    ),
    Operation(
        "customer.export",
        lambda crm, t: crm.customers.export(t.customer_id),
        lambda t: ["customer", "export", str(t.customer_id)],
        lambda t: {"method": "GET", "path": f"/customers/{t.customer_id}/export"},
    ),
    Operation(
        "consent.set",
        lambda crm, t: crm.customers.set_consent(t.customer_id, "marketing", True),
        lambda t: ["customer", "consent", str(t.customer_id), "marketing", "--grant"],
        lambda t: {
            "method": "POST",
            "path": f"/customers/{t.customer_id}/consent",
            "json": {"purpose": "marketing", "granted": True},
        },  # fmt: skip
    ),
    Operation(
        "contact.add",
        lambda crm, t: crm.customers.add_contact(t.customer_id, f"Contact {t.unique}"),
        lambda t: ["contact", "add", str(t.customer_id), "--name", f"Contact {t.unique}"],
        lambda t: {
            "method": "POST",
            "path": f"/customers/{t.customer_id}/contacts",
            "json": {"name": f"Contact {t.unique}"},
        },  # fmt: skip
    ),
    Operation(
        "interaction.log",
        lambda crm, t: crm.interactions.log(t.customer_id, "phone", subject="matrix"),
        lambda t: ["interaction", "log", str(t.customer_id), "--channel", "phone"],
        lambda t: {
            "method": "POST",
            "path": "/interactions",
            "json": {"customer_id": t.customer_id, "channel": "phone"},
        },  # fmt: skip
    ),
    Operation(
        "order.add",
        lambda crm, t: crm.orders.add(
            customer_id=t.customer_id,
            amount=Decimal("25.50"),
            status="paid",
            occurred_at=dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC),
        ),  # fmt: skip
        lambda t: ["order", "add", str(t.customer_id), "--amount", "25.50"],
        lambda t: {"method": "POST", "path": "/orders", "json": _order_json(t)},
    ),
    Operation(
        "order.status",
        lambda crm, t: crm.orders.set_status(t.order_id, "refunded"),
        lambda t: ["order", "status", str(t.order_id), "refunded"],
        lambda t: {
            "method": "POST",
            "path": f"/orders/{t.order_id}/status",
            "json": {"status": "refunded"},
        },  # fmt: skip
        needs="order",
    ),
    Operation(
        "staff.list",
        lambda crm, t: crm.staff.list(),
        lambda t: ["staff", "list"],
        lambda t: {"method": "GET", "path": "/staff"},
    ),
    Operation(
        "staff.add",
        lambda crm, t: crm.staff.add(f"new{t.unique}", f"New {t.unique}", roles=["sales_rep"]),
        lambda t: ["staff", "add", f"new{t.unique}", "--role", "sales_rep"],
        lambda t: {
            "method": "POST",
            "path": "/staff",
            "json": {"username": f"new{t.unique}", "roles": ["sales_rep"]},
        },  # fmt: skip
    ),
    Operation(
        "workflow.start",
        lambda crm, t: crm.workflows.start("sales", t.customer_id, title=f"Deal {t.unique}"),
        lambda t: ["workflow", "start", "sales", str(t.customer_id), "--title", f"D{t.unique}"],
        lambda t: {
            "method": "POST",
            "path": "/workflow-instances",
            "json": {"workflow": "sales", "customer_id": t.customer_id, "title": f"D{t.unique}"},
        },  # fmt: skip
    ),
    Operation(
        "workflow.move",
        lambda crm, t: crm.workflows.move(t.instance_id, "lost", reason="matrix"),
        lambda t: ["workflow", "move", str(t.instance_id), "lost", "--reason", "matrix"],
        lambda t: {
            "method": "POST",
            "path": f"/workflow-instances/{t.instance_id}/transitions",
            "json": {"to_stage": "lost", "reason": "matrix"},
        },  # fmt: skip
        needs="instance",
    ),
    Operation(
        "audit.list",
        _audit_list,
        lambda t: ["audit", "list", "--customer", str(t.customer_id)],
        lambda t: {"method": "GET", "path": f"/audit?customer={t.customer_id}"},
    ),
    Operation(
        "import.customers",
        _import,
        lambda t: ["import", "customers", str(import_file(t.folder, "c" + t.unique))],
        _import_http,
    ),
)


def _kb(crm: Any) -> Any:
    from crmkit_knowledgebase.service import service

    return service(crm)


OPERATIONS += (
    Operation(
        "kb.search",
        lambda crm, t: _kb(crm).search("refund"),
        lambda t: ["kb", "search", "refund"],
        lambda t: {"method": "GET", "path": "/knowledgebase/search?q=refund"},
    ),
    Operation(
        "kb.article.add",
        lambda crm, t: _kb(crm).add(f"Refunds {t.unique}", "How refunds work."),
        lambda t: ["kb", "add", "--title", f"Refunds {t.unique}", "--body", "How."],
        lambda t: {
            "method": "POST",
            "path": "/knowledgebase/articles",
            "json": {"title": f"Refunds {t.unique}", "body": "How refunds work."},
        },  # fmt: skip
    ),
)


def _loyalty(crm: Any) -> Any:
    from crmkit_loyalty import loyalty

    return loyalty(crm)


OPERATIONS += (
    Operation(
        "loyalty.balance",
        lambda crm, t: _loyalty(crm).balance(t.customer_id),
        lambda t: ["loyalty", "balance", str(t.customer_id)],
        lambda t: {"method": "GET", "path": f"/loyalty/members/{t.customer_id}/balance"},
    ),
    Operation(
        "loyalty.adjust",  # the opening example: 100,000 points by anyone
        lambda crm, t: _loyalty(crm).adjust(t.customer_id, 100_000, reason="matrix"),
        lambda t: ["loyalty", "adjust", str(t.customer_id), "100000", "--reason", "matrix"],
        lambda t: {
            "method": "POST",
            "path": f"/loyalty/members/{t.customer_id}/adjust",
            "json": {"points": 100_000, "reason": "matrix"},
        },  # fmt: skip
    ),
)


def _complaints(crm: Any) -> Any:
    from crmkit_complaints.service import service

    return service(crm)


def _rfm(crm: Any) -> Any:
    from crmkit_segmentation.analyses_cli import rfm_report

    return rfm_report(crm, dt.date(2026, 12, 1))


COMPLAINT = {"channel": "phone", "category": "delivery", "description": "late parcel"}

OPERATIONS += (
    Operation(
        "complaint.log",
        lambda crm, t: _complaints(crm).log(t.customer_id, **COMPLAINT),
        lambda t: [
            "complaints",
            "log",
            "--customer",
            str(t.customer_id),
            "--channel",
            "phone",
            "--category",
            "delivery",
            "--description",
            "late parcel",
        ],  # fmt: skip
        lambda t: {
            "method": "POST",
            "path": "/complaints/complaints",
            "json": {"customer_id": t.customer_id, **COMPLAINT},
        },  # fmt: skip
    ),
    Operation(
        "segment.rfm",
        lambda crm, t: _rfm(crm),
        lambda t: ["segment", "rfm", "--as-of", "2026-12-01"],
        lambda t: {
            "method": "POST",
            "path": "/segmentation/analyses/rfm",
            "json": {"as_of": "2026-12-01"},
        },
    ),
)

assert {op.name for op in OPERATIONS} == set(EXPECTED), "every operation has one row"
