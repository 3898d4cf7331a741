"""RFM on SQLite (segmentation plugin, SQL window functions) vs plain pandas on the same data.

Default: 10,000 customers / 100,000 orders. Full size: --customers 100000 --orders 1000000.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

import crmkit
from crmkit.core.tables import customers, orders


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--orders", type=int, default=100_000)
    args = ap.parse_args()
    from crmkit_segmentation.rfm import name_segments, rfm_scores

    tmp = Path(tempfile.mkdtemp())
    crm = crmkit.open(f"sqlite:///{tmp / 'bench.db'}", plugins=["segmentation"], upgrade=True)
    rng = np.random.default_rng(1)
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    t0 = time.perf_counter()
    with crm.transaction() as ctx:
        ctx.connection.execute(
            customers.insert(),
            [
                dict(
                    id=i + 1,
                    type="person",
                    kind="end",
                    status="active",
                    name=f"C{i}",
                    attributes={},
                    created_at=now,
                    updated_at=now,
                )
                for i in range(args.customers)
            ],
        )
        cids = rng.integers(1, args.customers + 1, args.orders)
        days = rng.integers(0, 730, args.orders)
        cents = rng.integers(100, 100_000, args.orders)
        ctx.connection.execute(
            orders.insert(),
            [
                dict(
                    customer_id=int(c),
                    occurred_at=now - dt.timedelta(days=int(d)),
                    amount=Decimal(int(m)) / 100,
                    currency="EUR",
                    status="paid",
                )
                for c, d, m in zip(cids, days, cents, strict=True)
            ],
        )
    print(
        f"loaded {args.customers} customers / {args.orders} orders in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    as_of = dt.date(2025, 1, 1)
    t0 = time.perf_counter()
    rows = name_segments(rfm_scores(crm, as_of))
    t_sql = time.perf_counter() - t0

    t0 = time.perf_counter()
    with crm.engine.connect() as conn:
        df = pd.read_sql(
            sa.select(orders.c.customer_id, orders.c.occurred_at, orders.c.amount), conn
        )
    df["amount"] = df["amount"].astype(float)
    g = df.groupby("customer_id").agg(
        last=("occurred_at", "max"), f=("amount", "size"), m=("amount", "sum")
    )
    for col, src in (("R", "last"), ("F", "f"), ("M", "m")):
        g[col] = pd.qcut(g[src].rank(method="first"), 5, labels=False) + 1
    t_pd = time.perf_counter() - t0
    print(f"{'customers scored':<22}{len(rows):>12}{len(g):>12}")
    print(f"{'RFM seconds':<22}{'plugin SQL':>12}{'pandas':>12}")
    print(f"{'':<22}{t_sql:>12.2f}{t_pd:>12.2f}")
    crm.close()


if __name__ == "__main__":
    main()
