"""Benchmark: segmentation snapshots (RFM + store + compare), diff and current segments.

    python bench/segmentation_snapshots.py                       # 10,000 customers, 100,000 orders
    python bench/segmentation_snapshots.py --customers 100000 --orders 1000000

Builds a seeded SQLite database (customers and orders inserted with SQLAlchemy Core), then
times, in one run: RFM alone, a first snapshot, a second snapshot a quarter later (which
compares with the first and announces the changed customers), the movement matrix between
them, and reading 1,000 customers' current segments (what the complaints plugin asks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import crmkit
from crmkit.core.tables import customers, orders


def build(url: str, n_customers: int, n_orders: int, seed: int) -> crmkit.CRM:
    crm = crmkit.open(url, plugins=["segmentation"], upgrade=True)
    rng = random.Random(seed)
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with crm.transaction() as ctx:
        ctx.connection.execute(
            customers.insert(),
            [
                {"id": i, "type": "person", "kind": "end", "status": "active",
                 "name": f"Customer {i}", "attributes": {}, "created_at": now, "updated_at": now}
                for i in range(1, n_customers + 1)
            ],
        )  # fmt: skip
        batch = []
        for _ in range(n_orders):
            batch.append(
                {
                    "customer_id": rng.randint(1, n_customers),
                    "occurred_at": now - dt.timedelta(days=rng.randrange(730)),
                    "amount": Decimal(rng.randrange(100, 100_000)) / 100,
                    "currency": "EUR",
                    "status": "paid",
                }
            )
            if len(batch) == 50_000:
                ctx.connection.execute(orders.insert(), batch)
                batch.clear()
        if batch:
            ctx.connection.execute(orders.insert(), batch)
    return crm


def timed(label: str, action):  # noqa: ANN001, ANN201 - a tiny timing helper
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    print(
        f"{label:<48} {time.perf_counter() - wall:7.2f} s wall "
        f"{time.process_time() - cpu:7.2f} s CPU"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from crmkit_segmentation import snapshots as snaps
    from crmkit_segmentation.schemes import rfm_rows

    folder = Path(tempfile.mkdtemp(prefix="crmkit-bench-"))
    url = f"sqlite:///{folder / 'bench.db'}"
    crm = timed(
        f"build {args.customers:,} customers / {args.orders:,} orders",
        lambda: build(url, args.customers, args.orders, args.seed),
    )
    first, second = dt.date(2024, 10, 1), dt.date(2025, 1, 1)
    rows = timed("RFM alone (SQL, named segments)", lambda: rfm_rows(crm, second, {}))
    a = timed(f"snapshot rfm as of {first}", lambda: snaps.take_snapshot(crm, "rfm", first))
    b = timed(
        f"snapshot rfm as of {second} (compare)", lambda: snaps.take_snapshot(crm, "rfm", second)
    )
    print(f"  {len(rows):,} customers scored; second snapshot announced {b.changed:,} changes")
    timed("diff (movement matrix)", lambda: snaps.movement(crm, a.id, b.id))
    timed(
        "current segments of 1,000 customers", lambda: snaps.current_segments(crm, range(1, 1001))
    )
    crm.close()


if __name__ == "__main__":
    main()
