"""Benchmark: ``crmkit import orders`` with the loyalty plugin enabled vs without it.

    python bench/loyalty_import.py                    # 1,000,000 orders, SQLite
    python bench/loyalty_import.py --orders 100000    # a quicker run
    python bench/loyalty_import.py --postgres postgresql://postgres@127.0.0.1:54329/postgres

Generates one seeded orders CSV (with a channel column) and the customers it
references, then builds two fresh databases with the same customers:

* **core**: no plugins;
* **loyalty**: the loyalty plugin enabled, the retail-club example program
  loaded (spend rule with category/channel multipliers and a minimum spend, a
  December campaign, a bonus on every 10th order, three tiers on spend over
  12 months) and every customer enrolled before the import.

Each database then gets the same file through ``crmkit import orders`` as a
subprocess (the command a user runs). Earning rides on the core's
``crmkit_after_orders_created`` event: one call per imported batch, a handful
of set-based statements per batch (``crmkit_loyalty.setbased``). The script
prints both times side by side, the time the plugin adds and the ratio
(target: loyalty <= 1.5x core) in wall time and in CPU time (with PostgreSQL on this
machine also the CPU time of the server's backends, where most of the work is),
then checks the result: ledger entries written, every balance equal to the sum of
its ledger, and that a second import of the same file earns nothing more.

Between the steps (untimed) the script lets the machine settle, so that no
import is timed while the previous one's data is still being written out: on
PostgreSQL it runs ``VACUUM ANALYZE`` (or autovacuum would do it during the
next import) and ``CHECKPOINT``, and on both backends it flushes the kernel's
dirty pages (``os.sync``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ["store"] * 6 + ["web"] * 3 + ["phone"]
#: loyalty's import time over the plain import's (crmkit issue 16)
TARGET = 1.5


def generate(path: Path, orders: int, customers: int, seed: int) -> None:
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    span = 2 * 365 * 86400
    statuses = ["paid"] * 18 + ["refunded", "cancelled"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            ["external_id", "customer", "occurred_at", "amount", "currency", "status", "channel"]
        )
        for n in range(1, orders + 1):
            moment = start + dt.timedelta(seconds=rng.randrange(span))
            cents = int(rng.lognormvariate(8.0, 1.1))
            writer.writerow(
                [
                    f"O{n:08d}",
                    f"C{rng.randrange(1, customers + 1):06d}",
                    moment.isoformat(),
                    f"{cents // 100}.{cents % 100:02d}",
                    "EUR",
                    rng.choice(statuses),
                    rng.choice(CHANNELS),
                ]
            )


def fresh_database(kind: str, folder: Path, postgres: str | None) -> tuple[str, Any]:
    """A new empty database URL and a function that drops it (PostgreSQL) or nothing."""
    if not postgres:
        path = folder / f"{kind}.db"
        for leftover in folder.glob(f"{kind}.db*"):
            leftover.unlink()
        return f"sqlite:///{path}", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"crmkit_bench_{kind}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    return url, drop


def prepare(url: str, plugins: list[str], customers: int) -> None:
    import crmkit

    crm = crmkit.open(url, plugins=plugins, upgrade=True)
    try:
        crm.customers.add_many(
            {"external_id": f"C{n:06d}", "name": f"Customer {n}"} for n in range(1, customers + 1)
        )
        if plugins:
            from crmkit_loyalty import loyalty
            from crmkit_loyalty.plugin import EXAMPLES

            service = loyalty(crm)
            service.load_program_file(EXAMPLES / "retail_club.toml")
            ids = [c.id for c in crm.customers.iterate()]
            service.enrol_many(ids, at=dt.datetime(2024, 12, 1, tzinfo=dt.UTC))
    finally:
        crm.close()


def settle(url: str) -> None:
    """Untimed: leave nothing of the last step to be written out during the next one."""
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("VACUUM ANALYZE"))
            connection.execute(text("CHECKPOINT"))
        engine.dispose()
    os.sync()


def _server(seconds: float | None) -> str:
    return f" + {seconds:6.2f} s server CPU" if seconds is not None else ""


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ServerCPU:
    """The CPU time of the PostgreSQL backends serving one import (sampled from
    ``/proc/<pid>/schedstat`` every 20 ms while it runs, so only when the server runs on
    this machine): on PostgreSQL the import's work is mostly there, and unlike wall time
    it hardly moves with the load of the other processes sharing the cores."""

    def __init__(self, url: str, name: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.name = name
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        from sqlalchemy import text

        query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
        with self.engine.connect() as connection:
            while not self.stop.wait(0.02):
                for pid in connection.scalars(query, {"name": self.name}):
                    try:
                        with open(f"/proc/{pid}/schedstat") as handle:
                            self.seen[pid] = int(handle.read().split()[0]) / 1e9
                    except (OSError, ValueError):  # exited, or another machine's pid
                        pass

    def __enter__(self) -> ServerCPU:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()

    @property
    def seconds(self) -> float | None:
        return sum(self.seen.values()) if self.seen else None


def run_import(url: str, plugins: str, csv_path: Path) -> tuple[float, float, str, float | None]:
    """Wall time, CPU time of the crmkit process, its summary line and (PostgreSQL on this
    machine) the CPU time of the server's backends serving it."""
    env = {**os.environ, "CRMKIT_PLUGINS": plugins}
    script = shutil.which("crmkit") or str(Path(sys.executable).parent / "crmkit")
    server: Any = contextlib.nullcontext()
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        name = f"crmkit-bench-{uuid.uuid4().hex[:8]}"
        server = ServerCPU(url, name)  # (its own connection is not named so)
        named = make_url(url).update_query_dict({"application_name": name})
        url = named.render_as_string(hide_password=False)
    command = [script, "--database", url, "import", "orders", str(csv_path)]
    cpu = child_cpu()
    with server:
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        raise SystemExit(f"crmkit import failed ({plugins or 'no plugins'})")
    seconds = server.seconds if isinstance(server, ServerCPU) else None
    return elapsed, child_cpu() - cpu, done.stdout.strip().splitlines()[-1], seconds


def check(url: str) -> tuple[int, int, int]:
    """(ledger entries, members, members whose balance differs from their ledger sum)."""
    from crmkit_loyalty import tables as t
    from sqlalchemy import func, select

    import crmkit

    crm = crmkit.open(url, plugins=["loyalty"])
    try:
        with crm.reading() as connection:
            entries = connection.scalar(select(func.count()).select_from(t.ledger))
            sums = (
                select(t.ledger.c.member_id, func.sum(t.ledger.c.points).label("total"))
                .group_by(t.ledger.c.member_id)
                .subquery()
            )
            rows = connection.execute(
                select(t.members.c.balance, sums.c.total).outerjoin(
                    sums, sums.c.member_id == t.members.c.id
                )
            ).all()
    finally:
        crm.close()
    wrong = sum(1 for balance, total in rows if int(balance) != int(total or 0))
    return int(entries), len(rows), wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", help="server URL: run on PostgreSQL instead of SQLite")
    parser.add_argument("--keep", help="folder to keep the files in (default: a temp folder)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    folder = Path(args.keep or tempfile.mkdtemp(prefix="crmkit-loyalty-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "orders.csv"
    t0 = time.perf_counter()
    generate(csv_path, args.orders, args.customers, args.seed)
    size_mb = csv_path.stat().st_size / 1e6
    print(f"generated {args.orders:,} orders ({size_mb:.1f} MB) for {args.customers:,} customers "
          f"in {time.perf_counter() - t0:.1f}s")  # fmt: skip
    backend = "PostgreSQL" if args.postgres else "SQLite"

    drops = []
    try:
        core_url, drop = fresh_database("core", folder, args.postgres)
        drops.append(drop)
        loyalty_url, drop = fresh_database("loyalty", folder, args.postgres)
        drops.append(drop)
        prepare(core_url, [], args.customers)
        prepare(loyalty_url, ["loyalty"], args.customers)
        settle(core_url)
        settle(loyalty_url)
        print(f"{backend}: two databases with {args.customers:,} customers "
              "(the loyalty one: retail-club program, every customer enrolled)")  # fmt: skip

        core_time, core_cpu, core_out, core_server = run_import(core_url, "", csv_path)
        settle(core_url)
        print(f"crmkit import orders, no plugins:       {core_time:8.2f} s wall "
              f"{core_cpu:8.2f} s CPU{_server(core_server)}   {core_out}")  # fmt: skip
        loyalty_time, loyalty_cpu, loyalty_out, loyalty_server = run_import(
            loyalty_url, "loyalty", csv_path
        )
        settle(loyalty_url)
        print(f"crmkit import orders, loyalty enabled:  {loyalty_time:8.2f} s wall "
              f"{loyalty_cpu:8.2f} s CPU{_server(loyalty_server)}   {loyalty_out}")  # fmt: skip
        added_server = loyalty_server - core_server if loyalty_server and core_server else None
        print(f"added by loyalty:                       {loyalty_time - core_time:8.2f} s wall "
              f"{loyalty_cpu - core_cpu:8.2f} s CPU{_server(added_server)}")  # fmt: skip
        ratio = loyalty_time / core_time
        verdict = "within" if ratio <= TARGET else "OVER"
        cpu_ratio = f"{loyalty_cpu / core_cpu:6.2f}x CPU"
        if loyalty_server and core_server:  # the work of both processes, client and server
            total = (loyalty_cpu + loyalty_server) / (core_cpu + core_server)
            cpu_ratio += f" {total:6.2f}x CPU of crmkit + server"
        print(f"ratio loyalty / core:                   {ratio:8.2f}x wall "
              f"{cpu_ratio}  ({verdict} {TARGET}x, wall)")  # fmt: skip
        print(f"orders per second: core {args.orders / core_time:,.0f}, "
              f"loyalty {args.orders / loyalty_time:,.0f}")  # fmt: skip

        entries, members, wrong = check(loyalty_url)
        print(f"ledger entries written: {entries:,}; members: {members:,}; "
              f"balances != ledger sum: {wrong}")  # fmt: skip
        again_time, _, again_out, _ = run_import(loyalty_url, "loyalty", csv_path)
        entries_after, _, wrong_after = check(loyalty_url)
        print(f"second import of the same file:         {again_time:8.2f} s   {again_out}; "
              f"new ledger entries: {entries_after - entries}")  # fmt: skip
        if wrong or wrong_after or entries_after != entries:
            raise SystemExit("ledger check failed")
    finally:
        for drop in drops:
            drop()
        if not args.keep:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
