"""Storage round trips, bulk paths and batched events, on SQLite and PostgreSQL."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

import crmkit
from crmkit import AttributeDefinition, Conflict, NotFound, ValidationError
from crmkit.core import tables as t

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


class Recorder:
    """A plugin that records the batches it receives."""

    CRMKIT_NAME = "recorder"

    def __init__(self):
        self.calls = []

    @crmkit.hookimpl
    def crmkit_after_orders_created(self, ctx, orders):
        self.calls.append(("orders", len(orders)))

    @crmkit.hookimpl
    def crmkit_after_customers_created(self, ctx, customers):
        self.calls.append(("customers", len(customers)))

    @crmkit.hookimpl
    def crmkit_after_orders_updated(self, ctx, orders, previous):
        self.calls.append(
            ("updated", [(p.status, o.status) for o, p in zip(orders, previous, strict=True)])
        )

    @crmkit.hookimpl
    def crmkit_register_attributes(self):
        return [
            AttributeDefinition("vip", "boolean", declared_by="recorder"),
            AttributeDefinition("credit_limit", "decimal", declared_by="recorder"),
        ]


def test_customer_round_trip_with_typed_attributes(make_crm):
    crm = make_crm(plugins=[Recorder()])
    born = dt.date(1980, 4, 30)
    alice = crm.customers.add(
        name="李娜",
        external_id="C-1",
        email="li@example.cn",
        birth_date=born,
        region="East",
        vip="yes",
        credit_limit="1500.50",
        hobby="tea",
    )
    again = crm.customers.get(alice.id)
    assert again.name == "李娜"
    assert again.birth_date == born
    assert again.attributes == {"vip": True, "credit_limit": Decimal("1500.50"), "hobby": "tea"}
    assert again.created_at.tzinfo is not None
    with pytest.raises(ValidationError, match="attribute 'vip' expects boolean"):
        crm.customers.add(name="Bob", vip="perhaps")
    assert crm.customers.count() == 1


def test_money_and_time_are_exact(make_crm):
    crm = make_crm()
    c = crm.customers.add(name="A")
    shanghai = dt.datetime(2025, 6, 1, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    order = crm.orders.add(
        customer_id=c.id, amount="1234567.8912", cost="0.0001", occurred_at=shanghai
    )
    stored = crm.orders.get(order.id)
    assert stored.amount == Decimal("1234567.8912")
    assert stored.cost == Decimal("0.0001")
    assert stored.occurred_at == shanghai  # same instant
    assert stored.occurred_at.utcoffset() == dt.timedelta(0)  # returned in UTC


def test_duplicate_external_id_is_a_conflict_and_stores_nothing(make_crm):
    crm = make_crm()
    crm.customers.add(name="A", external_id="X")
    with pytest.raises(Conflict, match="external_id 'X' already exists"):
        crm.customers.add(name="B", external_id="X")
    assert crm.customers.count() == 1


def test_bulk_orders_fire_one_event_per_batch_and_are_idempotent(make_crm):
    recorder = Recorder()
    crm = make_crm(plugins=[recorder])
    result = crm.customers.add_many(
        ({"name": f"c{i}", "external_id": f"C{i}"} for i in range(250)), batch_size=100
    )
    assert result.stored == 250
    ids = crm.customers.ids_by_external_id(f"C{i}" for i in range(250))
    orders = [
        {
            "external_id": f"O{i}",
            "customer_id": ids[f"C{i % 250}"],
            "amount": f"{i}.25",
            "occurred_at": T0,
        }
        for i in range(1000)
    ]
    first = crm.orders.add_many(orders, batch_size=300)
    assert (first.stored, first.skipped) == (1000, [])
    assert [c for c in recorder.calls if c[0] == "orders"] == [("orders", 300)] * 3 + [
        ("orders", 100)
    ]
    second = crm.orders.add_many(orders, batch_size=300)
    assert second.stored == 0 and len(second.skipped) == 1000
    with crm.reading() as connection:
        total = connection.scalar(select(func.sum(t.orders.c.amount)))
    assert Decimal(str(total)).quantize(Decimal("0.01")) == sum(
        Decimal(f"{i}.25") for i in range(1000)
    )


def test_order_status_change_fires_update_with_previous(make_crm):
    recorder = Recorder()
    crm = make_crm(plugins=[recorder])
    c = crm.customers.add(name="A")
    order = crm.orders.add(customer_id=c.id, amount="10", occurred_at=T0)
    crm.orders.set_status(order.id, "refunded")
    assert ("updated", [("paid", "refunded")]) in recorder.calls
    with pytest.raises(ValidationError, match="status 'lost' is not valid"):
        crm.orders.set_status(order.id, "lost")


def test_orders_need_a_known_customer(make_crm):
    crm = make_crm()
    with pytest.raises(NotFound, match="customer 999 not found"):
        crm.orders.add(customer_id=999, amount="1", occurred_at=T0)


def test_list_filters_and_consent(make_crm):
    crm = make_crm()
    a = crm.customers.add(name="Ann Lee", region="North", owner=None, status="lead")
    crm.customers.add(name="Bo Chen", region="South")
    crm.customers.set_consent(a.id, "marketing", True, source="web form")
    assert [c.name for c in crm.customers.list(region="North")] == ["Ann Lee"]
    assert [c.name for c in crm.customers.list(text="chen")] == ["Bo Chen"]
    assert [c.name for c in crm.customers.list(consent="marketing")] == ["Ann Lee"]
    assert crm.customers.get(a.id).consented("marketing")
    crm.customers.set_consent(a.id, "marketing", False)
    assert crm.customers.list(consent="marketing") == []
    assert [c.name for c in crm.customers.iterate(batch_size=1)] == ["Ann Lee", "Bo Chen"]


def test_contacts_belong_to_organisations(make_crm):
    crm = make_crm()
    org = crm.customers.add(name="Acme Ltd", type="organisation", kind="enterprise")
    person = crm.customers.add(name="Solo")
    crm.customers.add_contact(org.id, "Wang Wei", role="buyer", email="wang@acme.example")
    assert [c.name for c in crm.customers.contacts(org.id)] == ["Wang Wei"]
    with pytest.raises(ValidationError, match="contacts belong to organisations"):
        crm.customers.add_contact(person.id, "X")


def test_interactions_on_every_channel(make_crm):
    crm = make_crm()
    c = crm.customers.add(name="A")
    for i, channel in enumerate(crmkit.core.entities.CHANNELS):
        crm.interactions.log(c.id, channel, occurred_at=T0 + dt.timedelta(hours=i), subject=channel)
    timeline = crm.interactions.list(customer_id=c.id, limit=None)
    assert [i.subject for i in timeline] == list(reversed(crmkit.core.entities.CHANNELS))
    with pytest.raises(ValidationError, match="channel 'fax' is not valid"):
        crm.interactions.log(c.id, "fax")


def test_get_many_keeps_the_order_asked_leaves_out_unknown_ids_and_has_lines(make_crm):
    crm = make_crm(plugins=[])
    c = crm.customers.add(name="A")
    plain = crm.orders.add(customer_id=c.id, amount="10", occurred_at=T0)
    lined = crm.orders.add(
        customer_id=c.id, amount="7.50", occurred_at=T0,
        lines=[{"product": "tea", "quantity": "3", "price": "2.50", "category": "drinks"}],
    )  # fmt: skip
    got = crm.orders.get_many([lined.id, 999_999, plain.id])
    assert [o.id for o in got] == [lined.id, plain.id]
    assert [(x.product, x.quantity, x.category) for x in got[0].lines] == [
        ("tea", Decimal("3"), "drinks")
    ]
    assert got[1].lines == [] and got[1].amount == Decimal("10")
    assert crm.orders.get_many([]) == []


def test_a_customer_the_database_would_refuse_is_one_clear_error(crm):
    import pytest

    import crmkit

    with pytest.raises(crmkit.ValidationError, match="name is 301 characters long; at most 300"):
        crm.customers.add(name="x" * 301)
    with pytest.raises(crmkit.ValidationError, match="city"):
        crm.customers.add(name="Li Na", city="Bei\x00jing")
    kept = crm.customers.add(name="Li Na")
    with pytest.raises(crmkit.ValidationError, match="email"):
        crm.customers.update(kept.id, email="a@b.cn" + "x" * 400)
    assert crm.customers.count() == 1 and crm.customers.get(kept.id).email is None
