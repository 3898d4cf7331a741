"""An import earns the same points whatever ``--batch-size`` cuts it into (issue 14, point 6).

Orders earn one at a time in the order they were stored, and what an order earns
depends only on the orders stored before it: the tier it earns with, its number
for ``nth_order`` and the upgrades it triggers. Hypothesis draws order files (in
random time order, with refunds, several channels, month ends) and imports each
one with ``crmkit import orders FILE --batch-size N`` for several N into mirror
customers of one database; every ledger row, balance, order count, tier and tier
change must be the same. The batches are kept and earn together once a drawn number of
orders wait (crmkit_loyalty.deferred), so chunks of batches start and end anywhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

from crmkit_loyalty import deferred, loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

import crmkit.plugin as ck
from crmkit.testing import run_cli

CUSTOMERS = 4

#: spend tiers with earn multipliers: an upgrade changes what later orders earn
SPEND: dict[str, Any] = {
    "name": "spend",
    "title": "Spend",
    "auto_enrol": True,
    "expiry_months": 6,
    "qualification": {"measure": "spend", "window_months": 2},
    "tiers": [
        {"name": "member", "threshold": 0},
        {"name": "silver", "threshold": "300.50", "earn_multiplier": "1.5"},
        {"name": "gold", "threshold": 900, "earn_multiplier": "2"},
    ],
    "earn": [
        {"type": "spend", "rate": 1, "min_spend": "5", "channel_multipliers": {"web": "1.1"}},
        {"type": "campaign", "name": "spring", "starts": "2025-03-01", "ends": "2025-03-31",
         "multiplier": 2},
        {"type": "nth_order", "name": "third", "n": 3, "points": 30, "repeat": True},
        {"type": "signup", "points": 5},
    ],
}  # fmt: skip

#: points tiers: what an order earns feeds the measure of the next ones; a referral and
#: points to claw back make some members earn order by order within a batch
POINTS: dict[str, Any] = {
    "name": "points",
    "title": "Points",
    "reversal_policy": "clawback",
    "qualification": {"measure": "points", "window_months": 3},
    "tiers": [
        {"name": "blue", "threshold": 0},
        {"name": "red", "threshold": 400, "earn_multiplier": "2"},
        {"name": "black", "threshold": 1500, "earn_multiplier": "3"},
    ],
    "earn": [
        {"type": "spend", "rate": "2.5", "per": 10, "rounding": "nearest"},
        {"type": "nth_order", "name": "second", "n": 2, "points": 25},
        {"type": "referral", "points": 200, "referee_points": 50},
    ],
}  # fmt: skip

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_runs = itertools.count()

order_rows = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=CUSTOMERS - 1),  # customer
        st.integers(min_value=0, max_value=300),  # day from 2025-01-01
        st.sampled_from([0, 13, 23]),  # hour
        st.one_of(st.integers(min_value=0, max_value=60_000), st.sampled_from([499, 500])),
        st.sampled_from(["paid"] * 6 + ["refunded", "cancelled"]),
        st.sampled_from(["web", "store", ""]),
    ),
    min_size=1,
    max_size=36,
)


def _setup(make_crm: Any, definition: dict[str, Any]) -> Any:
    crm = make_crm(plugins=["loyalty"])
    loyalty(crm).load_program(definition)
    return crm


def _write(path: Path, side: str, rows: list[tuple[Any, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "customer", "occurred_at", "amount", "status", "channel"])
        for n, (customer, day, hour, cents, status, channel) in enumerate(rows):
            when = at(2025, 1, 1, hour) + dt.timedelta(days=day)
            writer.writerow(
                [f"{side}-{n}", f"{side}c{customer}", when.isoformat(),
                 f"{cents // 100}.{cents % 100:02d}", status, channel]
            )  # fmt: skip


def _state(crm: Any, customer_id: int) -> tuple[Any, ...]:
    """The member's row and ledger, order ids replaced by the order's line in the file."""
    with crm.reading() as connection:
        member = connection.execute(
            select(t.members).where(t.members.c.customer_id == customer_id)
        ).first()
        if member is None:
            return (None,)
        ledger = connection.execute(
            select(t.ledger, ck.orders.c.external_id)
            .outerjoin(ck.orders, ck.orders.c.id == t.ledger.c.order_id)
            .where(t.ledger.c.member_id == member.id)
            .order_by(t.ledger.c.id)
        ).all()
        changes = connection.execute(
            select(t.tier_changes.c.from_tier, t.tier_changes.c.to_tier, t.tier_changes.c.at,
                   t.tier_changes.c.measure)
            .where(t.tier_changes.c.member_id == member.id)
            .order_by(t.tier_changes.c.id)
        ).all()  # fmt: skip
    rows = sorted(
        (
            (
                r.external_id.split("-")[-1] if r.external_id else "",
                r.kind, int(r.points), r.occurred_at, r.expires_at, r.rule,
            )
            for r in ledger
        ),
        key=repr,
    )  # fmt: skip
    return (
        int(member.balance), member.tier, member.tier_since, member.orders_count,
        int(member.clawback_due), member.enrolled_at, rows, [tuple(c) for c in changes],
    )  # fmt: skip


def _check(make_crm: Any, database_url: str, tmp_path: Path, definition: dict[str, Any],
           rows: list[tuple[Any, ...]], sizes: list[int], chunk: int) -> None:  # fmt: skip
    """Import ``rows`` once per batch size, the batches kept until ``chunk`` orders wait
    (crmkit_loyalty.deferred): every customer's state must be the same."""
    was, deferred.CHUNK_ORDERS = deferred.CHUNK_ORDERS, chunk
    try:
        _check_sizes(make_crm, database_url, tmp_path, definition, rows, sizes)
    finally:
        deferred.CHUNK_ORDERS = was


def _check_sizes(make_crm: Any, database_url: str, tmp_path: Path, definition: dict[str, Any],
                 rows: list[tuple[Any, ...]], sizes: list[int]) -> None:  # fmt: skip
    key = f"_batch_{definition['name']}"
    crm = getattr(make_crm, key, None) or _setup(make_crm, definition)
    setattr(make_crm, key, crm)
    service = loyalty(crm)
    run = next(_runs)
    states = []
    for n, size in enumerate(sizes):
        side = f"r{run}s{n}"
        ids = [
            crm.customers.add(external_id=f"{side}c{i}", name=f"{side} {i}").id
            for i in range(CUSTOMERS)
        ]
        if not definition.get("auto_enrol"):
            for i, customer_id in enumerate(ids):
                service.enrol(customer_id, referred_by=ids[0] if i == 3 else None,
                              at=at(2024, 12, 1))  # fmt: skip
            with crm.transaction() as ctx:
                ctx.connection.execute(
                    update(t.members)
                    .where(t.members.c.customer_id == ids[2])
                    .values(clawback_due=120)
                )
        path = tmp_path / f"{side}.csv"
        _write(path, side, rows)
        result = run_cli(
            ["import", "orders", str(path), "--batch-size", str(size)],
            database=database_url,
            plugins=["loyalty"],
        )
        assert result.exit_code == 0, result.output + result.stderr
        states.append([_state(crm, customer_id) for customer_id in ids])
    for size, found in zip(sizes[1:], states[1:], strict=True):
        for i in range(CUSTOMERS):
            assert found[i] == states[0][i], f"customer {i}: --batch-size {size} vs {sizes[0]}"
    assert_consistent(service)


@SETTINGS
@given(rows=order_rows, cuts=st.lists(st.integers(min_value=1, max_value=12), min_size=2,
                                      max_size=2, unique=True),
       chunk=st.integers(min_value=1, max_value=30))  # fmt: skip
def test_spend_tiers_earn_the_same_whatever_the_batch_size(
    make_crm: Any, database_url: str, tmp_path: Path, rows: list[Any], cuts: list[int],
    chunk: int,
) -> None:  # fmt: skip
    _check(make_crm, database_url, tmp_path, SPEND, rows, [len(rows) + 1, *cuts],
           chunk)  # fmt: skip


@SETTINGS
@given(rows=order_rows, cuts=st.lists(st.integers(min_value=1, max_value=12), min_size=2,
                                      max_size=2, unique=True),
       chunk=st.integers(min_value=1, max_value=30))  # fmt: skip
def test_points_tiers_earn_the_same_whatever_the_batch_size(
    make_crm: Any, database_url: str, tmp_path: Path, rows: list[Any], cuts: list[int],
    chunk: int,
) -> None:  # fmt: skip
    _check(make_crm, database_url, tmp_path, POINTS, rows, [len(rows) + 1, *cuts],
           chunk)  # fmt: skip
