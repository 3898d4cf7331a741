"""RFM (segmentation plugin) vs plain pandas on the same data, side by side in one run.

    python bench/segmentation_rfm.py                                  # 10,000 / 100,000, SQLite
    python bench/segmentation_rfm.py --customers 100000 --orders 1000000 \\
        --postgres postgresql://postgres@127.0.0.1:54329/postgres     # SQLite, then PostgreSQL

Each backend gets a fresh database (SQLite: a temporary file; PostgreSQL: a database of its
own on that server, dropped at the end) loaded with the same seeded random customers and
orders by direct Core inserts; PostgreSQL is then vacuumed, as autovacuum does after a bulk
load. Timed, alternating, ``--repeat`` times each (median printed):

* crmkit: ``name_segments(rfm_scores(crm, as_of))``, scores and named segments per customer;
* the floor, pandas: read the orders through crmkit's engine (``pd.read_sql``), then
  ``groupby`` + ``qcut`` of the ranks: what a user would have to do without the plugin;
* for context only, pandas reading the orders with a plain SQL text query (the driver's
  own types instead of crmkit's Decimal and aware datetimes).

Target (issue 16): crmkit at least 5x faster than the floor, on both backends.
pandas is not a crmkit dependency: ``pip install pandas`` to run this.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

import crmkit
from crmkit.core.db import normalise_url
from crmkit.core.tables import customers, orders

AS_OF = dt.date(2025, 1, 1)
TARGET = 5.0


def load(crm: crmkit.CRM, n_customers: int, n_orders: int) -> None:
    rng = np.random.default_rng(1)
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
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
                for i in range(n_customers)
            ],
        )
        cids = rng.integers(1, n_customers + 1, n_orders)
        days = rng.integers(0, 730, n_orders)
        cents = rng.integers(100, 100_000, n_orders)
        for start in range(0, n_orders, 50_000):
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
                    for c, d, m in zip(
                        cids[start : start + 50_000],
                        days[start : start + 50_000],
                        cents[start : start + 50_000],
                        strict=True,
                    )
                ],
            )


def crmkit_rfm(crm: crmkit.CRM) -> int:
    from crmkit_segmentation.rfm import name_segments, rfm_scores

    return len(name_segments(rfm_scores(crm, AS_OF)))


def _qcut(df: pd.DataFrame) -> int:
    g = df.groupby("customer_id").agg(
        last=("occurred_at", "max"), f=("amount", "size"), m=("amount", "sum")
    )
    for col, src in (("R", "last"), ("F", "f"), ("M", "m")):
        g[col] = pd.qcut(g[src].rank(method="first"), 5, labels=False) + 1
    return len(g)


def pandas_rfm(crm: crmkit.CRM) -> int:
    with crm.engine.connect() as conn:
        df = pd.read_sql(
            sa.select(orders.c.customer_id, orders.c.occurred_at, orders.c.amount), conn
        )
    df["amount"] = df["amount"].astype(float)
    return _qcut(df)


def pandas_plain_sql(crm: crmkit.CRM) -> int:
    with crm.engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT customer_id, occurred_at, amount FROM orders"), conn)
    df["amount"] = df["amount"].astype(float)
    return _qcut(df)


def timed(action: Callable[[crmkit.CRM], int], crm: crmkit.CRM) -> tuple[float, int]:
    t0 = time.perf_counter()
    count = action(crm)
    return time.perf_counter() - t0, count


def run(label: str, url: str, args: argparse.Namespace) -> None:
    crm = crmkit.open(url, plugins=["segmentation"], upgrade=True)
    t0 = time.perf_counter()
    load(crm, args.customers, args.orders)
    if crm.engine.dialect.name == "postgresql":
        with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    print(
        f"\n{label}: loaded {args.customers:,} customers / {args.orders:,} orders in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    sides = {
        "crmkit": crmkit_rfm,
        "pandas (floor)": pandas_rfm,
        "pandas, SQL text": pandas_plain_sql,
    }
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    counts = {}
    for _ in range(args.repeat):
        for name, action in sides.items():
            took, counts[name] = timed(action, crm)
            seconds[name].append(took)
    crm.close()
    median = {name: statistics.median(s) for name, s in seconds.items()}
    floor = median["pandas (floor)"]
    print(f"{'':<20}{'customers':>10}{'median s':>10}{'floor / it':>12}   runs (s)")
    for name, s in seconds.items():
        runs = " ".join(f"{x:.2f}" for x in s)
        print(
            f"{name:<20}{counts[name]:>10,}{median[name]:>10.2f}"
            f"{floor / median[name]:>11.1f}x   {runs}"
        )
    ratio = floor / median["crmkit"]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"crmkit is {ratio:.1f}x faster than the pandas floor: target >= {TARGET:.0f}x {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (median)")
    ap.add_argument("--postgres", metavar="URL", help="also run on a fresh database there")
    args = ap.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    run("SQLite", f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}", args)
    if args.postgres:
        server = sa.make_url(normalise_url(args.postgres))
        name = f"crmkit_bench_rfm_{os.getpid()}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            run("PostgreSQL", server.set(database=name).render_as_string(False), args)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
