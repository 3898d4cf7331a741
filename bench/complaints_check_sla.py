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
from typing import Any

from crmkit_complaints import tables as t
from crmkit_complaints.businesshours import Calendar
from crmkit_complaints.plugin import DEFAULTS
from crmkit_complaints.service import service
from sqlalchemy import insert

import crmkit


def timed(fn: Any) -> tuple[tuple[float, float], Any]:
    """(wall seconds, CPU seconds of this process — SQLite runs in it), result."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return (time.perf_counter() - w0, time.process_time() - c0), result


def row(label: str, took: tuple[float, float], note: str) -> None:
    print(f"{label:44} {took[0]:8.2f} {took[1]:8.2f}  {note}".rstrip())


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
        first, alerts = timed(lambda: svc.check_sla(as_of))
        again_t, again = timed(lambda: svc.check_sla(as_of))

        # the naive way: business-hours deadlines computed in Python for every open complaint
        sample = min(size, 5_000)

        def naive_sample() -> None:
            for i in range(sample):
                received = hours_base[i % len(hours_base)]
                cal.add(received, dt.timedelta(hours=8))
                cal.add(received, dt.timedelta(hours=40))

        naive, _ = timed(naive_sample)
        naive = tuple(x / sample * size for x in naive)
        print(f"{'method':44} {'wall s':>8} {'cpu s':>8}")
        row("check-sla, stored due times (SQL), 1st run", first, f"{len(alerts):,} alerts raised")
        row("check-sla, re-run (nothing new)", again_t, f"{len(again)} alerts")
        row("naive: compute deadlines in Python (extrap.)", naive, "")
        if args.recompute:
            # a policy change: new targets for every open phone complaint, computed in Python
            took, n = timed(
                lambda: svc.set_policy("*", "phone", first_response_hours=6, resolution_hours=30)
            )
            row("sla-policy: recompute every open complaint", took, f"{n:,} changed")
        crm.close()


if __name__ == "__main__":
    main()
