"""Ledger invariants under random operation sequences (hypothesis), on both backends."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from crmkit_loyalty import loyalty
from crmkit_loyalty.testing import assert_consistent, at, program
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_names = itertools.count()

operations = st.lists(
    st.one_of(
        st.tuples(st.just("order"), st.integers(min_value=0, max_value=400)),
        st.tuples(st.just("refund"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("redeem"), st.integers(min_value=1, max_value=3)),
        st.tuples(st.just("adjust"), st.integers(min_value=1, max_value=150)),
        st.tuples(st.just("replay"), st.just(0)),
    ),
    min_size=1,
    max_size=14,
)

SIMPLE = {"tiers": [], "earn": [{"type": "spend", "rate": 1}], "expiry_months": 12}


@SETTINGS
@given(ops=operations)
def test_clawback_never_negative_and_matches_the_negative_policy(make_crm: Any, ops) -> None:
    """Every order earns in two programs that differ only in the reversal policy.

    Invariants after every step: balance == sum(ledger) in both; the clawback
    program's balance is never negative; and its balance minus what it still has to
    claw back equals the negative-policy program's balance.
    """
    crm = _crm(make_crm)
    service = loyalty(crm)
    customer = crm.customers.add(name=f"P{next(_names)}")
    service.enrol(customer.id, program="neg", at=at(2024, 1, 1))
    service.enrol(customer.id, program="claw", at=at(2024, 1, 1))
    orders: list[int] = []
    day = at(2024, 1, 2)
    for kind, value in ops:
        day += dt.timedelta(days=1)
        if kind == "order":
            orders.append(
                crm.orders.add(customer_id=customer.id, amount=str(value), occurred_at=day).id
            )
        elif kind == "refund" and orders:
            crm.orders.set_status(orders[value % len(orders)], "refunded")
        elif kind == "redeem":
            cost = 100 * value
            if min(service.balance(customer.id, program=p) for p in ("neg", "claw")) >= cost:
                for p in ("neg", "claw"):
                    service.redeem(customer.id, "mug", program=p, quantity=value, at=day)
        elif kind == "adjust":
            for p in ("neg", "claw"):
                service.adjust(
                    customer.id, value, reason="goodwill", staff="sam", program=p, at=day
                )
        elif kind == "replay":
            before = [service.balance(customer.id, program=p) for p in ("neg", "claw")]
            service.earn_existing(program="neg")
            service.earn_existing(program="claw")
            assert before == [service.balance(customer.id, program=p) for p in ("neg", "claw")]
        neg = service.member(customer.id, program="neg")
        claw = service.member(customer.id, program="claw")
        assert claw.balance >= 0
        assert neg.clawback_due == 0
        assert neg.balance == claw.balance - claw.clawback_due
    assert_consistent(service, "neg")
    assert_consistent(service, "claw")


def _crm(make_crm: Any) -> Any:
    crm = getattr(make_crm, "_loyalty_crm", None)
    if crm is None:
        crm = make_crm(plugins=["loyalty"])
        service = loyalty(crm)
        service.load_program(program(name="neg", reversal_policy="negative", **SIMPLE))
        service.load_program(program(name="claw", reversal_policy="clawback", **SIMPLE))
        make_crm._loyalty_crm = crm
    return crm


fifo_ops = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(min_value=1, max_value=300)),
        st.tuples(st.just("spend"), st.integers(min_value=1, max_value=300)),
        st.tuples(st.just("expire"), st.integers(min_value=0, max_value=3)),
    ),
    min_size=1,
    max_size=16,
)


def _a_year_later(moment: dt.datetime) -> dt.datetime:
    """12 calendar months later; 29 February falls back to the month's end, 28 February."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


def test_points_earned_on_29_february_expire_on_28_february(make_crm: Any) -> None:
    crm = _crm(make_crm)
    service = loyalty(crm)
    customer = crm.customers.add(name="Leap Day")
    service.enrol(customer.id, program="neg", at=at(2024, 1, 1))
    crm.orders.add(customer_id=customer.id, amount="40", occurred_at=at(2024, 2, 29, 12))
    assert service.expire(at(2025, 2, 28, 11), program="neg") == []
    expired = service.expire(at(2025, 2, 28, 12), program="neg")
    assert [e.points for e in expired if e.customer_id == customer.id] == [-40]


@SETTINGS
@given(
    ops=fifo_ops, gaps=st.lists(st.integers(min_value=1, max_value=200), min_size=16, max_size=16)
)
def test_expiry_matches_a_fifo_lot_model(make_crm: Any, ops, gaps) -> None:
    """Points expire 12 months after they were earned, oldest first: compare with lots."""
    crm = _crm(make_crm)
    service = loyalty(crm)
    customer = crm.customers.add(name=f"F{next(_names)}")
    service.enrol(customer.id, program="neg", at=at(2024, 1, 1))
    lots: list[list[Any]] = []  # [expires_at, remaining], oldest first
    day = at(2024, 1, 1, 12)
    expired_through = day
    for (kind, value), gap in zip(ops, gaps, strict=False):
        day += dt.timedelta(days=gap)
        if kind == "earn":
            crm.orders.add(customer_id=customer.id, amount=str(value), occurred_at=day)
            lots.append([_a_year_later(day), value])
        elif kind == "spend":
            balance = sum(r for _, r in lots)
            value = min(value, balance)
            if value:
                service.adjust(
                    customer.id, -value, reason="spent", staff="till", program="neg", at=day
                )
                for lot in lots:
                    take = min(lot[1], value)
                    lot[1] -= take
                    value -= take
        else:
            as_of = max(day + dt.timedelta(days=365 * value), expired_through)
            expired_through = as_of
            expected = sum(r for e, r in lots if e <= as_of)
            lots = [lot for lot in lots if lot[0] > as_of]
            entries = service.expire(as_of, program="neg")
            assert -sum(e.points for e in entries if e.customer_id == customer.id) == expected
            day = as_of
        assert service.balance(customer.id, program="neg") == sum(r for _, r in lots)
    assert_consistent(service, "neg")
