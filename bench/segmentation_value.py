"""ABC and the value pyramid on SQLite (plugin, SQL window functions) vs pandas, same data.

Default: 10,000 customers / 100,000 orders. Full size:

    .venv/bin/python bench/segmentation_value.py --customers 100000 --orders 1000000 --others

pandas reads the counted orders (placed/paid, up to as-of) and computes the same classes
with the same rules (integer ten-thousandths, ties together, the crossing customer in the
higher class); the script checks that both give every customer the same class and tier.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

import crmkit
from crmkit.core.tables import customers, orders

AS_OF = dt.date(2025, 1, 1)


def load(crm: crmkit.CRM, n_customers: int, n_orders: int) -> None:
    rng = np.random.default_rng(1)
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with crm.transaction() as ctx:
        ctx.connection.execute(
            customers.insert(),
            [
                dict(
                    id=i + 1, type="person", kind="end", status="active", name=f"C{i}",
                    region=("North", "South", "East", "West")[i % 4], attributes={},
                    created_at=now, updated_at=now,
                )
                for i in range(n_customers)
            ],
        )  # fmt: skip
        # Pareto-skewed buyers: a few customers place many orders
        weights = rng.pareto(1.2, n_customers) + 1
        cids = rng.choice(np.arange(1, n_customers + 1), n_orders, p=weights / weights.sum())
        days = rng.integers(0, 760, n_orders)  # some orders fall after as-of
        cents = rng.integers(100, 100_000, n_orders)
        cost_share = rng.uniform(0.4, 0.9, n_orders)
        ctx.connection.execute(
            orders.insert(),
            [
                dict(
                    customer_id=int(c),
                    occurred_at=now - dt.timedelta(days=int(d) - 20),
                    amount=Decimal(int(m)) / 100,
                    cost=Decimal(int(m * s)) / 100,
                    currency="EUR",
                    status="paid" if d % 50 else "cancelled",
                )
                for c, d, m, s in zip(cids, days, cents, cost_share, strict=True)
            ],
        )


def read_orders(crm: crmkit.CRM) -> pd.DataFrame:
    end = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    with crm.engine.connect() as conn:
        return pd.read_sql(
            sa.select(orders.c.customer_id, orders.c.amount, orders.c.cost).where(
                orders.c.occurred_at < end, orders.c.status.in_(("placed", "paid"))
            ),
            conn,
        )


def values(df: pd.DataFrame, measure: str) -> pd.Series:
    amount = df["amount"].astype(float)
    if measure == "margin":
        amount = amount - df["cost"].astype(float)
    units = (amount * 10_000).round().astype("int64")
    return units.groupby(df["customer_id"]).sum()


def pandas_abc(df: pd.DataFrame, measure: str) -> dict[int, str]:
    """Value ahead of each tie group (positive values only); the crossing customer is A."""
    v = values(df, measure)
    positive = v.clip(lower=0)
    per_value = positive.groupby(v).sum().sort_index(ascending=False)
    ahead = (per_value.cumsum() - per_value).reindex(v.values).to_numpy()
    total = positive.sum()
    limits = [v.to_numpy() <= 0, ahead * 100 < 80 * total, ahead * 100 < 95 * total]
    return dict(zip(v.index, np.select(limits, ["C", "A", "B"], "C"), strict=True))


def pandas_pyramid(df: pd.DataFrame, measure: str) -> dict[int, str]:
    """Customers strictly ahead against 1%, 5%, 20% of n."""
    v = values(df, measure)
    n = len(v)
    ahead = v.rank(method="min", ascending=False).to_numpy() - 1
    limits = [ahead * 100 < 1 * n, ahead * 100 < 5 * n, ahead * 100 < 20 * n]
    return dict(zip(v.index, np.select(limits, ["vip", "major", "ordinary"], "small"), strict=True))


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--db", help="SQLite file to reuse (loaded when it does not exist)")
    ap.add_argument("--others", action="store_true", help="also time matrix/breakdown/clusters")
    args = ap.parse_args()
    from crmkit_segmentation.abc import abc_classes
    from crmkit_segmentation.pyramid import value_pyramid

    path = Path(args.db) if args.db else Path(tempfile.mkdtemp()) / "bench.db"
    fresh = not path.exists()
    crm = crmkit.open(f"sqlite:///{path}", plugins=["segmentation"], upgrade=True)
    if fresh:
        _, wall, _ = timed(load, crm, args.customers, args.orders)
        print(f"loaded {args.customers} customers / {args.orders} orders in {wall:.1f}s")
    with crm.engine.connect() as conn:
        n_orders = conn.scalar(sa.select(sa.func.count()).select_from(orders))
        n_customers = conn.scalar(sa.select(sa.func.count()).select_from(customers))
    print(
        f"{n_customers} customers, {n_orders} orders; SQLite {sqlite3.sqlite_version}, "
        f"pandas {pd.__version__}; seconds as wall / CPU of this process"
    )
    head = f"{'':<22}{'plugin SQL':>16}{'pandas':>16}{'(pandas calc)':>15}{'same':>6}"
    print(head)
    for measure in ("revenue", "margin"):
        for name, ours, theirs, key in (
            ("ABC", abc_classes, pandas_abc, "class"),
            ("pyramid", value_pyramid, pandas_pyramid, "tier"),
        ):
            rows, wall, cpu = timed(ours, crm, AS_OF, measure=measure)
            df, r_wall, r_cpu = timed(read_orders, crm)
            classes, c_wall, c_cpu = timed(theirs, df, measure)
            same = {r["customer_id"]: r[key] for r in rows} == classes
            print(
                f"{name + ' by ' + measure:<22}{wall:>8.2f} /{cpu:>6.2f}"
                f"{r_wall + c_wall:>9.2f} /{r_cpu + c_cpu:>5.2f}{c_wall:>15.2f}{str(same):>6}"
            )
    counts = pd.Series([r[key] for r in rows]).value_counts().to_dict()
    print(f"customers classified: {len(rows)}; pyramid by margin {counts}")
    if args.others:
        from crmkit_segmentation.breakdown import market_breakdown
        from crmkit_segmentation.clusters import cluster_customers
        from crmkit_segmentation.matrix import value_matrix

        for name, fn in (
            ("matrix (12 months)", value_matrix),
            ("breakdown (4 dims)", market_breakdown),
            ("clusters (k 2..8)", cluster_customers),
        ):
            _, wall, cpu = timed(fn, crm, AS_OF)
            print(f"{name:<22}{wall:>8.2f} /{cpu:>6.2f}")
    crm.close()


if __name__ == "__main__":
    main()
