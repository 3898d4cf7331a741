"""Benchmark: `crmkit complaints check-sla` over many open complaints on SQLite.

    python bench/complaints_check_sla.py            # 100,000 open complaints
    python bench/complaints_check_sla.py --full     # 1,000,000 open complaints
    python bench/complaints_check_sla.py --recompute    # also time recompute-sla

One in ten complaints is unassigned, so the department fallback (the
``responsible`` setting, a CASE in the same statements) is part of the check.

The check is SQL: the due moments are stored per complaint (computed when the
complaint is logged, moved or its policy changes), so each of the four
target/level checks is an indexed range comparison ``due_at <= as_of`` plus a
NOT EXISTS against the alerts already raised. Side by side: the naive way —
load every open complaint and compute its business-hours deadline in Python
at check time — timed on a sample and extrapolated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from crmkit_complaints import tables as t
from crmkit_complaints.businesshours import Calendar
from crmkit_complaints.plugin import DEFAULTS
from crmkit_complaints.service import service
from sqlalchemy import insert

import crmkit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 open complaints")
    parser.add_argument(
        "--recompute", action="store_true", help="also time a policy change on all of them"
    )
    args = parser.parse_args()
    size = 1_000_000 if args.full else args.size
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        responsible = {"logistics": "ann", "*": "boss"}
        crm = crmkit.open(
            url,
            plugins=["complaints"],
            settings={"complaints": {"responsible": responsible}},
            upgrade=True,
        )
        crm.staff.add("boss", roles=["manager"])
        crm.staff.add("ann", roles=["complaint_handler"], manager="boss")
        customer = crm.customers.add(name="Bench Customer")
        cal = Calendar.from_dict(DEFAULTS["calendar"])
        start = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
        as_of = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)
        # a precomputed table of business-hour deadlines (received on the hour)
        hours_base = [start + dt.timedelta(hours=h) for h in range(0, 24 * 7 * 26)]
        t0 = time.perf_counter()
        batch = []
        with crm.engine.begin() as conn:
            for i in range(size):
                received = hours_base[rng.randrange(len(hours_base))]
                # most complaints are fresh: due after as_of; about 2% are late
                if rng.random() < 0.98:
                    received = as_of - dt.timedelta(hours=rng.randint(0, 3))
                fr = received + dt.timedelta(hours=8)
                res = received + dt.timedelta(hours=60)
                batch.append(
                    {
                        "customer_id": customer.id,
                        "tracking_code": f"C-bench{i}",
                        "channel": "phone",
                        "category": "delivery",
                        "department": "logistics",
                        "severity": "medium",
                        "priority": "normal",
                        "assignee": None if i % 10 == 0 else "ann",
                        "description": "bench",
                        "root_cause": "",
                        "resolution": "",
                        "stage": "received",
                        "received_at": received,
                        "paused_us": 0,
                        "first_response_target_s": 8 * 3600,
                        "resolution_target_s": 40 * 3600,
                        "warn_ratio": 0.75,
                        "clock": "business",
                        "first_response_warn_at": received + dt.timedelta(hours=6),
                        "first_response_due_at": fr,
                        "resolution_warn_at": received + dt.timedelta(hours=45),
                        "resolution_due_at": res,
                    }
                )
                if len(batch) == 20_000:
                    conn.execute(insert(t.complaints), batch)
                    batch = []
            if batch:
                conn.execute(insert(t.complaints), batch)
        print(f"loaded {size:,} open complaints in {time.perf_counter() - t0:.1f}s")
        svc = service(crm)
        t0 = time.perf_counter()
        alerts = svc.check_sla(as_of)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = svc.check_sla(as_of)
        second = time.perf_counter() - t0
        # the naive way: business-hours deadline computed in Python for every open complaint
        sample = min(size, 5_000)
        t0 = time.perf_counter()
        for i in range(sample):
            received = hours_base[i % len(hours_base)]
            cal.add(received, dt.timedelta(hours=8))
            cal.add(received, dt.timedelta(hours=40))
        naive = (time.perf_counter() - t0) / sample * size
        print(f"{'method':44} {'seconds':>10}")
        print(f"{'check-sla, stored due times (SQL), 1st run':44} {first:10.2f}  "
              f"({len(alerts):,} alerts raised)")  # fmt: skip
        print(f"{'check-sla, re-run (nothing new)':44} {second:10.2f}  ({len(again)} alerts)")
        print(f"{'naive: compute deadlines in Python (extrap.)':44} {naive:10.2f}")
        if args.recompute:
            # a policy change: new targets for every open phone complaint, computed in Python
            t0 = time.perf_counter()
            n = svc.set_policy("*", "phone", first_response_hours=6, resolution_hours=30)
            took = time.perf_counter() - t0
            label = "sla-policy: recompute every open complaint"
            print(f"{label:44} {took:10.2f}  ({n:,} changed)")
        crm.close()


if __name__ == "__main__":
    main()
