"""The plugin's Alembic branch matches its tables; its later revisions go down and up again
keeping the ledger and its guarantees."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, pay, program
from sqlalchemy import delete, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

import crmkit.plugin as ck
from crmkit.plugin import ValidationError


def test_tables_match_the_migrations(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])

    def ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return bool(table) and table.startswith("loyalty")

    with crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": ours, "compare_type": True}
        )
        assert compare_metadata(context, ck.metadata) == []


def _member_paid(make_crm: Any, *names: str) -> tuple[Any, Any, list[Any], list[Any]]:
    """A club with a member per name, each with one paid order of 250.00:
    (crm, service, customers, orders)."""
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    customers, orders = [], []
    for name in names or ("Alice",):
        customer = crm.customers.add(name=name)
        service.enrol(customer.id, at=at(2025, 1, 1))
        orders.append(pay(crm, customer.id, "250.00", at(2025, 2, 1)))
        customers.append(customer)
    return crm, service, customers, orders


def test_0002_down_and_up_keeps_the_ledger(make_crm: Any) -> None:
    crm, service, (alice,), _ = _member_paid(make_crm)

    def indexes() -> set[str]:
        return {i["name"] for i in inspect(crm.engine).get_indexes("loyalty_ledger")}

    assert "ix_loyalty_ledger_member_id" in indexes()
    crm.downgrade("loyalty0001")
    assert "ix_loyalty_ledger_member_time" in indexes()
    assert "ix_loyalty_ledger_member_id" not in indexes()
    crm.upgrade()
    assert "ix_loyalty_ledger_member_id" in indexes()
    assert service.balance(alice.id) == 250
    assert_consistent(service)


def _member_keys(crm: Any) -> set[str]:
    return {fk["referred_table"] for fk in inspect(crm.engine).get_foreign_keys("loyalty_ledger")}


def _count(crm: Any, table: Any) -> int:
    with crm.reading() as connection:
        return int(connection.scalar(select(func.count()).select_from(table)))


def test_0003_deleting_a_program_still_deletes_its_ledger(make_crm: Any) -> None:
    crm, _, _, _ = _member_paid(make_crm)

    assert _member_keys(crm) == set()
    crm.downgrade("loyalty0002")
    assert _member_keys(crm) == {"loyalty_members", "loyalty_programs"}
    crm.upgrade()
    assert _member_keys(crm) == set()
    assert _count(crm, t.ledger) > 0
    with crm.transaction() as ctx:
        ctx.connection.execute(delete(t.programs))
    assert _count(crm, t.ledger) == 0


def test_0004_a_deleted_member_or_customer_takes_its_ledger_rows_along(make_crm: Any) -> None:
    crm, service, (alice, bob), _ = _member_paid(make_crm, "Alice", "Bob")
    both = _count(crm, t.ledger)
    with crm.transaction() as ctx:  # the customer row cascades to the member row
        ctx.connection.execute(delete(ck.orders).where(ck.orders.c.customer_id == alice.id))
        ctx.connection.execute(delete(ck.customers).where(ck.customers.c.id == alice.id))
    assert _count(crm, t.ledger) == both // 2
    assert service.balance(bob.id) == 250
    with crm.transaction() as ctx:
        ctx.connection.execute(delete(t.members))
    assert _count(crm, t.ledger) == 0


def test_0004_an_order_earns_once_per_rule_and_member(make_crm: Any) -> None:
    crm, service, (alice,), _ = _member_paid(make_crm)
    with crm.reading() as connection:
        row = connection.execute(select(t.ledger).where(t.ledger.c.kind == "earn")).one()
    assert row.idem_key is None and row.order_id is not None
    again = {k: v for k, v in row._mapping.items() if k != "id"}
    with pytest.raises(IntegrityError), crm.transaction() as ctx:
        ctx.connection.execute(insert(t.ledger).values(**again))
    assert service.balance(alice.id) == 250
    assert_consistent(service)


def test_0004_down_and_up_keeps_keys_and_guarantees(make_crm: Any) -> None:
    crm, service, (alice,), (order,) = _member_paid(make_crm)
    earned = select(t.ledger.c.idem_key).where(t.ledger.c.kind == "earn")

    crm.downgrade("loyalty0003")
    assert _member_keys(crm) == {"loyalty_members"}
    with crm.reading() as connection:  # the old scheme's key, given back
        assert list(connection.scalars(earned)) == [f"order:{order.id}:spend"]
    names = {i["name"] for i in inspect(crm.engine).get_indexes("loyalty_ledger")}
    assert "ix_loyalty_ledger_order_id" in names
    assert "uq_loyalty_ledger_order_cause" not in names
    crm.upgrade()
    assert _member_keys(crm) == set()
    names = {i["name"] for i in inspect(crm.engine).get_indexes("loyalty_ledger")}
    assert {"uq_loyalty_ledger_order_cause", "uq_loyalty_ledger_idem_key"} <= names
    pay(crm, alice.id, "100.00", at(2025, 3, 1))
    assert service.balance(alice.id) == 350
    assert_consistent(service)


def test_0004_a_stored_program_whose_rules_share_a_name_is_refused_until_loaded_again(
    make_crm: Any,
) -> None:
    """Programs stored before the names had to differ: one clear error, nothing earned,
    until the program is loaded again with distinct names."""
    crm, service, (alice,), _ = _member_paid(make_crm)
    twice = program(earn=[{"type": "spend", "rate": 1}, {"type": "spend", "rate": 2}])
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(t.programs).values(definition=twice, version=t.programs.c.version + 1)
        )
    with pytest.raises(ValidationError, match=r"earn\[1\]\.name 'spend' is already the name"):
        pay(crm, alice.id, "100.00", at(2025, 3, 1))
    with pytest.raises(ValidationError, match="give each rule that awards points its own name"):
        service.balance(alice.id)  # reads name the problem too
    with crm.reading() as connection:  # and nothing was stored
        assert connection.scalar(select(func.sum(t.ledger.c.points))) == 250
        assert connection.scalar(select(func.count()).select_from(ck.orders)) == 1
    fixed = program(
        earn=[{"type": "spend", "rate": 1}, {"type": "spend", "rate": 2, "name": "double"}]
    )
    service.load_program(fixed)
    pay(crm, alice.id, "100.00", at(2025, 3, 1))
    assert service.balance(alice.id) == 250 + 100 + 200
    assert_consistent(service)


def _members_keys(crm: Any) -> set[str]:
    return {
        fk["constrained_columns"][0]
        for fk in inspect(crm.engine).get_foreign_keys("loyalty_members")
    }


def _member_row(crm: Any, customer_id: int) -> dict[str, Any]:
    with crm.reading() as connection:
        row = connection.execute(
            select(t.members).where(t.members.c.customer_id == customer_id)
        ).one()
    return {k: v for k, v in row._mapping.items() if k != "id"}


def _tier_history(crm: Any) -> list[tuple[Any, ...]]:
    with crm.reading() as connection:
        return [tuple(r) for r in connection.execute(select(t.tier_changes).order_by("id"))]


def test_0005_member_keys_are_checked_by_triggers(make_crm: Any) -> None:
    """Without their foreign keys, a member's program and customer must still exist on
    insert and on change, and a program or customer with members keeps its id."""
    crm, service, (alice,), _ = _member_paid(make_crm)
    assert _members_keys(crm) == {"referred_by"}
    row = _member_row(crm, alice.id)
    for wrong in ({"customer_id": alice.id + 1000}, {"program_id": row["program_id"] + 1000}):
        with pytest.raises(IntegrityError), crm.transaction() as ctx:
            ctx.connection.execute(insert(t.members).values({**row, **wrong}))
        with pytest.raises(IntegrityError), crm.transaction() as ctx:
            ctx.connection.execute(update(t.members).values(**wrong))
    for table in (ck.customers, t.programs):
        with pytest.raises(IntegrityError), crm.transaction() as ctx:
            ctx.connection.execute(update(table).values(id=table.c.id + 1000))
    bob = crm.customers.add(name="Bob")
    with crm.transaction() as ctx:  # a valid insert and a valid change still work
        ctx.connection.execute(insert(t.members).values({**row, "customer_id": bob.id}))
        ctx.connection.execute(
            update(t.members).where(t.members.c.customer_id == bob.id).values(balance=0)
        )
    assert service.balance(alice.id) == 250
    assert_consistent(service)


def test_0005_a_deleted_program_or_customer_takes_its_members_along(make_crm: Any) -> None:
    crm, service, (alice, bob), _ = _member_paid(make_crm, "Alice", "Bob")
    with crm.transaction() as ctx:
        ctx.connection.execute(delete(ck.orders).where(ck.orders.c.customer_id == alice.id))
        ctx.connection.execute(delete(ck.customers).where(ck.customers.c.id == alice.id))
    assert _count(crm, t.members) == 1
    assert service.balance(bob.id) == 250
    with crm.transaction() as ctx:
        ctx.connection.execute(delete(t.programs))
    assert (_count(crm, t.members), _count(crm, t.ledger)) == (0, 0)


def test_0005_down_and_up_keeps_members_tier_history_and_guarantees(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    alice = crm.customers.add(name="Alice")
    service.enrol(alice.id, at=at(2025, 1, 1))
    pay(crm, alice.id, "5000.00", at(2025, 2, 1))  # enough for a tier change
    history = _tier_history(crm)
    assert history
    crm.downgrade("loyalty0004")
    assert _members_keys(crm) == {"referred_by", "program_id", "customer_id"}
    assert _tier_history(crm) == history
    crm.upgrade()
    assert _members_keys(crm) == {"referred_by"}
    assert _tier_history(crm) == history
    pay(crm, alice.id, "100.00", at(2025, 3, 1))
    assert _count(crm, t.ledger) == 2
    assert_consistent(service)
    with crm.transaction() as ctx:  # the ledger trigger and the delete triggers are back
        ctx.connection.execute(delete(ck.orders))
        ctx.connection.execute(delete(ck.customers))
    assert (_count(crm, t.members), _count(crm, t.ledger), _count(crm, t.tier_changes)) == (0, 0, 0)


def test_0005_a_balance_update_of_a_row_written_in_the_transaction_fires_no_key_check(
    make_crm: Any,
) -> None:
    """PostgreSQL re-checks every foreign key of a row version the transaction wrote,
    whichever columns change: each import batch after the first paid two checks per
    member. The triggers fire only when the key columns are written."""
    crm, _, (alice,), _ = _member_paid(make_crm)
    if crm.engine.dialect.name != "postgresql":
        pytest.skip("SQLite checks keys on UPDATE only when they change")
    balance = "UPDATE loyalty_members SET balance = balance + 1"
    with crm.transaction() as ctx:
        ctx.connection.exec_driver_sql(balance)  # this transaction now wrote the row
        (plan,) = ctx.connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {balance}"
        ).scalar()
        ctx.connection.exec_driver_sql("UPDATE loyalty_members SET balance = balance - 2")
    assert plan.get("Triggers", []) == []
    crm.downgrade("loyalty0004")  # with the foreign keys: a check per key
    with crm.transaction() as ctx:
        ctx.connection.exec_driver_sql(balance)
        (plan,) = ctx.connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {balance}"
        ).scalar()
        ctx.connection.exec_driver_sql("UPDATE loyalty_members SET balance = balance - 2")
    assert all(t_["Trigger Name"].startswith("RI_ConstraintTrigger_c_") for t_ in plan["Triggers"])
    assert sum(t_["Calls"] for t_ in plan["Triggers"]) == 2
    crm.upgrade()
