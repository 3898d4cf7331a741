"""Contacts are edited and removed; staff are edited and deactivated (their history stays,
they own no customers and act in no workflow). API and command line, both backends."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import update

import crmkit
from crmkit.core import tables as t

AT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def one_error(result: Any) -> str:
    assert result.exit_code == 1, (result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "unexpected" not in result.stderr
    return lines[0].removeprefix("error: ")


def ok(result: Any) -> str:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


@pytest.fixture
def cli(cli_runner):
    """The command line with no plugins (the CRM of these tests has none)."""
    return lambda args: cli_runner(args, plugins=[])


@pytest.fixture
def org(crm: crmkit.CRM) -> tuple[crmkit.CRM, int, int]:
    acme = crm.customers.add(name="ACME", type="organisation")
    contact = crm.customers.add_contact(acme.id, "Wang Fang", role="buyer", phone="+86 10 1")
    return crm, acme.id, contact.id


# -- contacts -----------------------------------------------------------------


def test_contact_edit_and_remove(org, cli):
    crm, acme, contact = org
    out = ok(cli(["contact", "edit", str(contact), "--email", "wf@acme.cn", "--role", ""]))
    assert out == f"updated contact {contact} of customer {acme}: Wang Fang\n"
    listed = json.loads(ok(cli(["contact", "list", str(acme), "--format", "json"])))
    assert [(c["name"], c["role"], c["email"], c["phone"]) for c in listed] == [
        ("Wang Fang", None, "wf@acme.cn", "+86 10 1")
    ]
    after = crm.customers.update_contact(contact, name="Wang Fang (procurement)", phone=None)
    assert (after.name, after.phone, after.email) == ("Wang Fang (procurement)", None, "wf@acme.cn")
    assert crm.customers.contacts(acme) == [after]
    out = ok(cli(["contact", "remove", str(contact)]))
    assert out == f"removed contact {contact} (Wang Fang (procurement)) of customer {acme}\n"
    assert crm.customers.contacts(acme) == []
    missing = cli(["contact", "remove", str(contact)])
    assert one_error(missing).startswith(f"contact {contact} not found;")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": "not-an-address"}, "email 'not-an-address' is not an e-mail address"),
        ({"name": "  "}, "name must not be empty"),
        ({"name": None}, "a contact needs a name"),
        ({"name": "x" * 301}, "contact name is 301 characters long; at most 300 fit"),
        ({"phone": "1\x002"}, "contact phone contains a NUL character"),
        ({"customer_id": 2}, "a contact has no field 'customer_id'"),
    ],
)
def test_contact_edits_are_validated_and_change_nothing(org, changes, message):
    crm, acme, contact = org
    before = crm.customers.contacts(acme)
    with pytest.raises(crmkit.ValidationError, match=message):
        crm.customers.update_contact(contact, **changes)
    assert crm.customers.contacts(acme) == before


def test_contacts_of_an_erased_or_merged_customer_are_not_written(org, cli):
    crm, acme, contact = org
    other = crm.customers.add(name="ACME Group", type="organisation")
    second = crm.customers.add_contact(other.id, "Li Lei")
    with crm.transaction() as ctx:  # what 'customer merge' records
        ctx.connection.execute(
            update(t.customers).where(t.customers.c.id == other.id).values(merged_into=acme)
        )
    for write in (
        lambda: crm.customers.update_contact(second.id, name="Li Lei 2"),
        lambda: crm.customers.remove_contact(second.id),
    ):
        with pytest.raises(crmkit.Conflict, match=f"merged into customer {acme}"):
            write()
    refused = cli(["contact", "edit", str(second.id), "--name", "Li Lei 2"])
    assert f"write to customer {acme} instead" in one_error(refused)
    with crm.transaction() as ctx:  # an erasure leaves the record, marked
        ctx.connection.execute(
            update(t.customers).where(t.customers.c.id == acme).values(erased_at=AT)
        )
    refused = cli(["contact", "remove", str(contact)])
    assert "was erased on 2026-03-01" in one_error(refused)
    assert [c.name for c in crm.customers.contacts(acme)] == ["Wang Fang"]
    assert [c.name for c in crm.customers.contacts(other.id)] == ["Li Lei"]


def test_contact_edit_needs_something_to_change(org, cli):
    _, _, contact = org
    assert one_error(cli(["contact", "edit", str(contact)])) == (
        "nothing to change: give --name, --role, --email or --phone"
    )


# -- staff --------------------------------------------------------------------


def test_staff_edit(crm, cli):
    crm.staff.add("ann", "Ann", roles=["sales_rep"])
    crm.staff.add("bob", "Bob")
    out = ok(cli(["staff", "edit", "ann", "--role", "sales_rep,admin", "--manager", "bob",
                         "--email", "ann@example.com", "--department", "East"]))  # fmt: skip
    assert out == "updated staff member ann (roles: sales_rep, admin)\n"
    ann = crm.staff.get("ann")
    assert (ann.roles, ann.manager, ann.email, ann.department) == (
        ["sales_rep", "admin"], "bob", "ann@example.com", "East",
    )  # fmt: skip
    ok(cli(["staff", "edit", "ann", "--department", "", "--name", "Ann Li"]))
    assert (crm.staff.get("ann").department, crm.staff.get("ann").name) == (None, "Ann Li")
    assert one_error(cli(["staff", "edit", "ann", "--manager", "ann"])) == (
        "'ann' cannot be their own manager"
    )
    assert "staff member 'zed' not found" in one_error(
        cli(["staff", "edit", "ann", "--manager", "zed"])
    )
    assert "email 'nope' is not an e-mail address" in one_error(
        cli(["staff", "edit", "ann", "--email", "nope"])
    )
    assert "staff name is 201 characters long; at most 200 fit" in one_error(
        cli(["staff", "edit", "ann", "--name", "x" * 201])
    )
    with pytest.raises(crmkit.ValidationError, match="no editable field 'username'"):
        crm.staff.update("ann", username="anna")
    assert crm.staff.get("ann").name == "Ann Li"


def test_deactivated_staff_keep_their_history_but_take_no_new_work(crm, cli):
    crm.staff.add("ann", "Ann", roles=["sales_rep"])
    crm.staff.add("bob", "Bob", roles=["sales_rep"])
    li = crm.customers.add(name="Li Na", owner="ann")
    crm.interactions.log(li.id, channel="phone", occurred_at=AT, staff="ann", subject="hello")
    deal = crm.workflows.start("sales", li.id, "Fleet", owner="ann", actor="ann")
    out = ok(cli(["staff", "deactivate", "ann"]))
    assert out == (
        "deactivated staff member ann; their history stays\n"
        "they still own 1 customer(s) and 1 open workflow instance(s): give them another "
        "owner ('crmkit customer edit ID --owner NAME')\n"
    )
    assert ok(cli(["staff", "deactivate", "ann"])) == ("staff member ann was already deactivated\n")
    # the row stays: history still names her
    assert crm.staff.get("ann").active is False
    assert [i.staff for i in crm.interactions.list(customer_id=li.id)] == ["ann"]
    assert crm.customers.get(li.id).owner == "ann"
    # staff list: active ones; --all with the column
    listed = json.loads(ok(cli(["staff", "list", "--format", "json"])))
    assert [(m["username"], m["active"]) for m in listed] == [("bob", True)]
    listed = json.loads(ok(cli(["staff", "list", "--all", "--format", "json"])))
    assert [(m["username"], m["active"]) for m in listed] == [("ann", False), ("bob", True)]
    table = ok(cli(["staff", "list", "--all"]))
    assert table.splitlines()[0].split()[-1] == "active"
    assert [line.split()[-1] for line in table.splitlines()[2:]] == ["no", "yes"]
    # not a new owner of customers
    refusal = "staff member 'ann' is deactivated and cannot own customers"
    with pytest.raises(crmkit.Conflict, match=refusal):
        crm.customers.add(name="Bo", owner="ann")
    bo = crm.customers.add(name="Bo", owner="bob")
    with pytest.raises(crmkit.Conflict, match=refusal):
        crm.customers.update(bo.id, owner="ann")
    assert refusal in one_error(cli(["customer", "edit", str(bo.id), "--owner", "ann"]))
    assert crm.customers.update(li.id, status="inactive").owner == "ann"  # unrelated edits pass
    # not acting in workflows
    with pytest.raises(crmkit.Conflict, match="'ann' is deactivated and cannot act in workflows"):
        crm.workflows.move(deal.id, "presentation", actor="ann")
    assert crm.workflows.get(deal.id).stage == "need_discovery"
    assert crm.workflows.move(deal.id, "presentation", actor="bob").stage == "presentation"
    # and back
    assert ok(cli(["staff", "activate", "ann"])) == "staff member ann is active\n"
    assert crm.customers.update(bo.id, owner="ann").owner == "ann"
