"""Issue 15, point 4: every core write leaves its audit entry, in its own transaction.

Each write through the Python API leaves exactly the expected entry (action, entity, id,
customer, the changed fields before and after, who: the operator ``python:<user>``, a staff
member, or the operator on behalf of one); a failing write leaves none; an import leaves
one; an erasure scrubs the values and keeps the skeleton; a raw write gets the safety-net
entry; optimistic concurrency on customers; the export and the 360 carry the activity;
``crmkit audit list``. Both backends.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

import crmkit
from crmkit.core import tables as t
from crmkit.core.actors import os_user
from crmkit.core.audit import ERASED, AuditEntry
from crmkit.core.auditlog import AuditService
from crmkit.errors import PreconditionFailed, ValidationError
from crmkit.transfer import import_file

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OPERATOR = f"python:{os_user()}"


class Log:
    """The entries written since the last call."""

    def __init__(self, crm: crmkit.CRM) -> None:
        self.service = AuditService(crm)
        self.last = 0
        self.new()  # what was written before does not count

    def new(self) -> list[AuditEntry]:
        found = [e for e in self.service.list(limit=None) if e.id > self.last]
        if found:
            self.last = max(e.id for e in found)
        return sorted(found, key=lambda e: e.id)

    def one(self) -> AuditEntry:
        found = self.new()
        assert len(found) == 1, [(e.action, e.changes) for e in found]
        return found[0]


def test_every_core_write_leaves_exactly_its_entry(crm: crmkit.CRM) -> None:
    log = Log(crm)
    crm.staff.add("ann", "Ann Lee", roles=["sales_rep"])
    e = log.one()
    assert (e.action, e.entity, e.entity_id, e.customer_id) == (
        "staff.create",
        "staff",
        "ann",
        None,
    )
    assert e.changes["roles"] == [None, ["sales_rep"]] and e.actor == OPERATOR
    assert e.actor_kind == "python" and "password" not in json.dumps(e.changes)

    li = crm.customers.add(name="Li Na", type="organisation", email="li@example.cn",
                           attributes={"nickname": "Nana"}, consents={"marketing": True})  # fmt: skip
    e = log.one()
    assert (e.action, e.entity_id, e.customer_id) == ("customer.create", str(li.id), li.id)
    assert e.changes["name"] == [None, "Li Na"]
    assert e.changes["attributes.nickname"] == [None, "Nana"]
    assert e.changes["consents.marketing"] == [None, True]

    crm.customers.update(li.id, email="na@example.cn", attributes={"nickname": None, "tier": 2})
    e = log.one()
    assert e.action == "customer.update"
    assert e.changes == {
        "email": ["li@example.cn", "na@example.cn"],
        "attributes.nickname": ["Nana", None],
        "attributes.tier": [None, 2],
        "version": [1, 2],
    }

    crm.customers.set_consent(li.id, "marketing", False, source="phone")
    e = log.one()
    assert (e.action, e.customer_id) == ("consent.change", li.id)
    assert e.changes == {"consents.marketing": [True, False], "source": [None, "phone"]}

    contact = crm.customers.add_contact(li.id, "Wang Fang", email="wang@example.cn")
    e = log.one()
    assert (e.action, e.entity, e.entity_id, e.customer_id) == (
        "contact.create", "contact", str(contact.id), li.id,
    )  # fmt: skip
    crm.customers.update_contact(contact.id, role="buyer")
    assert log.one().changes == {"role": [None, "buyer"]}
    crm.customers.remove_contact(contact.id)
    e = log.one()
    assert e.action == "contact.remove" and e.changes["name"] == ["Wang Fang", None]

    call = crm.interactions.log(li.id, "phone", subject="Asked", occurred_at=T0, staff="ann")
    e = log.one()
    assert (e.action, e.entity_id, e.customer_id) == ("interaction.log", str(call.id), li.id)
    assert e.changes["subject"] == [None, "Asked"] and e.on_behalf_of == "ann"
    assert e.actor == OPERATOR  # the operator recorded it, for ann

    order = crm.orders.add(customer_id=li.id, amount="120.50", occurred_at=T0, external_id="O-1")
    e = log.one()
    assert (e.action, e.entity_id, e.customer_id) == ("order.create", str(order.id), li.id)
    assert e.changes["amount"] == [None, "120.50"]
    crm.orders.set_status(order.id, "refunded", actor="ann")
    e = log.one()
    assert e.action == "order.status" and e.changes == {"status": ["paid", "refunded"]}
    assert e.on_behalf_of == "ann"

    deal = crm.workflows.start("sales", li.id, "Kettles", value="1000")
    e = log.one()
    assert (e.action, e.entity, e.customer_id) == ("workflow.start", "workflow", li.id)
    assert e.changes["stage"] == [None, "need_discovery"]
    crm.workflows.move(deal.id, "lost", reason="no budget")
    e = log.one()
    assert e.action == "workflow.move"
    assert e.changes["stage"] == ["need_discovery", "lost"]
    assert e.changes["reason"] == [None, "no budget"]

    crm.staff.update("ann", department="Sales East")
    assert log.one().changes == {"department": [None, "Sales East"]}
    crm.staff.deactivate("ann")
    assert log.one().action == "staff.deactivate"
    crm.staff.activate("ann")
    assert log.one().changes == {"active": [False, True]}


def test_staff_and_on_behalf_of_are_named(crm: crmkit.CRM) -> None:
    crm.staff.add("ann", "Ann", roles=["sales_rep"])
    log = Log(crm)
    with crm.acting_as(crm.staff.actor("ann").with_request("req-42")):
        mine = crm.customers.add(name="Mine")
    e = log.one()
    assert (e.actor, e.actor_kind, e.on_behalf_of, e.request_id) == (
        "ann", "staff", None, "req-42",
    )  # fmt: skip
    assert e.changes["owner"] == [None, "ann"]
    crm.customers.update(mine.id, city="Ningbo", actor="ann")  # the operator, for ann
    e = log.one()
    assert (e.actor, e.on_behalf_of) == (OPERATOR, "ann")
    with crm.transaction(actor="ann"):
        crm.customers.set_consent(mine.id, "marketing", True)
    assert log.one().on_behalf_of == "ann"


def test_a_failing_write_leaves_no_entry(crm: crmkit.CRM) -> None:
    li = crm.customers.add(name="Li Na", email="li@example.cn")
    log = Log(crm)
    log.new()
    with pytest.raises(ValidationError):
        crm.customers.update(li.id, email="not an address")
    with pytest.raises(PreconditionFailed):
        crm.customers.update(li.id, city="Xi'an", expected_version=7)
    with pytest.raises(ValidationError):
        crm.orders.add(customer_id=li.id, amount="-5", occurred_at=T0)
    with pytest.raises(RuntimeError), crm.transaction():
        crm.customers.update(li.id, city="Xi'an")
        raise RuntimeError("rolled back after the write")
    assert log.new() == []
    assert crm.customers.get(li.id).city is None and crm.customers.get(li.id).version == 1


def test_optimistic_concurrency_on_customers(crm: crmkit.CRM) -> None:
    li = crm.customers.add(name="Li Na")
    assert li.version == 1
    after = crm.customers.update(li.id, city="Xi'an", expected_version=1)
    assert after.version == 2 and crm.customers.get(li.id).version == 2
    with pytest.raises(PreconditionFailed):
        crm.customers.update(li.id, city="Lanzhou", expected_version=1)
    assert crm.customers.get(li.id).city == "Xi'an"
    crm.customers.set_consent(li.id, "marketing", True)  # consent keeps the version
    crm.customers.update(li.id, region="West")  # no expectation: still bumps
    assert crm.customers.get(li.id).version == 3


def test_concurrent_edits_with_the_same_version_one_wins(crm: crmkit.CRM) -> None:
    li = crm.customers.add(name="Li Na")
    barrier = threading.Barrier(4)
    results: list[str] = []

    def edit(city: str) -> None:
        barrier.wait()
        try:
            crm.customers.update(li.id, city=city, expected_version=1)
            results.append("won")
        except PreconditionFailed:
            results.append("stale")

    threads = [threading.Thread(target=edit, args=(f"City {i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["stale", "stale", "stale", "won"]
    assert crm.customers.get(li.id).version == 2
    assert len(AuditService(crm).list(action="customer.update")) == 1


def test_erasure_scrubs_values_and_keeps_the_skeleton(crm: crmkit.CRM) -> None:
    li = crm.customers.add(name="Li Na", email="li@example.cn", phone="+86 138 0013 8000")
    crm.customers.update(li.id, address="12 Elm Street")
    crm.interactions.log(li.id, "email", subject="She lives alone", occurred_at=T0)
    other = crm.customers.add(name="Zhang Wei", email="zw@example.cn")
    before = {e.id: e for e in AuditService(crm).list(customer_id=li.id)}
    crm.customers.erase(li.id)
    entries = AuditService(crm).list(customer_id=li.id, limit=None)
    text = json.dumps([e.changes for e in entries], ensure_ascii=False)
    for secret in ("Li Na", "li@example.cn", "0013", "12 Elm Street", "She lives alone"):
        assert secret not in text
    erase = entries[0]
    assert erase.action == "customer.erase" and erase.actor == OPERATOR
    assert erase.changes["email"] == [ERASED, None] and "name" in erase.changes
    for entry in entries[1:]:  # who did what, when, to which fields: kept
        old = before[entry.id]
        assert (entry.actor, entry.action, entry.at, set(entry.changes)) == (
            old.actor, old.action, old.at, set(old.changes),
        )  # fmt: skip
        assert all(v in (None, ERASED) for pair in entry.changes.values() for v in pair)
    # others' entries keep their values
    assert AuditService(crm).list(customer_id=other.id)[0].changes["name"] == [None, "Zhang Wei"]


def test_an_import_leaves_one_entry(crm: crmkit.CRM, tmp_path: Path) -> None:
    rows = "\n".join(f"C-{i},Customer {i}" for i in range(250))
    path = tmp_path / "customers.csv"
    path.write_text(f"external_id,name\n{rows}\n", encoding="utf-8")
    log = Log(crm)
    result = import_file(crm, "customers", path, batch_size=100)
    assert result.stored == 250
    e = log.one()
    assert (e.action, e.entity, e.entity_id) == ("import.customers", "import", "customers.csv")
    assert e.changes["stored"] == [None, 250] and e.changes["read"] == [None, 250]
    assert e.changes["already_present"] == [None, 0]
    import_file(crm, "customers", path)
    assert log.one().changes["already_present"] == [None, 250]
    crm.customers.add_many([{"name": f"Bulk {i}"} for i in range(30)], batch_size=20)
    batches = log.new()
    assert [(e.action, e.changes["stored"][1]) for e in batches] == [
        ("customer.create_many", 20), ("customer.create_many", 10),
    ]  # fmt: skip


def test_a_raw_write_gets_the_safety_net_entry(crm: crmkit.CRM) -> None:
    log = Log(crm)
    with crm.transaction() as ctx:
        ctx.connection.execute(insert(t.staff), {"username": "raw", "name": "Raw", "roles": []})
    e = log.one()
    assert (e.action, e.entity) == ("write", "tables")
    assert e.changes == {"tables": [None, ["staff"]]}


def test_the_export_and_the_360_carry_the_activity(crm: crmkit.CRM) -> None:
    li = crm.customers.add(name="Li Na", email="li@example.cn")
    dup = crm.customers.add(name="Li  Na", phone="138 0013 8000")
    crm.customers.update(dup.id, city="Xi'an")
    crm.customers.merge(li.id, dup.id)
    for i in range(25):
        crm.customers.update(li.id, region=f"R{i}")
    exported = crm.customers.export(li.id)
    actions = [a["action"] for a in exported["activity"]]
    assert actions.count("customer.update") == 26  # both records' entries
    assert {a["customer_id"] for a in exported["activity"]} == {li.id, dup.id}
    merges = [a for a in exported["activity"] if a["action"] == "customer.merge"]
    assert {m["customer_id"] for m in merges} == {li.id, dup.id}
    view = crm.customers.view(li.id)
    assert len(view.activity) == 20 and view.activity[0].changes["region"] == ["R23", "R24"]


def test_a_customers_activity_gathers_merges_of_merges(crm: crmkit.CRM) -> None:
    """The one-statement read (a recursive CTE) finds what the level-by-level walk finds."""
    from crmkit.core import auditlog

    kept = crm.customers.add(name="Wang Fang", email="wf@example.cn")
    middle = crm.customers.add(name="Wang Fang", phone="139 0000 0001")
    oldest = crm.customers.add(name="Wang Fang")
    other = crm.customers.add(name="Zhao Lei")
    crm.customers.update(oldest.id, city="Chengdu")
    crm.customers.merge(middle.id, oldest.id)
    crm.customers.merge(kept.id, middle.id)
    crm.customers.update(other.id, city="Wuhan")
    found = auditlog.of_customer(crm, kept.id)
    with crm.reading() as connection:
        ids = auditlog.customer_ids(connection, kept.id)
        walked = auditlog.entries(connection, customer_ids=ids)
    assert sorted(ids) == sorted([kept.id, middle.id, oldest.id])
    assert [e.id for e in found] == [e.id for e in walked]
    assert {e.customer_id for e in found} == {kept.id, middle.id, oldest.id}
    assert other.id not in {e.customer_id for e in found}


def test_audit_list_on_the_command_line(crm: crmkit.CRM, cli_runner: Any) -> None:
    run = cli_runner
    li = crm.customers.add(name="Li Na", external_id="C-1")
    crm.customers.update(li.id, city="Xi'an", actor="wang")
    crm.customers.add(name="Other")

    def cli_runner(args: list[str]) -> Any:
        return run(args, plugins=[])

    result = cli_runner(["audit", "list", "--customer", "C-1", "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [e["action"] for e in found] == ["customer.update", "customer.create"]
    assert found[0]["changes"]["city"] == [None, "Xi'an"]
    result = cli_runner(["audit", "list", "--staff", "wang"])
    assert result.exit_code == 0 and "customer.update" in result.stdout
    assert "customer.create" not in result.stdout
    result = cli_runner(["audit", "list", "--action", "customer.create", "--format", "csv"])
    assert result.stdout.count("customer.create") == 2
    result = cli_runner(["audit", "list", "--since", "2999-01-01"])
    assert result.stdout.strip() == "(none)"
    crm.staff.add("ann", "Ann", roles=["sales_rep"])
    result = cli_runner(["--as", "ann", "audit", "list"])
    assert result.exit_code == 1 and "audit.read" in result.stderr


def test_the_360_activity_in_text_json_and_html(crm: crmkit.CRM, cli_runner: Any) -> None:
    li = crm.customers.add(name="Li Na", external_id="C-1")
    crm.customers.update(li.id, city="Xi'an", actor="wang")
    crm.interactions.log(li.id, "phone", subject="Private call", occurred_at=T0)
    crm.staff.add("carl", "Carl", roles=["cost_accounting"])  # reads customers, not calls

    def show(*args: str) -> str:
        result = cli_runner(["customer", "show", "C-1", *args], plugins=[])
        assert result.exit_code == 0, result.output
        return result.stdout

    text = show()
    activity = text.split("activity (3, newest first):\n", 1)[1].splitlines()
    assert activity[1].endswith(
        f"{OPERATOR} for wang customer.update customer {li.id}: city, version"
    )
    data = json.loads(show("--format", "json"))
    assert [a["action"] for a in data["activity"]] == [
        "interaction.log", "customer.update", "customer.create",
    ]  # fmt: skip
    assert data["activity"][1]["changes"]["city"] == [None, "Xi'an"] and data["hidden"] == []
    page = show("--format", "html")
    assert 'id="section-activity"' in page and "Xi&#39;an" in page
    data = json.loads(show("--as", "carl", "--format", "json"))
    assert data["hidden"] == ["interactions"] and data["timeline"] == []
    call = data["activity"][0]
    assert call["action"] == "interaction.log" and "Private call" not in json.dumps(call)
    assert call["changes"]["subject"] == [None, None]
