"""Each member's spend bound (``crmkit_loyalty.bounds``): every path that raises a
customer's paid spend raises the bound, so a set-based batch that skips the 12-month
read of an order the bound rules out still upgrades exactly when order-by-order
earning does.

Each scenario leaves a member 400.00 of paid spend in the window by one path (orders
paid later, a merge, a program enabled again, catching up, enrolling late ...), then
imports 150.00 more: 550.00 meets silver (500.00) only if the 400.00 count, and the
import's 150.00 alone is below it, so a bound that missed them would skip the read
and miss the upgrade (``test_a_bound_below_the_spend_would_miss_the_upgrade`` shows
the skip happens).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_bounds, assert_consistent, at, paid_spend
from sqlalchemy import select, text, update

SILVER_AT_500: dict[str, Any] = {
    "name": "spend-tiers",
    "title": "Spend tiers",
    "point_value": "0.01",
    "expiry_months": 0,
    "qualification": {"measure": "spend", "window_months": 12},
    "tiers": [
        {"name": "member", "threshold": 0},
        {"name": "silver", "threshold": 500, "earn_multiplier": "2"},
        {"name": "gold", "threshold": 5000, "earn_multiplier": "3"},
    ],
    "earn": [{"type": "spend", "rate": 1}],
}


def _club(make_crm: Any, *, enrol: bool = True) -> tuple[Any, Any, int]:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(SILVER_AT_500)
    alice = crm.customers.add(name="Alice", external_id="alice")
    if enrol:
        service.enrol(alice.id, at=at(2024, 1, 1))
    return crm, service, alice.id


def _import(crm: Any, customer_id: int, *amounts: str, day: int = 20) -> None:
    """The importer's path (a batch of crmkit.StoredOrders, earned set-based), after the
    orders stored before it in time; test_setbased.py mixes times at random."""
    start = sum(1 for _ in crm.orders.list(limit=None))
    rows = [
        (f"import-{start + n}", customer_id, at(2025, 6, day + n, 12), Decimal(amount), None,
         "EUR", "paid", None)
        for n, amount in enumerate(amounts)
    ]  # fmt: skip
    crm.orders.add_rows(rows)


def _bound(crm: Any, customer_id: int) -> int | None:
    with crm.reading() as connection:
        return connection.scalar(
            select(t.members.c.spend_bound).where(t.members.c.customer_id == customer_id)
        )


def _upgraded_by_the_import(crm: Any, service: Any, customer_id: int) -> None:
    assert service.member(customer_id).tier == "member"
    _import(crm, customer_id, "60.00", "90.00")  # 460.00, then 550.00
    member = service.member(customer_id)
    assert member.tier == "silver"
    assert [h["measure"] for h in service.tier_history(customer_id)] == [Decimal("550.00")]
    assert_consistent(service)


def test_a_bound_below_the_spend_would_miss_the_upgrade(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    assert _bound(crm, alice) == 4_000_000
    # a bound that missed the 400.00: the batch skips the read and the upgrade with it
    with crm.transaction() as ctx:
        ctx.connection.execute(update(t.members).values(spend_bound=0))
    _import(crm, alice, "100.00", "50.00")
    assert service.member(alice).tier == "member"
    with pytest.raises(AssertionError, match="spend bound 1500000 below the paid spend"):
        assert_bounds(crm)


@pytest.mark.parametrize("bound", ["kept", "unknown"])
def test_the_import_upgrades_with_the_bound_or_without_it(make_crm: Any, bound: str) -> None:
    crm, service, alice = _club(make_crm)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    if bound == "unknown":  # NULL: every order's window is read
        with crm.transaction() as ctx:
            ctx.connection.execute(update(t.members).values(spend_bound=None))
    _upgraded_by_the_import(crm, service, alice)
    assert _bound(crm, alice) == (5_500_000 if bound == "kept" else None)


def test_orders_outside_the_window_do_not_upgrade_though_the_bound_counts_them(
    make_crm: Any,
) -> None:
    crm, service, alice = _club(make_crm)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2024, 3, 1))
    _import(crm, alice, "100.00", "50.00")  # June 2025: March 2024 is out of the window
    assert service.member(alice).tier == "member"
    assert _bound(crm, alice) == 5_500_000
    assert_consistent(service)


def test_enrolling_after_orders_counts_them(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm, enrol=False)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    service.enrol(alice, at=at(2025, 1, 1))
    assert _bound(crm, alice) == 4_000_000
    _upgraded_by_the_import(crm, service, alice)


def test_an_order_paid_later_counts(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    placed = crm.orders.add(
        customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1), status="placed"
    )
    assert _bound(crm, alice) == 0
    crm.orders.set_status(placed.id, "paid")
    assert _bound(crm, alice) == 4_000_000
    _upgraded_by_the_import(crm, service, alice)


def test_refunds_and_cancellations_keep_the_bound_above_the_spend(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    refunded = crm.orders.add(customer_id=alice, amount="200.00", occurred_at=at(2025, 3, 1))
    cancelled = crm.orders.add(customer_id=alice, amount="250.00", occurred_at=at(2025, 4, 1))
    crm.orders.set_status(refunded.id, "refunded")
    crm.orders.set_status(cancelled.id, "cancelled")
    assert paid_spend(crm).get(alice, 0) == 0
    assert _bound(crm, alice) == 4_500_000  # only looser: never below the spend
    _import(crm, alice, "100.00", "50.00")
    assert service.member(alice).tier == "member"  # 150.00 in the window
    assert_consistent(service)


@pytest.mark.parametrize("kept_member", [True, False])
def test_a_merge_brings_the_merged_customers_orders(make_crm: Any, kept_member: bool) -> None:
    crm, service, alice = _club(make_crm)
    other = crm.customers.add(name="Alice", external_id="alice-2").id
    crm.orders.add(customer_id=alice, amount="0.00", occurred_at=at(2025, 2, 1))
    crm.orders.add(customer_id=other, amount="400.00", occurred_at=at(2025, 3, 1))
    if kept_member:  # the kept record is the member: its bound must take the moved orders
        crm.customers.merge(alice, other)
        kept = alice
    else:  # the merged record is the member: its membership moves to the kept record
        service.enrol(other, at=at(2024, 1, 1))
        with crm.transaction() as ctx:  # the kept record is not a member
            ctx.connection.execute(t.members.delete().where(t.members.c.customer_id == alice))
        crm.customers.merge(alice, other)
        kept = alice
    assert _bound(crm, kept) == 4_000_000
    _upgraded_by_the_import(crm, service, kept)


def test_a_program_enabled_again_counts_the_orders_paid_while_it_was_off(
    make_crm: Any,
) -> None:
    crm, service, alice = _club(make_crm)
    service.set_enabled("spend-tiers", False)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    assert _bound(crm, alice) == 0  # a disabled program does not earn, nor keep the bound
    service.set_enabled("spend-tiers", True)
    assert _bound(crm, alice) == 4_000_000
    _upgraded_by_the_import(crm, service, alice)


def test_a_program_loaded_again_enabled_counts_them_too(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    service.load_program(SILVER_AT_500, enabled=False)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    service.load_program(SILVER_AT_500)
    assert _bound(crm, alice) == 4_000_000
    _upgraded_by_the_import(crm, service, alice)


def test_catching_up_counts_orders_stored_while_loyalty_was_off(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    off = make_crm(plugins=[])  # the same database, loyalty not loaded
    off.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    back = make_crm(plugins=["loyalty"])
    assert _bound(back, alice) == 0
    back.customers.add(name="Bob")  # the first write: loyalty catches up first
    assert _bound(back, alice) == 4_000_000
    _upgraded_by_the_import(back, loyalty(back), alice)


def test_an_erased_customer_takes_no_points_and_the_bounds_still_hold(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    crm.customers.erase(alice)
    bob = crm.customers.add(name="Bob").id
    service.enrol(bob, at=at(2024, 1, 1))
    _import(crm, bob, "100.00")
    assert service.member(bob).tier == "member"
    assert _bound(crm, bob) == 1_000_000
    assert_consistent(service)


def test_new_orders_one_by_one_keep_the_bound(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    for day in (5, 3, 6):  # out of time order, each through the order's own event
        crm.orders.add(customer_id=alice, amount="170.00", occurred_at=at(2025, 3, day))
    assert _bound(crm, alice) == 5_100_000
    assert service.member(alice).tier == "silver"
    assert_consistent(service)


def test_the_bound_is_set_by_the_migration(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    bob = crm.customers.add(name="Bob").id
    service.enrol(bob, at=at(2024, 1, 1))
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    crm.orders.add(customer_id=bob, amount="12.3456", occurred_at=at(2025, 3, 2))
    crm.orders.add(customer_id=bob, amount="7.00", occurred_at=at(2025, 3, 2), status="placed")
    with crm.transaction() as ctx:
        ctx.connection.execute(update(t.members).values(spend_bound=None))
    crm.downgrade("loyalty0005")
    crm.upgrade()
    assert (_bound(crm, alice), _bound(crm, bob)) == (4_000_000, 123_456)
    _upgraded_by_the_import(crm, service, alice)


def test_the_fill_leaves_the_planner_settings_as_they_were(make_crm: Any) -> None:
    """PostgreSQL: the fill joins the members by hash (enable_nestloop off for that one
    statement); the rest of the import's transaction plans as before."""
    crm, service, alice = _club(make_crm)
    if crm.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    rows = [("set-1", alice, at(2025, 6, 1), Decimal("600.00"), None, "EUR", "paid", None)]
    with crm.transaction() as ctx:
        ctx.connection.execute(text("SET LOCAL enable_nestloop = off"))
        crm.orders._add_rows(ctx, rows)
        assert ctx.connection.scalar(text("SHOW enable_nestloop")) == "off"
    with crm.transaction() as ctx:
        crm.orders._add_rows(
            ctx, [("set-2", alice, at(2025, 6, 2), Decimal("1.00"), None, "EUR", "paid", None)]
        )
        assert ctx.connection.scalar(text("SHOW enable_nestloop")) == "on"
    assert service.member(alice).tier == "silver"
    assert service.balance(alice) == 600 + 2  # 1.00 at silver's double rate


@pytest.mark.parametrize("start", [9_000_000, None])
def test_refreshing_only_raises_a_bound(make_crm: Any, start: int | None) -> None:
    """A bound above the spend stays (on PostgreSQL a batch committed while the refresh
    waited may have added orders its sum does not see), and an unknown one stays unknown."""
    crm, service, alice = _club(make_crm)
    crm.orders.add(customer_id=alice, amount="400.00", occurred_at=at(2025, 3, 1))
    with crm.transaction() as ctx:
        ctx.connection.execute(update(t.members).values(spend_bound=start))
    service.set_enabled("spend-tiers", False)
    service.set_enabled("spend-tiers", True)
    assert _bound(crm, alice) == start
    with crm.transaction() as ctx:
        ctx.connection.execute(update(t.members).values(spend_bound=1))
    service.set_enabled("spend-tiers", False)
    service.set_enabled("spend-tiers", True)
    assert _bound(crm, alice) == 4_000_000
