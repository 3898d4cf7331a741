"""Helpers for tests of code that uses the loyalty plugin (used by its own suite too)."""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


#: a small program used by most tests: 1 point per 1.00, three tiers on points
PROGRAM: dict[str, Any] = {
    "name": "club",
    "title": "Club",
    "point_value": "0.01",
    "expiry_months": 12,
    "reversal_policy": "negative",
    "qualification": {"measure": "points", "window_months": 12},
    "tiers": [
        {"name": "bronze", "threshold": 0},
        {"name": "silver", "threshold": 1000, "earn_multiplier": "1.5", "discount": "0.05"},
        {"name": "gold", "threshold": 5000, "earn_multiplier": "2"},
    ],
    "earn": [
        {"type": "spend", "rate": 1, "min_spend": "10", "category_multipliers": {"books": 3},
         "channel_multipliers": {"web": "2"}},
        {"type": "nth_order", "n": 3, "points": 100},
    ],
    "rewards": [
        {"code": "mug", "title": "Mug", "points": 100},
        {"code": "bag", "title": "Bag", "points": 300, "stock": 1},
        {"code": "old", "title": "Old", "points": 10, "valid_until": "2020-01-01"},
        {"code": "future", "title": "Future", "points": 10, "valid_from": "2099-01-01"},
    ],
}  # fmt: skip


def program(**changes: Any) -> dict[str, Any]:
    return {**PROGRAM, **changes}


def pay(crm: Any, customer_id: int, amount: str, when: dt.datetime, **more: Any) -> Any:
    return crm.orders.add(customer_id=customer_id, amount=amount, occurred_at=when, **more)


def assert_consistent(service: Any, program: str | None = None) -> None:
    """Every balance equals its ledger, and every spend bound holds (:func:`assert_bounds`)."""
    for customer_id, (balance, total) in service.ledger_sums(program=program).items():
        assert balance == total, f"customer {customer_id}: balance {balance} != ledger {total}"
    assert_bounds(service.crm)


def paid_spend(crm: Any) -> dict[int, int]:
    """customer id -> their paid orders' amounts in 1/10,000, summed in Python."""
    import crmkit.plugin as ck

    spend: dict[int, int] = {}
    with crm.reading() as connection:
        rows = connection.execute(
            ck.orders.select().with_only_columns(ck.orders.c.customer_id, ck.orders.c.amount)
            .where(ck.orders.c.status == "paid")
        )  # fmt: skip
        for customer_id, amount in rows:
            spend[customer_id] = spend.get(customer_id, 0) + max(int(amount * 10_000), 0)
    return spend


def assert_bounds(crm: Any) -> None:
    """Every member's ``spend_bound`` is unknown (NULL) or at least its customer's paid
    spend (erased and merged customers take no points: their bounds are never read)."""
    import crmkit.plugin as ck
    from crmkit_loyalty import tables as t

    spend = paid_spend(crm)
    c = ck.customers.c
    with crm.reading() as connection:
        members = connection.execute(
            t.members.select()
            .with_only_columns(t.members.c.id, t.members.c.customer_id, t.members.c.spend_bound)
            .join(ck.customers, c.id == t.members.c.customer_id)
            .where(c.erased_at.is_(None), c.merged_into.is_(None))
        ).all()
    for member_id, customer_id, bound in members:
        paid = spend.get(customer_id, 0)
        assert bound is None or bound >= paid, (
            f"member {member_id}: spend bound {bound} below the paid spend {paid}"
        )
