"""crm.customers.merge: everything moves in one transaction, plugins included, or nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, update

import crmkit
from crmkit.core import tables as t
from crmkit.core.merge import MergeConflict
from crmkit.errors import Conflict, PluginError, ValidationError

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


notes_table = Table(
    "test_merge_notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, nullable=False),
)


class Notes:
    """A plugin holding notes about customers in its own table; it moves them and says how
    many."""

    CRMKIT_NAME = "notes"
    CRMKIT_API = ">=1.2,<2"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str | None]] = []

    @crmkit.hookimpl
    def crmkit_merge_customers(self, ctx, kept, merged):
        # the kept record already carries what the core merged (its e-mail here)
        self.calls.append((kept.id, merged.id, kept.email))
        moved = ctx.connection.execute(
            update(notes_table)
            .where(notes_table.c.customer_id == merged.id)
            .values(customer_id=kept.id)
        ).rowcount
        return {"notes": moved}


class Silent:
    """A plugin that holds nothing about the merged customer: no summary."""

    CRMKIT_NAME = "silent"
    CRMKIT_API = ">=1.2,<2"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_merge_customers(kept):
        return None


class Failing:
    """A plugin whose merge fails after writing (its write must be rolled back too)."""

    CRMKIT_NAME = "failing"
    CRMKIT_API = ">=1.2,<2"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_merge_customers(ctx, kept, merged):
        ctx.connection.execute(
            update(t.customers).where(t.customers.c.id == kept.id).values(city="Nowhere")
        )
        raise RuntimeError("ledger locked")


def two_customers(crm):
    kept = crm.customers.add(
        name="李娜", type="organisation", email="li@example.cn", external_id="C-1",
        consents={"marketing": True, "contact": False},
    )  # fmt: skip
    merged = crm.customers.add(
        name="李娜", type="organisation", phone="138 0013 8000", city="Beijing",
        external_id="C-2", attributes={"vip": "yes", "source": "fair"},
        consents={"marketing": False, "profiling": True, "third_party": True},
    )  # fmt: skip
    crm.customers.update(kept.id, attributes={"source": "fair"})
    crm.customers.set_consent(kept.id, "third_party", False)
    for customer in (kept, merged):
        crm.interactions.log(
            customer_id=customer.id, channel="phone", subject="call", occurred_at=T0
        )
    notes_table.create(crm.engine, checkfirst=True)
    with crm.transaction() as ctx:
        ctx.connection.execute(insert(notes_table), [{"customer_id": merged.id}] * 2)
    crm.orders.add(customer_id=merged.id, amount="120.00", occurred_at=T0, external_id="O-1")
    crm.orders.add(customer_id=merged.id, amount="30.00", occurred_at=T0, external_id="O-2")
    crm.customers.add_contact(merged.id, "Wang Fang", role="buyer")
    crm.workflows.start("sales", merged.id, title="Renewal")
    return kept, merged


def history(crm, customer_id):
    """The customer's consent changes (the consent_changes table), oldest first."""
    c = t.consent_changes.c
    with crm.reading() as connection:
        return connection.execute(
            select(c.purpose, c.granted, c.changed_at, c.source, c.actor)
            .where(c.customer_id == customer_id)
            .order_by(c.changed_at, c.id)
        ).all()


def rows(crm, table, customer_id):
    with crm.reading() as connection:
        return connection.scalar(
            select(func.count()).select_from(table).where(table.c.customer_id == customer_id)
        )


def test_merge_moves_core_rows_consent_fields_and_plugin_data(make_crm) -> None:
    notes = Notes()
    crm = make_crm(plugins=[notes, Silent])
    kept, merged = two_customers(crm)
    history_before = history(crm, merged.id)
    result = crm.customers.merge(kept.id, merged.id, actor="ann")

    for table in (t.interactions, t.orders, t.contacts, t.workflow_instances, t.consent_changes):
        assert rows(crm, table, merged.id) == 0, table.name
    assert rows(crm, t.interactions, kept.id) == 2
    assert rows(crm, notes_table, kept.id) == 2
    assert {o.external_id for o in crm.orders.list(customer_id=kept.id)} == {"O-1", "O-2"}
    assert [c.name for c in crm.customers.contacts(kept.id)] == ["Wang Fang"]
    assert [w.title for w in crm.workflows.list(customer_id=kept.id)] == ["Renewal"]

    after = crm.customers.get(kept.id)
    # empty fields and attributes filled from the merged record; equal ones untouched
    assert (after.email, after.phone, after.city) == ("li@example.cn", "138 0013 8000", "Beijing")
    assert after.attributes == {"source": "fair", "vip": "yes"}
    assert after.external_id == "C-1"
    # per purpose the more restrictive answer: a withdrawal beats a grant
    assert after.consents == {
        "marketing": False, "contact": False, "profiling": True, "third_party": False,
    }  # fmt: skip
    entries = history(crm, kept.id)
    merge_entries = [(h.purpose, h.granted, h.actor) for h in entries if h.source == "merge"]
    assert sorted(merge_entries) == [("marketing", False, "ann"), ("profiling", True, "ann")]
    # the merged record's own history moved with it
    assert set(history_before) <= set(entries)

    gone = crm.customers.get(merged.id)
    assert gone.merged_into == kept.id and gone.status == "inactive"
    assert (gone.name, gone.email, gone.phone, gone.attributes) == (
        f"(merged into customer {kept.id})", None, None, {},
    )  # fmt: skip
    assert gone.consents == {}
    assert crm.customers.resolve("C-2").merged_into == kept.id  # old references resolve
    with pytest.raises(Conflict, match=f"merged into customer {kept.id}"):
        crm.customers.require_writable(merged.id)

    assert notes.calls == [(kept.id, merged.id, "li@example.cn")]
    core = {
        "interactions": 1, "orders": 2, "contacts": 1, "workflow_instances": 1,
        "consent_changes": len(history_before), "merged_records": 0, "filled": ["phone", "city", "vip"],
        "chosen": {}, "consents": {"marketing": False, "profiling": True},
    }  # fmt: skip
    assert result.moved == {"core": core, "notes": {"notes": 2}}
    assert result.kept == after and result.merged == gone and result.actor == "ann"
    with crm.reading() as connection:
        stored = connection.execute(select(t.customer_merges)).one()
    assert (stored.id, stored.kept_id, stored.merged_id, stored.actor) == (
        result.id, kept.id, merged.id, "ann",
    )  # fmt: skip
    assert stored.moved == result.moved


def test_conflicting_fields_are_refused_listing_them_and_nothing_changes(make_crm) -> None:
    crm = make_crm()
    kept = crm.customers.add(name="Li Na", email="li@example.cn", attributes={"tier": "gold"})
    merged = crm.customers.add(name="李娜", email="na@example.cn", attributes={"tier": "silver"})
    crm.interactions.log(customer_id=merged.id, channel="phone", occurred_at=T0)
    with pytest.raises(MergeConflict) as raised:
        crm.customers.merge(kept.id, merged.id)
    message = str(raised.value)
    assert "name (kept 'Li Na', merged '李娜')" in message
    assert "email (kept 'li@example.cn', merged 'na@example.cn')" in message
    assert "tier (kept 'gold', merged 'silver')" in message
    assert "nothing was merged" in message and "--prefer name=kept" in message
    assert [c.field for c in raised.value.conflicts] == ["name", "email", "tier"]
    assert crm.customers.get(merged.id).merged_into is None
    assert rows(crm, t.interactions, merged.id) == 1
    assert crm.customers.get(kept.id).email == "li@example.cn"

    # e-mail case and phone formats are no conflicts; the kept spelling stays
    crm.customers.update(merged.id, email="LI@Example.cn")
    result = crm.customers.merge(kept.id, merged.id, prefer={"name": "merged", "tier": "kept"})
    assert (result.kept.name, result.kept.email) == ("李娜", "li@example.cn")
    assert result.kept.attributes == {"tier": "gold"}
    assert result.moved["core"]["chosen"] == {"name": "merged", "tier": "kept"}


def test_merges_that_cannot_be_are_refused(make_crm) -> None:
    crm = make_crm()
    a, b, c, d = (crm.customers.add(name=n) for n in ("A", "A", "A", "A"))
    with pytest.raises(ValidationError, match="cannot be merged into itself"):
        crm.customers.merge(a.id, a.id)
    with pytest.raises(ValidationError, match="'nmae'.*neither a profile field"):
        crm.customers.merge(a.id, b.id, prefer={"nmae": "kept"})
    with pytest.raises(ValidationError, match="use email=kept or email=merged"):
        crm.customers.merge(a.id, b.id, prefer={"email": "mine"})
    with pytest.raises(ValidationError, match="external_id is not merged"):
        crm.customers.merge(a.id, b.id, prefer={"external_id": "merged"})
    crm.customers.erase(d.id)
    with pytest.raises(Conflict, match=f"customer {d.id} was erased.*cannot be merged"):
        crm.customers.merge(a.id, d.id)
    with pytest.raises(Conflict, match=f"customer {d.id} was erased.*cannot be kept"):
        crm.customers.merge(d.id, a.id)
    crm.customers.merge(a.id, b.id)
    with pytest.raises(Conflict, match=f"customer {b.id} was already merged into customer {a.id}"):
        crm.customers.merge(c.id, b.id)
    with pytest.raises(Conflict, match=f"merge into customer {a.id} instead"):
        crm.customers.merge(b.id, c.id)
    with pytest.raises(crmkit.NotFound):
        crm.customers.merge(a.id, 999)


def test_a_failing_plugin_rolls_the_whole_merge_back(make_crm) -> None:
    notes = Notes()
    crm = make_crm(plugins=[notes, Failing])
    kept, merged = two_customers(crm)
    before_kept = crm.customers.get(kept.id)
    before_history = history(crm, kept.id)
    with pytest.raises(PluginError) as raised:
        crm.customers.merge(kept.id, merged.id)
    assert raised.value.plugin == "failing"
    assert str(raised.value) == (
        f"plugin 'failing' failed to merge customer {merged.id} into customer {kept.id}: "
        "RuntimeError: ledger locked; nothing of the merge was stored"
    )
    assert crm.customers.get(kept.id) == before_kept
    assert history(crm, kept.id) == before_history
    assert crm.customers.get(merged.id).merged_into is None
    assert rows(crm, t.interactions, merged.id) == 1
    assert rows(crm, notes_table, merged.id) == 2  # the plugin's move, rolled back too
    assert rows(crm, t.orders, merged.id) == 2
    with crm.reading() as connection:
        assert connection.scalar(select(func.count()).select_from(t.customer_merges)) == 0


def test_records_merged_earlier_point_at_the_last_kept_record(make_crm) -> None:
    crm = make_crm()
    a, b, c = (crm.customers.add(name="Li Na") for _ in range(3))
    crm.customers.merge(b.id, c.id)
    result = crm.customers.merge(a.id, b.id)
    assert crm.customers.get(c.id).merged_into == a.id
    assert result.moved["core"]["merged_records"] == 1


def test_the_merge_is_one_transaction_with_an_outer_one(make_crm) -> None:
    crm = make_crm()
    a, b = crm.customers.add(name="A"), crm.customers.add(name="A")
    with pytest.raises(ZeroDivisionError), crm.transaction():
        crm.customers.merge(a.id, b.id)
        raise ZeroDivisionError
    assert crm.customers.get(b.id).merged_into is None
    with crm.transaction() as ctx:  # the table is as the core defines it
        ctx.connection.execute(
            insert(t.customer_merges),
            {"kept_id": a.id, "merged_id": b.id, "at": T0, "moved": {}},
        )
