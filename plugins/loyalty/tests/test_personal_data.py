"""Personal data in loyalty's tables: marked, exported, erased (issue 14, points 11-13), and
no loyalty write about an erased or merged customer (point 12)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.privacy import ERASED
from crmkit_loyalty.testing import assert_consistent, at, pay, program
from sqlalchemy import select, update

import crmkit.plugin as ck
from crmkit.plugin import Conflict

REFERRALS = program(
    earn=[{"type": "spend", "rate": 1}, {"type": "referral", "points": 200, "referee_points": 50}]
)


def test_personal_columns_are_marked() -> None:
    marked = {
        (table.name, column.name)
        for table in (t.programs, t.rewards, t.members, t.ledger, t.tier_changes)
        for column in table.columns
        if column.info.get("personal")
    }
    assert marked == {("loyalty_members", "referred_by"), ("loyalty_ledger", "reason")}


def _people(make_crm: Any) -> tuple[Any, Any, dict[str, int]]:
    """Ann referred Li, Li referred Bo; each paid a first order; staff wrote about Li."""
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(REFERRALS)
    ids = {name: crm.customers.add(name=name).id for name in ("Ann", "Li", "Bo")}
    service.enrol(ids["Ann"], at=at(2025, 1, 1))
    service.enrol(ids["Li"], referred_by=ids["Ann"], at=at(2025, 1, 1))
    service.enrol(ids["Bo"], referred_by=ids["Li"], at=at(2025, 1, 1))
    for day, name in enumerate(("Ann", "Li", "Bo"), start=2):
        pay(crm, ids[name], "20", at(2025, 1, day))
    service.adjust(ids["Li"], 30, reason="Li's kettle arrived broken", staff="sam")
    return crm, service, ids


def _reasons(crm: Any, customer_id: int) -> list[str | None]:
    with crm.reading() as connection:
        return list(
            connection.scalars(
                select(t.ledger.c.reason)
                .join(t.members, t.members.c.id == t.ledger.c.member_id)
                .where(t.members.c.customer_id == customer_id)
                .order_by(t.ledger.c.id)
            )
        )


def test_the_export_holds_every_personal_value(make_crm: Any) -> None:
    crm, _, ids = _people(make_crm)
    exported = crm.customers.export(ids["Li"])["plugins"]["loyalty"]
    (membership,) = exported["memberships"]
    assert membership["referred_by"] == ids["Ann"]
    assert membership["members_referred"] == 1
    reasons = [entry["reason"] for entry in membership["ledger"]]
    assert reasons == [r for r in _reasons(crm, ids["Li"])]
    assert "Li's kettle arrived broken" in reasons
    assert f"referred by customer {ids['Ann']}" in reasons
    assert f"referred customer {ids['Bo']} paid a first order" in reasons


def test_erasure_removes_reasons_and_referral_links_and_can_be_repeated(make_crm: Any) -> None:
    crm, service, ids = _people(make_crm)
    balances = {name: service.balance(cid) for name, cid in ids.items()}
    crm.customers.erase(ids["Li"])
    assert set(_reasons(crm, ids["Li"])) <= {None, ERASED}
    assert ERASED in _reasons(crm, ids["Li"])
    # the others' ledgers no longer name Li: Ann's referral bonus, Bo's "referred by"
    assert f"referred customer {ids['Li']} paid a first order" not in _reasons(crm, ids["Ann"])
    assert f"referred by customer {ids['Li']}" not in _reasons(crm, ids["Bo"])
    assert ERASED in _reasons(crm, ids["Ann"]) and ERASED in _reasons(crm, ids["Bo"])
    assert service.member(ids["Li"]).referred_by is None
    assert service.member(ids["Bo"]).referred_by is None
    assert {name: service.balance(cid) for name, cid in ids.items()} == balances  # figures stay
    with crm.reading() as connection:
        before = connection.execute(select(t.ledger).order_by(t.ledger.c.id)).all()
    crm.customers.erase(ids["Li"])  # again (completing an erasure): nothing more changes
    with crm.reading() as connection:
        assert connection.execute(select(t.ledger).order_by(t.ledger.c.id)).all() == before
    assert_consistent(service)


def test_an_erasure_made_while_loyalty_was_off_is_completed_by_catch_up(make_crm: Any) -> None:
    crm, service, ids = _people(make_crm)
    # a partial erasure: the core's part only (as when loyalty could not take part)
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(ck.customers)
            .where(ck.customers.c.id == ids["Li"])
            .values(erased_at=dt.datetime.now(dt.UTC), name="(erased)")
        )
    assert service.catch_up() == "loyalty: erased the loyalty data of 1 erased customers"
    assert set(_reasons(crm, ids["Li"])) <= {None, ERASED}
    assert service.member(ids["Bo"]).referred_by is None
    assert service.catch_up() is None


def test_no_loyalty_write_about_an_erased_or_merged_customer(make_crm: Any, cli_runner: Any):
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(REFERRALS)
    gone = crm.customers.add(name="Gone")
    kept = crm.customers.add(name="Kept")
    dup = crm.customers.add(name="Kept")
    other = crm.customers.add(name="Other")
    for customer in (gone, kept, dup):
        service.enrol(customer.id, at=at(2025, 1, 1))
    for customer in (gone, dup):
        service.adjust(customer.id, 500, reason="welcome", staff="sam")
    crm.customers.erase(gone.id)
    crm.customers.merge(kept.id, dup.id)
    for customer_id, said in ((gone.id, "was erased"), (dup.id, "was merged into")):
        with pytest.raises(Conflict, match=said):
            service.adjust(customer_id, 5, reason="x", staff="sam")
        with pytest.raises(Conflict, match=said):
            service.redeem(customer_id, "mug")
        with pytest.raises(Conflict, match=said):
            service.enrol(customer_id, program="club")
        with pytest.raises(Conflict, match=said):  # a referral names them
            service.enrol(other.id, referred_by=customer_id)
        with pytest.raises(Conflict, match=said):
            service.enrol_many([other.id, customer_id])
        result = cli_runner(
            ["loyalty", "adjust", str(customer_id), "5", "--reason", "x", "--staff", "sam"],
            plugins=["loyalty"],
        )
        assert result.exit_code != 0 and said in result.output + result.stderr
    assert service.memberships(other.id) == []
    assert service.balance(gone.id) == 500


def test_batch_earning_skips_erased_customers_orders(make_crm: Any) -> None:
    """The batch paths skip them in one statement (the core refuses such orders anyway:
    these orders were stored before the erasure and marked paid behind the core's back)."""
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(earn=[{"type": "spend", "rate": 1}]))
    gone = crm.customers.add(name="Gone")
    kept = crm.customers.add(name="Kept")
    for customer in (gone, kept):
        service.enrol(customer.id, at=at(2025, 1, 1))
    placed = [
        crm.orders.add(customer_id=c.id, amount="40", occurred_at=at(2025, 2, 1), status="placed")
        for c in (gone, kept, gone, kept)
    ]
    crm.customers.erase(gone.id)
    with crm.transaction() as ctx:
        ctx.connection.execute(update(ck.orders).values(status="paid"))
    orders = crm.orders.get_many([o.id for o in placed])
    for set_based in (True, False):
        service.set_based = set_based
        with crm.transaction() as ctx:  # the new-orders event, set-based or order by order
            service.earn_orders(ctx, orders[:2] if set_based else orders[2:])
    service.set_based = True
    service.earn_existing()  # the replay path
    assert service.balance(gone.id) == 0
    assert service.balance(kept.id) == 80
    assert_consistent(service)
