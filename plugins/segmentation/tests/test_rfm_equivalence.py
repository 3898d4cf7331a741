"""RFM scored in numpy equals the database's own ``NTILE`` window functions, on both
backends: the same scores, the same Decimal monetary, including SQLite's float sums
(0.1 + 0.2 is not 0.3 there), ties on every measure, withdrawn consent and scopes."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa
from crmkit_segmentation import ntile
from crmkit_segmentation.profiling import allowed
from crmkit_segmentation.rfm import _money, rfm_scores
from crmkit_segmentation.scope import (
    as_of_end,
    check_scope,
    counted_orders,
    customer_key,
    orders_in_scope,
    scope_clauses,
)
from hypothesis import given
from hypothesis import strategies as st

from crmkit.plugin import money_scale, orders, to_decimal

AS_OF = dt.date(2024, 6, 30)
T0 = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC)


def sql_ntile(crm, as_of, scope, bins):
    """The single statement RFM used before: three NTILE windows in the database."""
    scope = check_scope(scope)
    a = (
        sa.select(
            customer_key().label("cid"),
            sa.func.max(orders.c.occurred_at).label("last_at"),
            sa.func.count().label("frequency"),
            sa.func.sum(orders.c.amount).label("monetary"),
        )
        .select_from(orders_in_scope(scope))
        .where(*counted_orders(as_of_end(as_of)), *scope_clauses(scope))
        .group_by(customer_key())
        .subquery("a")
    )
    query = (
        sa.select(
            a.c.cid,
            a.c.frequency,
            a.c.monetary,
            sa.func.ntile(bins).over(order_by=(a.c.last_at.asc(), a.c.cid)).label("r"),
            sa.func.ntile(bins).over(order_by=(a.c.frequency.asc(), a.c.cid)).label("f"),
            sa.func.ntile(bins).over(order_by=(a.c.monetary.asc(), a.c.cid)).label("m"),
        )
        .where(allowed(a.c.cid))
        .order_by(a.c.cid)
    )
    with crm.engine.connect() as conn:
        return [
            {
                "customer_id": r.cid,
                "frequency": int(r.frequency),
                "monetary": r.monetary,
                "r": int(r.r),
                "f": int(r.f),
                "m": int(r.m),
            }
            for r in conn.execute(query)
        ]


def seed(crm) -> list[int]:
    """Hand-made ties and float sums, then 150 customers of seeded random orders drawn
    from few days and amounts (many ties on every measure)."""
    rng = random.Random(16)
    crm.customers.add_many(
        {"name": f"C{i}", "region": "North" if i % 3 else "South"} for i in range(160)
    )
    ids = sorted(c.id for c in crm.customers.list(limit=None))
    special = [
        ["0.1", "0.2"],  # SQLite sums 0.30000000000000004
        ["0.3"],
        ["0.3"],
        ["0.2", "0.1"],
        ["0.0001", "0.0002"],
        ["1000", "2000"],  # integral: SQLite sums an INTEGER
        ["3000.00"],
        ["2999.9999", "0.0001"],
        ["12.345", "0.005"],
        ["0", "0.00"],  # free orders: zero
    ]
    rows = []
    for cid, amounts in zip(ids, special, strict=False):
        for k, amount in enumerate(amounts):
            rows.append((cid, T0 + dt.timedelta(days=10 + k), Decimal(amount), "paid"))
    amounts = [Decimal(a) for a in ("9.99", "10", "10.00", "19.95", "0.1", "0.2", "250.005")]
    for cid in ids[len(special) :]:
        for _ in range(rng.randrange(1, 9)):
            day = T0 + dt.timedelta(days=rng.choice((0, 30, 60, 61, 150, 170, 200)))
            status = rng.choice(("paid", "paid", "placed", "refunded", "cancelled"))
            rows.append((cid, day, rng.choice(amounts), status))
    crm.orders.add_many(
        {"customer_id": c, "occurred_at": t, "amount": a, "currency": "EUR", "status": s}
        for c, t, a, s in rows
    )
    return ids


@pytest.fixture
def seeded(make_crm):
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    crm.customers.set_consent(ids[1], "profiling", False, source="test")
    crm.customers.set_consent(ids[40], "profiling", False, source="test")
    return crm, ids


def test_scores_equal_the_databases_ntile(seeded) -> None:
    crm, ids = seeded
    cases = [
        (AS_OF, None, 5),
        (AS_OF, None, 2),
        (AS_OF, None, 7),
        (AS_OF, None, 1000),  # more bins than customers: one customer each
        (AS_OF, {"region": "North"}, 3),
        (dt.date(2024, 3, 1), None, 4),  # orders after as-of are ignored
    ]
    for as_of, scope, bins in cases:
        ours = rfm_scores(crm, as_of, scope, bins)
        theirs = sql_ntile(crm, as_of, scope, bins)
        assert len(ours) > 20
        assert ids[1] not in {r["customer_id"] for r in ours}
        # repr: the same Decimal, down to its places (250.005 stays 3 places, 10 gets 2)
        assert [repr(r) for r in ours] == [repr(r) for r in theirs], (as_of, scope, bins)


def test_float_sums_and_ties_are_ordered_as_the_database_does(seeded) -> None:
    crm, ids = seeded
    by_id = {r["customer_id"]: r for r in rfm_scores(crm, AS_OF, bins=1000)}
    # ids[0] bought 0.1 + 0.2, ids[2] 0.3: tied when summed exactly (PostgreSQL, split by
    # id), but SQLite sums floats and 0.30000000000000004 > 0.3: the database decides
    assert by_id[ids[0]]["monetary"] == by_id[ids[2]]["monetary"] == Decimal("0.30")
    if crm.engine.dialect.name == "sqlite":
        assert by_id[ids[2]]["m"] < by_id[ids[0]]["m"]
    else:
        assert by_id[ids[0]]["m"] < by_id[ids[2]]["m"]
    assert str(by_id[ids[4]]["monetary"]) == "0.0003"
    assert str(by_id[ids[8]]["monetary"]) == "12.35"


def test_ntile_by_position_matches_the_sql_definition() -> None:
    for n in range(0, 40):
        for bins in range(1, 12):
            sizes = [n // bins + (1 if b < n % bins else 0) for b in range(bins)]
            expected = [b + 1 for b, size in enumerate(sizes) for _ in range(size)]
            assert ntile.ntile_by_position(n, bins).tolist() == expected


def test_exact_order_when_floats_merge_different_values() -> None:
    big = 2**53
    values = [
        Decimal("1.00000000000000000001"),
        Decimal(1),
        big + 1,
        big,
        Decimal("1.00000000000000000001"),
    ]
    ids = np.array([5, 9, 2, 7, 1])
    order = ntile.exact_order(values, ids).tolist()
    expected = sorted(range(len(values)), key=lambda i: (values[i], ids[i]))
    assert order == expected == [1, 4, 0, 3, 2]
    counts = np.array([3, 1, 3, 2], dtype=np.int64)
    assert ntile.ntiles(counts, np.array([4, 3, 2, 1]), 2).tolist() == [2, 1, 2, 1]


amounts = st.one_of(
    st.floats(-1e15, 1e15, allow_nan=False),
    st.decimals(-(10**14), 10**14, places=4, allow_nan=False, allow_infinity=False),
    st.decimals(-(10**14), 10**14, places=7, allow_nan=False, allow_infinity=False),
    st.integers(-(10**15), 10**15),
)


@given(amounts)
def test_money_is_what_the_money_type_returns(raw) -> None:
    assert repr(_money(raw)) == repr(money_scale(to_decimal(raw)))
