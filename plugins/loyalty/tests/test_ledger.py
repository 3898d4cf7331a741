"""The points ledger on SQLite and PostgreSQL: earning, idempotency, reversals, expiry, tiers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, pay, program
from sqlalchemy import func, select

from crmkit.plugin import Conflict, NotFound, ValidationError


def ledger(crm: Any) -> list[Any]:
    with crm.reading() as connection:
        return connection.execute(select(t.ledger).order_by(t.ledger.c.id)).all()


def test_orders_earn_points_with_their_cause(club) -> None:
    crm, service, alice = club
    order = pay(crm, alice.id, "123.45", at(2025, 2, 1))
    entries = [e for e in ledger(crm) if e.order_id == order.id]
    assert [(e.kind, e.points, e.rule) for e in entries] == [("earn", 123, "spend")]
    assert entries[0].expires_at == at(2026, 2, 1)
    assert service.balance(alice.id) == 123
    statement = service.statement(alice.id)
    assert statement["entries"][-1]["cause"] == f"order {order.id}; rule spend"
    assert_consistent(service)


def test_earning_is_idempotent_on_replay_and_reimport(club) -> None:
    crm, service, alice = club
    orders = [
        {
            "external_id": f"X{i}",
            "customer_id": alice.id,
            "amount": "50",
            "occurred_at": at(2025, 3, i),
        }
        for i in range(1, 5)
    ]
    crm.orders.add_many(orders)
    before = service.balance(alice.id)
    assert before == 4 * 50 + 100  # the 3rd order's bonus
    again = crm.orders.add_many(orders)  # re-import: the core skips known external ids
    assert again.stored == 0 and sorted(again.skipped) == ["X1", "X2", "X3", "X4"]
    assert service.earn_existing() == 4  # replaying every stored order earns nothing more
    assert service.earn_existing() == 4
    assert service.balance(alice.id) == before
    assert len(ledger(crm)) == 4 + 1
    # and the unique constraint is the backstop: a duplicate key cannot be inserted
    first = ledger(crm)[1]
    with pytest.raises(Exception), crm.transaction() as ctx:  # noqa: B017 - any integrity error
        ctx.connection.execute(t.ledger.insert().values(**{**first._mapping, "id": None}))
    assert service.balance(alice.id) == before
    assert_consistent(service)


def test_placed_order_earns_when_paid(club) -> None:
    crm, service, alice = club
    order = pay(crm, alice.id, "80", at(2025, 2, 1), status="placed")
    assert service.balance(alice.id) == 0
    crm.orders.set_status(order.id, "paid")
    assert service.balance(alice.id) == 80


def test_refund_reverses_points_negative_policy(club) -> None:
    crm, service, alice = club
    order = pay(crm, alice.id, "300", at(2025, 2, 1))
    service.redeem(alice.id, "mug")  # 100 spent
    crm.orders.set_status(order.id, "refunded")
    assert service.balance(alice.id) == -100  # the program allows negative balances
    crm.orders.set_status(order.id, "cancelled")  # a second status change reverses nothing more
    assert service.balance(alice.id) == -100
    kinds = [(e.kind, e.points) for e in ledger(crm)]
    assert kinds == [("earn", 300), ("redeem", -100), ("reverse", -300)]
    assert_consistent(service)


def test_refund_claws_back_from_future_earnings(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(reversal_policy="clawback"))
    bob = crm.customers.add(name="Bob")
    service.enrol(bob.id)
    first = pay(crm, bob.id, "300", at(2025, 2, 1))
    service.redeem(bob.id, "mug")
    service.redeem(bob.id, "mug")  # 100 left
    crm.orders.set_status(first.id, "refunded")
    member = service.member(bob.id)
    assert (member.balance, member.clawback_due) == (0, 200)  # never negative
    pay(crm, bob.id, "150", at(2025, 3, 1))  # 150 earned, all of it owed
    assert (service.member(bob.id).balance, service.member(bob.id).clawback_due) == (0, 50)
    pay(crm, bob.id, "80", at(2025, 3, 2))  # 80 earned, 50 owed; (not the 3rd order: bonus)
    assert (service.member(bob.id).balance, service.member(bob.id).clawback_due) == (130, 0)
    rules = [(e.kind, e.points, e.rule) for e in ledger(crm)]
    assert ("reverse", -100, "refund") in rules
    assert ("reverse", -150, "clawback") in rules and ("reverse", -50, "clawback") in rules
    assert_consistent(service)


@pytest.mark.parametrize("policy", ["negative", "clawback"])
def test_refund_does_not_take_points_that_already_expired(make_crm, policy: str) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(reversal_policy=policy))  # points live 12 months
    cy = crm.customers.add(name="Cy")
    service.enrol(cy.id, at=at(2025, 1, 1))
    old = pay(crm, cy.id, "300", at(2025, 1, 5))
    service.redeem(cy.id, "mug", at=at(2025, 6, 1))  # 100 of the lot spent, 200 left
    pay(crm, cy.id, "40", at(2025, 12, 1))
    assert [-e.points for e in service.expire("2026-02-01")] == [200]  # the rest expired
    assert service.balance(cy.id) == 40
    crm.orders.set_status(old.id, "refunded")
    # the spent 100 come back under the policy; the expired 200 are not taken a second time
    member = service.member(cy.id)
    if policy == "negative":
        assert (member.balance, member.clawback_due) == (-60, 0)
    else:
        assert (member.balance, member.clawback_due) == (0, 60)
    (entry,) = [e for e in ledger(crm) if e.kind == "reverse"]
    assert "200 points had already expired" in entry.reason
    assert service.expire("2027-06-01") == []  # nothing left to expire twice
    assert_consistent(service)


def test_expiry_takes_oldest_points_first_and_only_once(club) -> None:
    crm, service, alice = club
    pay(crm, alice.id, "100", at(2025, 1, 10))  # expires 2026-01-10
    pay(crm, alice.id, "200", at(2025, 6, 10))  # expires 2026-06-10
    service.redeem(alice.id, "mug", at=at(2025, 7, 1))  # 100 spent: the oldest lot
    assert service.expire("2026-01-31") == []  # the January lot was spent already
    pay(crm, alice.id, "50", at(2025, 12, 1))  # 3rd order: +50 +100 bonus, expires 2026-12
    expired = service.expire("2026-06-30")
    assert [(e.customer_id, e.points) for e in expired] == [(alice.id, -200)]
    assert service.expire("2026-06-30") == []  # idempotent
    assert service.balance(alice.id) == 150
    assert service.expiring(alice.id, 30, now=at(2026, 11, 15)) == 150
    assert service.expiring(alice.id, 10, now=at(2026, 11, 15)) == 0
    assert_consistent(service)


def test_reversal_nets_against_its_own_lot_for_expiry(club) -> None:
    crm, service, alice = club
    pay(crm, alice.id, "100", at(2025, 1, 10))
    late = pay(crm, alice.id, "200", at(2025, 6, 10))
    crm.orders.set_status(late.id, "refunded")
    # the refund removed the June lot, so the January lot still expires in January
    assert [e.points for e in service.expire("2026-01-31")] == [-100]
    assert service.balance(alice.id) == 0


def test_tier_upgrades_at_once_and_downgrades_only_at_review(club) -> None:
    crm, service, alice = club
    seen: list[Any] = []
    pay(crm, alice.id, "600", at(2025, 1, 5))
    assert service.member(alice.id).tier == "bronze"
    pay(crm, alice.id, "500", at(2025, 2, 5))  # 1100 points in 12 months
    member = service.member(alice.id)
    assert (member.tier, member.tier_since) == ("silver", at(2025, 2, 5))
    # silver earns x1.5 from now on (3rd order: +100 bonus)
    pay(crm, alice.id, "100", at(2025, 3, 5))
    assert service.balance(alice.id) == 600 + 500 + 150 + 100
    # a year later, nothing earned in the window: no downgrade until the review
    pay(crm, alice.id, "10", at(2026, 6, 1))
    assert service.member(alice.id).tier == "silver"
    changes = service.review_tiers("2026-06-30")
    seen.extend(changes)
    assert [(c.from_tier, c.to_tier, c.reason, c.measure) for c in changes] == [
        ("silver", "bronze", "review", Decimal(15))
    ]
    assert service.member(alice.id).tier == "bronze"
    assert [h["to_tier"] for h in service.tier_history(alice.id)] == ["silver", "bronze"]


def test_tiers_on_spend_and_order_count(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    tiers = [{"name": "a", "threshold": 0}, {"name": "b", "threshold": 3}]
    service.load_program(program(name="visits", qualification={"measure": "orders"}, tiers=tiers))
    spend_tiers = [{"name": "a", "threshold": 0}, {"name": "b", "threshold": "99.99"}]
    service.load_program(
        program(name="spend", qualification={"measure": "spend", "window_months": 1},
                tiers=spend_tiers)
    )  # fmt: skip
    c = crm.customers.add(name="Carl")
    service.enrol(c.id, program="visits")
    service.enrol(c.id, program="spend")
    for day in (1, 2, 3):
        pay(crm, c.id, "33.33", at(2025, 4, day))
    assert service.member(c.id, program="visits").tier == "b"
    assert service.member(c.id, program="spend").tier == "b"
    changes = service.review_tiers("2025-05-15", program="spend")  # window 1 month
    assert [(ch.to_tier, ch.measure) for ch in changes] == [("a", Decimal(0))]


def test_spend_meeting_a_threshold_exactly_keeps_the_tier_at_review(make_crm) -> None:
    # 472.84 + 20.52 + 6.64 == 500.00, but as binary doubles (SQLite's SUM) 499.99999999999994
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    tiers = [{"name": "a", "threshold": 0}, {"name": "b", "threshold": 500}]
    service.load_program(program(qualification={"measure": "spend"}, tiers=tiers))
    c = crm.customers.add(name="Exa")
    service.enrol(c.id)
    for day, amount in ((1, "472.84"), (2, "20.52"), (3, "6.64")):
        pay(crm, c.id, amount, at(2025, 4, day))
    assert service.member(c.id).tier == "b"
    assert service.review_tiers("2025-06-30") == []
    assert service.member(c.id).tier == "b"


def test_signup_birthday_and_referral_bonuses(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    earn = [
        {"type": "spend", "rate": 1},
        {"type": "signup", "points": 25},
        {"type": "birthday", "points": 40},
        {"type": "referral", "points": 500, "referee_points": 60},
    ]
    service.load_program(program(earn=earn))
    ann = crm.customers.add(name="Ann", birth_date="1990-05-17")
    ben = crm.customers.add(name="Ben")
    service.enrol(ann.id)
    service.enrol(ben.id, referred_by=ann.id)
    assert service.balance(ann.id) == service.balance(ben.id) == 25
    placed = pay(crm, ben.id, "20", at(2025, 5, 1), status="placed")
    assert service.balance(ann.id) == 25  # not paid yet
    crm.orders.set_status(placed.id, "paid")
    assert service.balance(ann.id) == 525 and service.balance(ben.id) == 25 + 20 + 60
    pay(crm, ben.id, "20", at(2025, 5, 2))  # second order: no more referral bonus
    assert service.balance(ann.id) == 525
    assert len(service.award_birthdays("2025-05-03")) == 1
    assert service.award_birthdays("2025-05-28") == []  # once a year
    assert service.award_birthdays("2025-06-01") == []  # not her month
    assert len(service.award_birthdays("2026-05-01")) == 1
    assert service.balance(ann.id) == 525 + 80
    assert_consistent(service)


def test_auto_enrol_and_several_programs(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(name="all", auto_enrol=True))
    service.load_program(program(name="opt-in"))
    service.load_program(program(name="off", auto_enrol=True), enabled=False)
    dan = crm.customers.add(name="Dan")
    pay(crm, dan.id, "40", at(2025, 1, 1))
    assert [m.program for m in service.memberships(dan.id)] == ["all"]
    assert service.balance(dan.id, program="all") == 40
    with pytest.raises(ValidationError, match="several loyalty programs are enabled"):
        service.balance(dan.id)
    assert {p["name"]: p["members"] for p in service.programs()} == {
        "all": 1, "off": 0, "opt-in": 0,
    }  # fmt: skip


def test_bad_input_is_refused_and_changes_nothing(club) -> None:
    crm, service, alice = club
    pay(crm, alice.id, "250", at(2025, 1, 1))
    before = ledger(crm)
    bob = crm.customers.add(name="Bob")
    cases = [
        (lambda: service.redeem(alice.id, "mug", quantity=3), ValidationError, "has 250 points"),
        (lambda: service.redeem(alice.id, "yacht"), NotFound, "not in the catalogue"),
        (lambda: service.redeem(bob.id, "mug"), NotFound, "not a member"),
        (lambda: service.redeem(999999, "mug"), NotFound, "customer 999999 not found"),
        (lambda: service.redeem(alice.id, "old"), ValidationError, "expired on 2020-01-01"),
        (lambda: service.redeem(alice.id, "future"), ValidationError, "from 2099-01-01"),
        (lambda: service.redeem(alice.id, "mug", program="nope"), NotFound, "program 'nope'"),
        (lambda: service.adjust(alice.id, 5, reason=" ", staff="sam"), ValidationError, "reason"),
        (lambda: service.adjust(alice.id, 5, reason="x", staff=""), ValidationError, "staff"),
        (
            lambda: service.adjust(alice.id, -251, reason="x", staff="s"),
            ValidationError,
            "negative",
        ),
        (lambda: service.enrol(alice.id), Conflict, "already a member"),
        (lambda: service.enrol(bob.id, referred_by=424242), NotFound, "referring customer"),
    ]
    for call, error, text in cases:
        with pytest.raises(error, match=text):
            call()
    assert ledger(crm) == before and service.balance(alice.id) == 250
    service.adjust(alice.id, 100, reason="top-up", staff="sam")
    service.redeem(alice.id, "bag")  # the only one in stock
    with pytest.raises(Conflict, match="out of stock"):
        service.redeem(alice.id, "bag")
    assert len(ledger(crm)) == len(before) + 2
    assert service.balance(alice.id) == 50
    assert [r.available for r in service.rewards() if r.code == "bag"] == [0]


def test_adjust_records_staff_and_reason(club) -> None:
    crm, service, alice = club
    entry = service.adjust(alice.id, 75, reason="goodwill: late delivery", staff="sam")
    assert (entry.kind, entry.points, entry.staff, entry.reason) == (
        "adjust", 75, "sam", "goodwill: late delivery",
    )  # fmt: skip
    assert service.balance(alice.id) == 75
    assert "by sam; goodwill: late delivery" in service.statement(alice.id)["entries"][-1]["cause"]


def test_liability_per_program_and_tier(club) -> None:
    crm, service, alice = club
    bob = crm.customers.add(name="Bob")
    service.enrol(bob.id)
    pay(crm, alice.id, "1200", at(2025, 1, 1))  # silver
    pay(crm, bob.id, "345", at(2025, 1, 1))
    rows = {(r["program"], r["tier"]): r for r in service.liability()}
    assert rows[("club", "silver")]["points"] == 1200
    assert rows[("club", "silver")]["value"] == Decimal("12.00")
    assert rows[("club", "bronze")]["value"] == Decimal("3.45")
    assert rows[("club", "gold")]["members"] == 0


def test_what_if_writes_nothing(club) -> None:
    crm, service, alice = club
    for day in range(1, 6):
        pay(crm, alice.id, "100", at(2025, 1, day))
    with crm.reading() as connection:
        counts = [connection.scalar(select(func.count()).select_from(x)) for x in
                  (t.ledger, t.members, t.programs, t.rewards)]  # fmt: skip
    report = service.what_if(program(name="double", earn=[{"type": "spend", "rate": 2}]))
    assert (report["orders"], report["members"], report["points"]) == (5, 1, 1000)
    assert report["cost"] == Decimal("10.00") and report["cost_share"] == Decimal("2.00")
    assert report["members_by_tier"] == {"bronze": 0, "silver": 1, "gold": 0}
    # (not at midnight exactly: on SQLite the core's bulk path stores datetimes in another
    # text format than SQLAlchemy binds them, so >= at an exact second misses; see README)
    report = service.what_if(program(name="x"), since=at(2025, 1, 2, 12))
    assert report["orders"] == 3 and report["points"] == 300 + 100
    with crm.reading() as connection:
        assert counts == [connection.scalar(select(func.count()).select_from(x)) for x in
                          (t.ledger, t.members, t.programs, t.rewards)]  # fmt: skip
