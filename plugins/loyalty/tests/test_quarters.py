"""The spend an import's earlier batches added, per quarter (``crmkit_loyalty.quarters``):
a batch skips the 12-month read of an order when the quarters its window touches cannot
reach the next tier, and reads it (and upgrades) whenever they can."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty, pending, quarters
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_bounds, assert_consistent, at
from sqlalchemy import BigInteger, Integer, func, literal, select, union_all, update

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


def _python_bound(orders: list[tuple[int, int]], q: int, back: int) -> int:
    """What :func:`quarters.window_spend` must give for these (quarter, units) orders."""
    spend = sum(units for _, units in orders)
    if spend + len(orders) * quarters.SCALE >= quarters.LIMIT:
        return spend  # a lane may have overflowed: the spend of all time
    lanes = [0] * quarters.LANES
    for quarter, units in orders:
        lanes[quarter % quarters.LANES] += -(-units // quarters.SCALE)
    touched = sum(lanes[(q - k) % quarters.LANES] for k in range(back + 1))
    return min(touched * quarters.SCALE, spend)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_lanes_in_sql_bound_the_window_as_python_does(make_crm: Any, seed: int) -> None:
    rng = random.Random(seed)
    orders: dict[int, list[tuple[int, int]]] = {
        member: [
            (8096 + rng.randrange(14), rng.choice([0, 1, 9_999, 10_000, rng.randrange(10**8)]))
            for _ in range(rng.randrange(1, 12))
        ]
        for member in range(1, 30)
    }
    # lanes near and past overflow: one whole unit short of it, exactly at it, far past it
    big = (quarters.MASK - 1) * quarters.SCALE
    orders[30] = [(8100, big - quarters.SCALE)]
    orders[31] = [(8100, big), (8101, 5)]
    orders[32] = [(8100, 10**14), (8109, 10**14), (8101, 7)]
    rows = [(member, q, units) for member, found in orders.items() for q, units in found]
    crm = make_crm(plugins=["loyalty"])
    with crm.reading() as connection:
        dialect = connection.dialect.name
        v = union_all(
            *(
                select(literal(m, Integer).label("member_id"), literal(q, Integer).label("quarter"),
                       literal(units, BigInteger).label("units"))
                for m, q, units in rows
            )
        ).subquery()  # fmt: skip
        lane = quarters.lane(v.c.quarter)
        per_lane = (
            select(v.c.member_id, lane.label("lane"), func.count().label("orders"),
                   func.sum(v.c.units).label("spend"),
                   func.sum(quarters.whole(v.c.units)).label("whole"))
            .group_by(v.c.member_id, lane)
            .subquery()
        )  # fmt: skip
        packed = quarters.pack(per_lane.c.lane, per_lane.c.whole, dialect)
        members = (
            select(
                per_lane.c.member_id,
                func.sum(per_lane.c.orders).label("orders"),
                func.sum(per_lane.c.spend).label("spend"),
                *(p.label(name) for name, p in zip(quarters.COLUMNS, packed, strict=True)),
            )
            .group_by(per_lane.c.member_id)
            .subquery()
        )
        lanes = [members.c[name] for name in quarters.COLUMNS]
        for back in (0, 1, 4, 8):
            for q in range(8094, 8112):
                bound = quarters.window_spend(
                    lanes, members.c.orders, members.c.spend, literal(q, Integer), back
                )
                found = dict(connection.execute(select(members.c.member_id, bound)).all())
                expected = {m: _python_bound(o, q, back) for m, o in orders.items()}
                assert {m: int(b) for m, b in found.items()} == expected, (back, q)
    assert quarters.span(12) == 4 and quarters.span(24) == 8 and quarters.span(25) is None


def _club(make_crm: Any) -> tuple[Any, Any, int]:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(SILVER_AT_500)
    alice = crm.customers.add(name="Alice", external_id="alice").id
    service.enrol(alice, at=at(2023, 1, 1))
    return crm, service, alice


def _row(n: int, customer_id: int, when: Any, amount: str) -> tuple[Any, ...]:
    return (f"O{n}", customer_id, when, Decimal(amount), None, "EUR", "paid", None)


def _import(crm: Any, alice: int, first: Any, *, forget_lanes: bool = False) -> list[Any]:
    """One transaction, two batches (the importer's path): 400.00 at ``first``, then
    60.00 and 90.00 in June 2025; the second batch's measures, read in the transaction."""
    with crm.transaction() as ctx:
        crm.orders.add_rows([_row(1, alice, first, "400.00")])
        if forget_lanes:  # what a batch would read if the lanes missed the 400.00
            zero = dict.fromkeys(quarters.COLUMNS, 0)
            ctx.connection.execute(update(pending.table(ctx.connection)).values(**zero))
        crm.orders.add_rows(
            [_row(2, alice, at(2025, 6, 20, 12), "60.00"), _row(3, alice, at(2025, 6, 21), "90.00")]
        )
        scratch = t.batch_orders(1)
        return list(ctx.connection.scalars(select(scratch.c.measure).order_by(scratch.c.order_id)))


def test_a_quarter_outside_the_window_is_not_read(make_crm: Any) -> None:
    # the bound of all time (400.00 + 150.00) reaches silver; the quarters of the window
    # (from June 2024) hold only the 150.00: neither order of the second batch is read
    crm, service, alice = _club(make_crm)
    assert _import(crm, alice, at(2024, 3, 15, 12)) == [None, None]
    assert service.member(alice).tier == "member"
    assert_bounds(crm)
    assert_consistent(service)


def test_a_quarter_the_window_touches_is_counted(make_crm: Any) -> None:
    # the same 400.00 in September 2024, inside the window: 550.00 meets silver
    crm, service, alice = _club(make_crm)
    assert _import(crm, alice, at(2024, 9, 15, 12)) == [None, 5_500_000]
    assert service.member(alice).tier == "silver"
    assert [h["measure"] for h in service.tier_history(alice)] == [Decimal("550.00")]
    assert_consistent(service)


def test_lanes_that_missed_the_earlier_batch_would_miss_the_upgrade(make_crm: Any) -> None:
    crm, service, alice = _club(make_crm)
    assert _import(crm, alice, at(2024, 9, 15, 12), forget_lanes=True) == [None, None]
    assert service.member(alice).tier == "member"
