"""The plugin's Alembic branch matches its tables; loyalty0002 swaps the ledger's member index."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, pay, program
from sqlalchemy import delete, func, inspect, select

from crmkit.core import migrate
from crmkit.core.tables import metadata


def test_tables_match_the_migrations(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])

    def ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return bool(table) and table.startswith("loyalty")

    with crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": ours, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


def test_0002_down_and_up_keeps_the_ledger(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    alice = crm.customers.add(name="Alice")
    service.enrol(alice.id, at=at(2025, 1, 1))
    pay(crm, alice.id, "250.00", at(2025, 2, 1))

    def indexes() -> set[str]:
        return {i["name"] for i in inspect(crm.engine).get_indexes("loyalty_ledger")}

    assert "ix_loyalty_ledger_member_id" in indexes()
    migrate.downgrade(crm.engine, crm.alembic_config(), "loyalty0001")
    assert "ix_loyalty_ledger_member_time" in indexes()
    assert "ix_loyalty_ledger_member_id" not in indexes()
    crm.upgrade()
    assert "ix_loyalty_ledger_member_id" in indexes()
    assert service.balance(alice.id) == 250
    assert_consistent(service)


def test_0003_deleting_a_program_still_deletes_its_ledger(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    alice = crm.customers.add(name="Alice")
    service.enrol(alice.id, at=at(2025, 1, 1))
    pay(crm, alice.id, "250.00", at(2025, 2, 1))

    def foreign_keys() -> set[str]:
        return {
            fk["referred_table"] for fk in inspect(crm.engine).get_foreign_keys("loyalty_ledger")
        }

    assert foreign_keys() == {"loyalty_members"}
    migrate.downgrade(crm.engine, crm.alembic_config(), "loyalty0002")
    assert foreign_keys() == {"loyalty_members", "loyalty_programs"}
    crm.upgrade()
    assert foreign_keys() == {"loyalty_members"}
    with crm.transaction() as ctx:
        ctx.connection.execute(delete(t.programs))
    with crm.reading() as connection:
        assert connection.scalar(select(func.count()).select_from(t.ledger)) == 0
