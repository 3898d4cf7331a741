"""The plugin's Alembic branch matches its tables, and complaints0002 fills the pause log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crmkit_complaints import tables as t
from crmkit_complaints.service import service
from sqlalchemy import inspect, select

from crmkit.plugin import metadata


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_tables_match_the_migrations(make_crm: Any) -> None:
    crm = make_crm(plugins=["complaints"])

    def ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return bool(table) and table.startswith("complaints")

    with crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": ours, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


def test_upgrade_to_0002_fills_the_pause_log_from_the_workflow_history(setup: Any) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="phone", category="delivery", description="x",
                at=at(2026, 11, 23, 9))  # fmt: skip
    for stage, hour in [("waiting_on_customer", 10), ("investigating", 12), ("resolved", 14),
                        ("closed", 15), ("investigating", 16)]:  # fmt: skip
        svc.move(c.id, stage, resolution="done", at=at(2026, 11, 23, hour))
    svc.move(c.id, "waiting_on_customer", at=at(2026, 11, 23, 17))
    query = select(t.pauses.c.stage, t.pauses.c.started_at, t.pauses.c.ended_at).order_by(
        t.pauses.c.started_at
    )
    with crm.reading() as connection:
        written = [tuple(r) for r in connection.execute(query)]
    assert [w[0] for w in written] == ["waiting_on_customer", "resolved", "closed",
                                       "waiting_on_customer"]  # fmt: skip
    crm.downgrade("complaints0001")
    assert "complaints_pauses" not in inspect(crm.engine).get_table_names()
    crm.upgrade()
    with crm.reading() as connection:
        assert [tuple(r) for r in connection.execute(query)] == written
    assert "responsible" in {c["name"] for c in inspect(crm.engine).get_columns(t.sla_alerts.name)}
