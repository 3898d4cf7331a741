"""Merging duplicate customers joins their loyalty memberships (issue 14, point 18)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, pay, program
from sqlalchemy import func, select

from crmkit.plugin import Conflict

#: spend tiers: Silver at 500.00 in 12 months
SPEND = {
    "name": "spend",
    "title": "Spend",
    "qualification": {"measure": "spend", "window_months": 12},
    "tiers": [{"name": "member", "threshold": 0}, {"name": "silver", "threshold": 500}],
    "earn": [{"type": "spend", "rate": 2}],
    "rewards": [{"code": "mug", "title": "Mug", "points": 100}],
}


def _ledger_count(crm: Any) -> int:
    with crm.reading() as connection:
        return int(connection.scalar(select(func.count()).select_from(t.ledger)))


def test_merging_joins_ledgers_balances_and_tiers_per_program(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())  # "club": points tiers, silver at 1000
    service.load_program(SPEND)
    li = crm.customers.add(name="Li Na", email="li@example.cn")
    dup = crm.customers.add(name="Li Na", phone="+86 21 5550 0199")
    only = crm.customers.add(name="Wang Fang")
    for customer in (li, dup):
        service.enrol(customer.id, program="club")
    service.enrol(dup.id, program="spend")
    service.enrol(only.id, program="spend", referred_by=dup.id)
    now = dt.datetime.now(dt.UTC)
    pay(crm, li.id, "600", now - dt.timedelta(days=3))
    pay(crm, dup.id, "500", now - dt.timedelta(days=2))
    service.redeem(dup.id, "mug", program="club")
    service.adjust(dup.id, 25, reason="late parcel", staff="sam", program="club")
    assert service.member(li.id, program="club").tier == "bronze"
    assert service.member(dup.id, program="club").tier == "bronze"
    club_before = service.balance(li.id, program="club") + service.balance(dup.id, program="club")
    spend_before = service.balance(dup.id, program="spend")
    entries_before = _ledger_count(crm)
    with crm.reading() as connection:
        dup_rows = connection.execute(
            select(func.count(), func.sum(t.ledger.c.points))
            .join(t.members, t.members.c.id == t.ledger.c.member_id)
            .where(t.members.c.customer_id == dup.id)
        ).one()

    result = crm.customers.merge(li.id, dup.id)

    assert result.moved["loyalty"] == {
        "programs": 2,
        "entries": int(dup_rows[0]),
        "points": int(dup_rows[1]),
    }
    assert _ledger_count(crm) == entries_before  # moved, none written or lost
    assert [m.program for m in service.memberships(li.id)] == ["club", "spend"]
    assert service.memberships(dup.id) == []
    club = service.member(li.id, program="club")
    assert club.balance == club_before
    assert club.orders_count == 2
    # 600 + 500 + 25 points in 12 months meet silver (1000): the joined member moves up
    assert club.tier == "silver"
    assert service.tier_history(li.id, program="club")[-1]["reason"] == "merge"
    spend = service.member(li.id, program="spend")  # Li was not a member: the row moved
    assert (spend.balance, spend.tier) == (spend_before, "silver")  # 1100.00 spent
    assert service.member(only.id, program="spend").referred_by == li.id
    for name in ("club", "spend"):
        assert_consistent(service, name)
    # the merged record takes no more loyalty writes
    with pytest.raises(Conflict, match=f"merged into customer {li.id}"):
        service.adjust(dup.id, 10, reason="x", staff="sam", program="club")


def test_a_referral_between_the_two_records_survives_the_merge(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(
        program(earn=[{"type": "spend", "rate": 1},
                      {"type": "referral", "points": 200, "referee_points": 50}])
    )  # fmt: skip
    li = crm.customers.add(name="Li Na")
    dup = crm.customers.add(name="Li Na")
    service.enrol(li.id)
    service.enrol(dup.id, referred_by=li.id)  # she referred herself
    pay(crm, dup.id, "10", dt.datetime.now(dt.UTC))
    total = service.balance(li.id) + service.balance(dup.id)
    assert total == 200 + 50 + 10
    crm.customers.merge(li.id, dup.id)
    member = service.member(li.id)
    assert member.balance == total
    assert member.referred_by is None  # not referred by herself
    rules = sorted(e["cause"] for e in service.statement(li.id)["entries"])
    assert any(f"rule referral (customer {dup.id})" in cause for cause in rules), rules
    assert_consistent(service)


def test_a_merge_made_while_loyalty_was_off_is_joined_on_catch_up(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    li = crm.customers.add(name="Li Na")
    dup = crm.customers.add(name="Li Na")
    service.enrol(li.id)
    service.enrol(dup.id)
    pay(crm, li.id, "30", dt.datetime.now(dt.UTC))
    pay(crm, dup.id, "40", dt.datetime.now(dt.UTC))
    off = make_crm(plugins=[])
    off.customers.merge(li.id, dup.id)
    assert service.catch_up() == "loyalty: joined 1 memberships of merged customers"
    assert service.balance(li.id) == 70
    assert service.memberships(dup.id) == []
    assert service.catch_up() is None
    assert_consistent(service)
