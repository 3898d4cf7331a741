"""Issue 14: writes about an erased or merged customer are refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from crmkit_complaints import tables as t
from crmkit_complaints.service import service
from sqlalchemy import func, select, update

from crmkit.plugin import Conflict, customers


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def count(crm: Any, table: Any) -> int:
    with crm.reading() as connection:
        return connection.scalar(select(func.count()).select_from(table))


# -- point 12: no writes about an erased or merged customer --------------------------


def test_writes_about_an_erased_customer_are_refused(setup: Any, cli_runner: Any) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="phone", category="delivery", description="late",
                at=at(2026, 11, 23, 9))  # fmt: skip
    svc.move(c.id, "resolved", resolution="refunded", at=at(2026, 11, 23, 10))
    crm.customers.erase(alice.id)
    before = (count(crm, t.complaints), count(crm, t.replies), count(crm, t.surveys))
    interactions = len(crm.interactions.list(customer_id=alice.id, limit=None))
    with pytest.raises(Conflict, match=f"customer {alice.id} was erased"):
        svc.log(alice.id, channel="phone", category="delivery", description="again")
    for write in (
        lambda: svc.reply(c.id, "hello"),
        lambda: svc.reply(c.id, "note", public=False),
        lambda: svc.survey(c.id, csat=5, nps=10, comment="great"),
        lambda: svc.move(c.id, "closed"),
        lambda: svc.assign(c.id, "ann"),
    ):
        with pytest.raises(Conflict, match=f"complaint #{c.id} takes no writes: customer "):
            write()
    r = cli_runner(["complaints", "log", "--customer", str(alice.id), "--channel", "email",
                    "--category", "delivery", "--description", "x"], plugins=["complaints"])  # fmt: skip
    assert r.exit_code == 1
    assert f"customer {alice.id} was erased" in r.output + r.stderr
    assert (count(crm, t.complaints), count(crm, t.replies), count(crm, t.surveys)) == before
    assert len(crm.interactions.list(customer_id=alice.id, limit=None)) == interactions
    assert svc.get(c.id).stage == "resolved"


def test_a_complaint_about_a_merged_customer_is_refused(setup: Any) -> None:
    crm, alice, vip = setup
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(customers).where(customers.c.id == vip.id).values(merged_into=alice.id)
        )
    with pytest.raises(Conflict, match=f"write to customer {alice.id} instead"):
        service(crm).log(vip.id, channel="phone", category="delivery", description="x")
    assert count(crm, t.complaints) == 0
