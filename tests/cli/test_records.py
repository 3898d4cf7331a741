"""The record commands (customer, contact, staff, interaction, order, workflow) on both backends."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli


class Attributes:
    """A test plugin declaring typed custom attributes (what list --attr filters on)."""

    @staticmethod
    @crmkit.hookimpl
    def crmkit_register_attributes() -> list[crmkit.AttributeDefinition]:
        return [
            crmkit.AttributeDefinition("vip", "boolean", declared_by="attrs"),
            crmkit.AttributeDefinition("visits", "integer", declared_by="attrs"),
            crmkit.AttributeDefinition("credit", "decimal", declared_by="attrs"),
            crmkit.AttributeDefinition("tier", "choice", choices=("gold", "silver"), declared_by="attrs"),
        ]  # fmt: skip


PLUGINS = [Attributes]


def run(url: str, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["--database", url, *args], obj=CliState(plugins=list(PLUGINS)),
        env={"CRMKIT_PLUGINS": ""},
    )  # fmt: skip


def ok(url: str, *args: str) -> Any:
    result = run(url, *args)
    assert result.exit_code == 0, (args, result.output, result.stderr)
    return result


def as_json(url: str, *args: str) -> Any:
    return json.loads(ok(url, *args, "--format", "json").stdout)


def as_csv(url: str, *args: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(ok(url, *args, "--format", "csv").stdout)))


@pytest.fixture
def db(make_crm: Any, database_url: str) -> tuple[crmkit.CRM, str]:
    return make_crm(plugins=PLUGINS), database_url


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def snapshot(crm: crmkit.CRM) -> dict[str, Any]:
    """Everything the commands could change, to check a refused command changed nothing."""
    customers = crm.customers.list(limit=None)
    return {
        "customers": [crm.customers.export(c.id) for c in customers],
        "orders": len(crm.orders.list(limit=None)),
        "interactions": len(crm.interactions.list(limit=None)),
        "workflows": [(w.id, w.stage) for w in crm.workflows.list()],
        "staff": [s.username for s in crm.staff.list()],
    }


def test_customer_add_show_edit(db: Any) -> None:
    crm, url = db
    ok(url, "staff", "add", "ann", "--name", "Ann Lee", "--role", "sales_rep,sales_manager")
    result = ok(
        url, "customer", "add", "--name", "李娜", "--external-id", "C-0001", "--email",
        "li.na@example.cn", "--region", "华东", "--kind", "enterprise", "--status", "lead",
        "--birth-date", "1980-04-30", "--owner", "ann", "--attr", "vip=yes", "--attr",
        "credit=12.50", "--attr", "hobby=go", "--consent", "marketing",
    )  # fmt: skip
    assert result.stdout.strip() == "added customer 1 (external id C-0001): 李娜"
    stored = crm.customers.get_by_external_id("C-0001")
    assert (stored.region, stored.kind, stored.status, stored.owner) == (
        "华东",
        "enterprise",
        "lead",
        "ann",
    )
    assert stored.birth_date == dt.date(1980, 4, 30)
    assert stored.attributes == {"vip": True, "credit": Decimal("12.50"), "hobby": "go"}
    assert stored.consents == {"marketing": True}
    # show by external id and by numeric id give the same customer
    shown = json.loads(ok(url, "customer", "show", "C-0001", "--format", "json").stdout)
    assert shown == json.loads(ok(url, "customer", "show", "1", "--format", "json").stdout)
    assert shown["customer"]["attributes"] == {"vip": True, "credit": "12.50", "hobby": "go"}
    assert shown["totals"] == {"paid_orders": 0, "revenue": "0", "last_order": None}
    text = ok(url, "customer", "show", "C-0001").stdout
    assert "customer 1: 李娜 (C-0001)" in text and "consent: marketing yes" in text
    ok(url, "customer", "edit", "C-0001", "--email", "", "--city", "上海", "--attr", "visits=3",
       "--unset-attr", "hobby")  # fmt: skip
    after = crm.customers.get(1)
    assert after.email is None and after.city == "上海"
    assert after.attributes == {"vip": True, "credit": Decimal("12.50"), "visits": 3}
    ok(url, "customer", "consent", "1", "marketing", "--withdraw", "--source", "phone call")
    ok(url, "customer", "consent", "1", "profiling")
    assert crm.customers.get(1).consents == {"marketing": False, "profiling": True}


def test_contacts_and_staff(db: Any) -> None:
    crm, url = db
    ok(url, "customer", "add", "--name", "Acme", "--type", "organisation")
    ok(url, "contact", "add", "1", "--name", "Bo", "--role", "buyer", "--email", "bo@acme.example")
    rows = as_json(url, "contact", "list", "1")
    assert [(r["name"], r["role"], r["email"]) for r in rows] == [
        ("Bo", "buyer", "bo@acme.example")
    ]
    ok(url, "staff", "add", "zoe", "--role", "admin", "--department", "sales")
    ok(url, "staff", "add", "yan", "--role", "sales_rep", "--role", "support", "--manager", "zoe")
    staff = as_json(url, "staff", "list")
    assert [(s["username"], s["roles"]) for s in staff] == [
        ("yan", ["sales_rep", "support"]), ("zoe", ["admin"])
    ]  # fmt: skip
    assert [s["username"] for s in as_csv(url, "staff", "list", "--role", "admin")] == ["zoe"]


def _population(crm: crmkit.CRM) -> None:
    crm.staff.add("ann")
    crm.staff.add("bob")
    for i in range(1, 13):
        crm.customers.add(
            name=f"Customer {i:02d}" if i != 7 else "Zhang Wei",
            external_id=f"C{i:02d}",
            email=f"c{i}@example.com",
            region="East" if i % 2 else "West",
            status="active" if i % 3 else "lead",
            owner="ann" if i <= 6 else "bob",
            kind="enterprise" if i in (2, 3) else "end",
            industry="retail" if i > 10 else None,
            consents={"marketing": i % 5 == 1},
            attributes={
                "vip": i % 4 == 0,
                "visits": i,
                "credit": "12.50" if i in (5, 6) else "3",
                **({"tier": "gold"} if i % 5 == 0 else {}),
                "note": "x" if i == 1 else "y",
            },
        )


def test_customer_list_filters(db: Any) -> None:
    crm, url = db
    _population(crm)

    def ids(*args: str) -> list[str]:
        return [r["external_id"] for r in as_json(url, "customer", "list", "--limit", "0", *args)]

    assert ids() == [f"C{i:02d}" for i in range(1, 13)]
    assert ids("--text", "zhang") == ["C07"]
    assert ids("--text", "c11@") == ["C11"]
    assert ids("--status", "lead") == ["C03", "C06", "C09", "C12"]
    assert ids("--owner", "bob", "--region", "West") == ["C08", "C10", "C12"]
    assert ids("--kind", "enterprise") == ["C02", "C03"]
    assert ids("--industry", "retail") == ["C11", "C12"]
    assert ids("--consent", "marketing") == ["C01", "C06", "C11"]  # granted only
    assert ids("--attr", "vip=true") == ["C04", "C08", "C12"]
    assert ids("--attr", "vip=no", "--owner", "ann") == ["C01", "C02", "C03", "C05", "C06"]
    assert ids("--attr", "visits=11") == ["C11"]
    assert ids("--attr", "credit=12.5") == ["C05", "C06"]  # numeric: 12.5 matches 12.50
    assert ids("--attr", "tier=gold") == ["C05", "C10"]
    assert ids("--attr", "note=x") == ["C01"]  # undeclared: compared as text
    assert ids("--attr", "tier=gold", "--attr", "visits=10") == ["C10"]
    rows = as_csv(url, "customer", "list", "--region", "East", "--limit", "2")
    assert [r["external_id"] for r in rows] == ["C01", "C03"]
    assert {"id", "name", "region", "vip", "visits", "credit", "consents"} <= set(rows[0])
    assert (rows[0]["vip"], rows[0]["visits"], rows[1]["region"]) == ("False", "1", "East")
    table = ok(url, "customer", "list", "--owner", "bob")
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "external_id",
        "name",
        "type",
        "status",
        "region",
        "owner",
        "email",
    ]
    assert len(lines) == 2 + 6 and "Zhang Wei" in lines[2]
    assert table.stderr == ""  # fewer rows than the limit: no "more" note


def test_customer_paging(db: Any) -> None:
    crm, url = db
    _population(crm)

    def ids(*args: str) -> list[str]:
        return [r["external_id"] for r in as_json(url, "customer", "list", *args)]

    assert ids("--limit", "5") == ["C01", "C02", "C03", "C04", "C05"]
    assert ids("--limit", "5", "--page", "2") == ["C06", "C07", "C08", "C09", "C10"]
    assert ids("--limit", "5", "--offset", "5") == ids("--limit", "5", "--page", "2")
    assert ids("--limit", "5", "--page", "3") == ["C11", "C12"]
    assert ids("--limit", "5", "--page", "4") == []
    assert ids("--offset", "10") == ["C11", "C12"]  # default limit 50
    pages = [ids("--limit", "4", "--page", str(n), "--status", "active") for n in (1, 2, 3)]
    assert sum(pages, []) == ids("--status", "active", "--limit", "0")
    table = ok(url, "customer", "list", "--limit", "3", "--page", "2")
    assert table.stderr.strip() == "(rows 4-6; more may follow: --page 3)"
    assert as_csv(url, "customer", "list", "--limit", "5", "--page", "4") == []
    assert ok(url, "customer", "list", "--format", "csv", "--page", "9").stdout.startswith("id,")


def test_interactions(db: Any) -> None:
    crm, url = db
    _population(crm)
    ok(url, "interaction", "log", "C01", "--channel", "phone", "--subject", "Delivery date?",
       "--at", "2026-03-01T09:30", "--staff", "ann")  # fmt: skip
    ok(url, "interaction", "log", "2", "--channel", "email", "--direction", "outbound",
       "--subject", "Offer", "--body", "See the attached offer", "--at", "2026-03-02")  # fmt: skip
    ok(url, "interaction", "log", "C01", "--channel", "visit", "--subject", "Showroom visit",
       "--at", "2026-03-03T10:00+08:00")  # fmt: skip
    rows = as_json(url, "interaction", "list")
    assert [r["subject"] for r in rows] == ["Showroom visit", "Offer", "Delivery date?"]
    assert rows[0]["occurred_at"] == "2026-03-03T02:00:00+00:00"
    assert rows[2]["occurred_at"] == "2026-03-01T09:30:00+00:00" and rows[2]["staff"] == "ann"
    assert [r["subject"] for r in as_json(url, "interaction", "list", "--customer", "C01")] == [
        "Showroom visit", "Delivery date?"
    ]  # fmt: skip
    assert [r["channel"] for r in as_json(url, "interaction", "list", "--channel", "email")] == [
        "email"
    ]
    assert [r["subject"] for r in as_json(url, "interaction", "list", "--text", "attached")] == [
        "Offer"
    ]
    assert [r["subject"] for r in as_json(url, "interaction", "list", "--limit", "1", "--page", "2")] == [
        "Offer"
    ]  # fmt: skip
    rows = as_csv(url, "interaction", "list", "--staff", "ann")
    assert [(r["customer_id"], r["channel"], r["direction"]) for r in rows] == [
        ("1", "phone", "inbound")
    ]


def test_orders(db: Any) -> None:
    crm, url = db
    _population(crm)
    result = ok(url, "order", "add", "C01", "--amount", "199.00", "--occurred-at", "2026-03-01",
                "--external-id", "O-1", "--cost", "120.5", "--line", "Tea set;1;199.00;kitchen")  # fmt: skip
    assert "added order O-1" in result.stdout and "199.00 EUR paid" in result.stdout
    ok(url, "order", "add", "C01", "--amount", "0.0001", "--occurred-at", "2026-04-01T12:00",
       "--status", "placed", "--currency", "cny", "--channel", "web")  # fmt: skip
    ok(
        url,
        "order",
        "add",
        "2",
        "--amount",
        "1000",
        "--occurred-at",
        "2026-05-01",
        "--external-id",
        "O-3",
    )
    first = crm.orders.get_by_external_id("O-1")
    assert (first.amount, first.cost, first.occurred_at) == (
        Decimal("199.00"), Decimal("120.50"), at(2026, 3, 1)
    )  # fmt: skip
    assert [(x.product, x.quantity, x.price, x.category) for x in first.lines] == [
        ("Tea set", Decimal("1.00"), Decimal("199.00"), "kitchen")
    ]
    rows = as_json(url, "order", "list")
    assert [(r["external_id"], r["amount"], r["currency"]) for r in rows] == [
        ("O-3", "1000.00", "EUR"), (None, "0.0001", "CNY"), ("O-1", "199.00", "EUR")
    ]  # fmt: skip
    assert rows[2]["lines"][0]["product"] == "Tea set"
    assert [r["external_id"] for r in as_json(url, "order", "list", "--customer", "C02")] == ["O-3"]
    assert len(as_json(url, "order", "list", "--status", "placed")) == 1
    since = as_json(url, "order", "list", "--since", "2026-03-02", "--until", "2026-05-01")
    assert [r["amount"] for r in since] == ["0.0001"]  # until excludes 2026-05-01 00:00
    assert [r["external_id"] for r in as_json(url, "order", "list", "--since", "2026-03-01")][
        -1
    ] == "O-1"  # since includes midnight (bulk-inserted times compare like bound ones)
    csv_rows = as_csv(url, "order", "list", "--limit", "1", "--offset", "2")
    assert [(r["external_id"], r["cost"]) for r in csv_rows] == [("O-1", "120.50")]
    ok(url, "order", "status", "O-1", "refunded")
    ok(url, "order", "status", "2", "paid")
    assert crm.orders.get_by_external_id("O-1").status == "refunded"
    assert crm.orders.get(2).status == "paid"
    view = json.loads(ok(url, "customer", "show", "C01", "--format", "json").stdout)
    assert view["totals"]["paid_orders"] == 1 and view["totals"]["revenue"] == "0.0001"


def test_workflows(db: Any) -> None:
    crm, url = db
    _population(crm)
    crm.staff.update("ann", roles=["sales_rep"])
    crm.staff.update("bob", roles=["sales_manager"])
    result = ok(url, "workflow", "start", "sales", "C01", "--title", "Fleet renewal", "--value",
                "50000", "--owner", "ann", "--due-on", "2026-06-30", "--actor", "ann")  # fmt: skip
    assert "started sales #1 for customer 1 at 'need_discovery'" in result.stdout
    assert "next steps: Find the decision maker" in result.stdout
    ok(url, "workflow", "start", "sales", "C02", "--title", "Gifts")
    ok(url, "workflow", "move", "1", "presentation", "--actor", "ann", "--reason", "need confirmed")
    refused = run(url, "workflow", "move", "1", "tender", "--actor", "bob")
    assert refused.exit_code == 1 and "may not move" in refused.stderr
    missing = run(url, "workflow", "move", "1", "tender", "--actor", "ann")
    assert missing.exit_code == 1 and "needs tender_reference" in missing.stderr
    ok(url, "workflow", "move", "1", "tender", "--actor", "ann", "--field", "tender_reference=T-9")
    shown = json.loads(ok(url, "workflow", "show", "1", "--format", "json").stdout)
    assert shown["stage"] == "tender" and shown["fields"] == {"tender_reference": "T-9"}
    assert shown["value"] == "50000.00" and shown["due_on"] == "2026-06-30"
    assert shown["allowed_moves"] == ["negotiation", "lost"]
    assert [(h["from_stage"], h["to_stage"], h["actor"]) for h in shown["history"]] == [
        (None, "need_discovery", "ann"), ("need_discovery", "presentation", "ann"),
        ("presentation", "tender", "ann"),
    ]  # fmt: skip
    text = ok(url, "workflow", "show", "1").stdout
    assert "need_discovery -> presentation by ann: need confirmed" in text
    assert "may move to: negotiation, lost" in text
    ok(url, "workflow", "move", "2", "lost", "--reason", "no budget")
    assert [r["id"] for r in as_json(url, "workflow", "list", "--open")] == [1]
    assert [r["id"] for r in as_json(url, "workflow", "list", "--customer", "C02")] == [2]
    assert [r["id"] for r in as_json(url, "workflow", "list", "--owner", "ann")] == [1]
    assert [
        r["id"] for r in as_json(url, "workflow", "list", "--workflow", "sales", "--stage", "lost")
    ] == [2]
    assert [r["id"] for r in as_json(url, "workflow", "list", "--limit", "1", "--page", "2")] == [2]
    rows = as_csv(url, "workflow", "list")
    assert [(r["id"], r["stage"], r["closed_at"] != "") for r in rows] == [
        ("1", "tender", False), ("2", "lost", True)
    ]  # fmt: skip
    figures = {f["stage"]: f for f in as_json(url, "workflow", "figures", "sales")}
    assert (figures["need_discovery"]["entered"], figures["need_discovery"]["left"]) == (2, 2)
    assert (figures["tender"]["current"], figures["lost"]["entered"]) == (1, 1)
    names = [d["name"] for d in as_json(url, "workflow", "definitions")]
    assert "sales" in names


def test_export_and_erase(db: Any, tmp_path: Path) -> None:
    crm, url = db
    _population(crm)
    crm.orders.add(customer_id=1, amount="10.00", occurred_at=at(2026, 1, 1))
    crm.interactions.log(1, "chat", subject="hi")
    out = tmp_path / "c01.json"
    assert (
        ok(url, "customer", "export", "C01", "--output", str(out)).stdout.strip() == f"wrote {out}"
    )
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["customer"]["email"] == "c1@example.com"
    assert data["orders"][0]["amount"] == "10.00" and data["interactions"][0]["subject"] == "hi"
    assert json.loads(ok(url, "customer", "export", "1").stdout) == data
    before = snapshot(crm)
    refused = run(url, "customer", "erase", "C01")
    assert refused.exit_code == 1 and "add --yes" in refused.stderr
    assert snapshot(crm) == before
    assert ok(url, "customer", "erase", "C01", "--yes").stdout.strip() == "erased customer 1"
    erased = crm.customers.get(1)
    assert erased.email is None and erased.erased_at is not None and erased.external_id is None
    assert len(crm.orders.list(customer_id=1)) == 1 and crm.interactions.list(customer_id=1) == []
    # erasing again completes a partial erasure (every erase hook runs again), and says so
    again = run(url, "customer", "erase", "1", "--yes")
    assert again.exit_code == 0 and "already erased" in again.stdout and "again" in again.stdout


MISTAKES = [
    (["customer", "show", "C99"], "customer 'C99' not found"),
    (["customer", "edit", "99", "--city", "x"], "customer '99' not found"),
    (["customer", "edit", "C01"], "nothing to change"),
    (["customer", "edit", "C01", "--unset-attr", "colour"], "has no attribute 'colour'"),
    (["customer", "edit", "C01", "--status", "sleeping"], "status 'sleeping' is not valid"),
    (["customer", "edit", "C01", "--name", ""], "name must not be empty"),
    (["customer", "add", "--email", "x@y.z"], "--name is required"),
    (["customer", "add", "--name", "A", "--type", "robot"], "type 'robot' is not valid"),
    (["customer", "add", "--name", "A", "--email", "nope"], "is not an e-mail address"),
    (["customer", "add", "--name", "A", "--birth-date", "30/04/1980"], "birth_date"),
    (["customer", "add", "--name", "A", "--owner", "nobody"], "staff member 'nobody' not found"),
    (["customer", "add", "--name", "A", "--external-id", "C01"], "already exists"),
    (["customer", "add", "--name", "A", "--attr", "vip"], "--attr 'vip' is not key=value"),
    (["customer", "add", "--name", "A", "--attr", "vip=maybe"], "attribute 'vip' expects boolean"),
    (["customer", "add", "--name", "A", "--attr", "tier=bronze"], "use one of: gold, silver"),
    (["customer", "list", "--attr", "=x"], "is not key=value"),
    (["customer", "list", "--attr", "visits=many"], "attribute 'visits' expects integer"),
    (["customer", "list", "--status", "sleeping"], "--status 'sleeping' is not valid"),
    (["customer", "list", "--limit", "x"], "Invalid value for '--limit'"),
    (["customer", "list", "--page", "2", "--offset", "1"], "--offset or --page, not both"),
    (["customer", "list", "--page", "2", "--limit", "0"], "--page needs a --limit"),
    (["customer", "list", "--colour", "red"], "No such option"),
    (["customer", "consent", "C99", "marketing"], "not found"),
    (["customer", "show", "C01", "--output", "/nonexistent/dir/x.html"], "cannot write"),
    (["customer", "frobnicate"], "No such command 'frobnicate'"),
    (["contact", "add", "C01", "--name", "Bo"], "contacts belong to organisations"),
    (["interaction", "log", "C99", "--channel", "phone"], "customer 'C99' not found"),
    (["interaction", "log", "C01", "--channel", "fax"], "channel 'fax' is not valid"),
    (["interaction", "log", "C01", "--channel", "phone", "--at", "yesterday"], "--at 'yesterday'"),
    (["interaction", "list", "--channel", "fax"], "--channel 'fax' is not valid"),
    (["order", "add", "C01", "--amount", "abc"], "--amount 'abc' is not a decimal number"),
    (["order", "add", "C01", "--amount", "1.23456"], "more than 4 decimal places"),
    (["order", "add", "C01", "--amount", "1", "--status", "lost"], "status 'lost' is not valid"),
    (["order", "add", "C01", "--amount", "1", "--currency", "EURO"], "3-letter ISO code"),
    (["order", "add", "C01", "--amount", "1", "--line", "Tea;x;1"], "quantity"),
    (["order", "add", "C01", "--amount", "1", "--line", "Tea"], "PRODUCT;QUANTITY;PRICE"),
    (["order", "add", "C01", "--amount", "1", "--external-id", "O-1"], "already exists"),
    (["order", "status", "O-9", "paid"], "no order has external_id 'O-9'"),
    (["order", "status", "O-1", "lost"], "STATUS 'lost' is not valid"),
    (["order", "list", "--since", "March"], "--since 'March'"),
    (["workflow", "start", "sale", "C01", "--title", "x"], "workflow 'sale' is not defined"),
    (["workflow", "start", "sales", "C01", "--title", "x", "--value", "1e400000"], "--value"),
    (["workflow", "start", "sales", "C01", "--title", "x", "--owner", "zed"], "'zed' not found"),
    (["workflow", "move", "1", "won"], "allowed next stages: presentation, lost"),
    (["workflow", "move", "1", "winning"], "has no stage 'winning'"),
    (["workflow", "move", "9", "lost"], "workflow instance 9 not found"),
    (["workflow", "show", "x"], "'x' is not a valid integer"),
    (["workflow", "list", "--workflow", "sales", "--stage", "nope"], "--stage 'nope'"),
    (["staff", "add", "ann"], "staff member 'ann' already exists"),
    (["staff", "add", "new", "--manager", "ghost"], "'ghost' not found"),
]


def test_user_mistakes_are_one_line_and_change_nothing(db: Any) -> None:
    crm, url = db
    crm.staff.add("ann", roles=["sales_rep"])
    crm.customers.add(name="First", external_id="C01", attributes={"vip": True})
    crm.orders.add(customer_id=1, external_id="O-1", amount="5", occurred_at=at(2026, 1, 1))
    crm.workflows.start("sales", 1, "Deal")
    before = snapshot(crm)
    for args, message in MISTAKES:  # one database for all cases: fast on PostgreSQL too
        result = run(url, *args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
        assert message in lines[0], (args, lines)
        assert "Traceback" not in result.output and result.stdout == "", args
    assert snapshot(crm) == before  # checked once: a change by any case would still show


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("crmkit")
    if script.exists():
        return [str(script)]
    found = shutil.which("crmkit")
    assert found, "the crmkit console script is not installed"
    return [found]


def test_console_script_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crmkit.open(url, plugins=[], upgrade=True).close()
    env = {**os.environ, "CRMKIT_PLUGINS": ""}

    def crmkit_(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_console_script(), "--database", url, *args], env=env,
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip

    done = crmkit_(
        "customer", "add", "--name", "Li Na", "--external-id", "C-0001", "--region", "East"
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout == "added customer 1 (external id C-0001): Li Na\n"
    with crmkit.open(url, plugins=[]) as crm:
        crm.customers.add(name="Bo", region="West")
        crm.orders.add(customer_id=1, amount="199.00", occurred_at=at(2026, 3, 1))
        crm.workflows.start("sales", 1, "Fleet renewal", value="50000")
    listed = json.loads(crmkit_("customer", "list", "--region", "East", "--format", "json").stdout)
    assert [(c["id"], c["name"]) for c in listed] == [(1, "Li Na")]
    done = crmkit_("customer", "show", "C-0001", "--format", "html", "--output", "li-na.html")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    page = (tmp_path / "li-na.html").read_text(encoding="utf-8")
    assert 'id="section-orders"' in page and "Fleet renewal" in page and "199.00" in page
    bad = crmkit_("order", "add", "C-0404", "--amount", "1")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: customer 'C-0404' not found (looked up as external id and as id)"
    ]
