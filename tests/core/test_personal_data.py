"""Export everything held on a person; erase it everywhere, keeping order totals."""

import datetime as dt
import json

import pytest

import crmkit

T0 = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)


class NotesPlugin:
    CRMKIT_NAME = "notes"

    def __init__(self):
        self.notes = {}

    @crmkit.hookimpl
    def crmkit_export_personal_data(self, ctx, customer):
        return {"notes": self.notes.get(customer.id, [])} if customer.id in self.notes else None

    @crmkit.hookimpl
    def crmkit_erase_personal_data(self, ctx, customer):
        self.notes.pop(customer.id, None)


def test_export_and_erase(make_crm):
    notes = NotesPlugin()
    crm = make_crm(plugins=[notes])
    org = crm.customers.add(
        name="Acme",
        type="organisation",
        email="info@acme.example",
        external_id="C1",
        phone="+86 10 1234",
    )
    crm.customers.add_contact(org.id, "Wang Wei", email="wang@acme.example")
    crm.customers.set_consent(org.id, "marketing", True)
    crm.interactions.log(org.id, "email", occurred_at=T0, subject="Hello", body="private words")
    crm.orders.add(customer_id=org.id, amount="250.00", occurred_at=T0, external_id="O1")
    crm.workflows.start("sales", org.id, "Deal with Acme")
    notes.notes[org.id] = ["likes green tea"]

    exported = crm.customers.export(org.id)
    json.dumps(exported)  # JSON-ready
    assert exported["customer"]["email"] == "info@acme.example"
    assert exported["customer"]["consents"] == {"marketing": True}
    assert exported["contacts"][0]["name"] == "Wang Wei"
    assert exported["interactions"][0]["body"] == "private words"
    assert exported["orders"][0]["amount"] == "250.00"
    assert exported["workflows"][0]["history"][0]["to_stage"] == "need_discovery"
    assert exported["plugins"] == {"notes": {"notes": ["likes green tea"]}}

    erased = crm.customers.erase(org.id)
    assert erased.erased_at is not None
    assert (erased.email, erased.phone, erased.external_id) == (None, None, None)
    assert "Acme" not in erased.name
    assert notes.notes == {}
    after = crm.customers.export(org.id)
    assert after["contacts"] == [] and after["interactions"] == [] and after["plugins"] == {}
    assert after["customer"]["consents"] == {}
    # statistics survive: the order and its amount are kept
    assert [o["amount"] for o in after["orders"]] == ["250.00"]
    with pytest.raises(crmkit.Conflict, match="was erased"):
        crm.customers.update(org.id, name="Back again")
