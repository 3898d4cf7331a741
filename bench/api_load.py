"""Benchmark: `crmkit serve` under load, beside a bare ASGI app running the same SQL.

    python bench/api_load.py --postgres postgresql://postgres@127.0.0.1:54329/postgres
    python bench/api_load.py --postgres URL --customers 10000 --orders 100000 --seconds 15
    python bench/api_load.py --postgres URL --reuse          # keep the database built before

Builds (or with ``--reuse`` keeps) the PostgreSQL database ``crmkit_bench`` (``--name``) on
that server: 100,000 customers owned by 20 sales reps across 8 regions, 1,000,000 orders,
100,000 interactions, through crmkit's own fast paths (``customers.add_many``,
``orders.add_rows``: COPY on PostgreSQL, ``interactions.log_many``). A manager with an API
token (scopes ``*``) is who calls the API.

Then, one server at a time on the same database, each with ``--workers`` (2) worker
processes under uvicorn:

* ``bare``: bench/bare_asgi.py, a raw ASGI callable with psycopg's async connections and
  the same SQL statements crmkit's services run (no framework, auth, permissions, audit);
* ``crmkit``: ``crmkit serve --workers 2`` with the bench's crmkit.toml (no plugins).

``--clients`` (32) concurrent keep-alive HTTP/1.1 connections (a small asyncio client, so
the load generator costs little CPU on the same machine) send a seeded mix for
``--seconds`` after a warm-up: 70% reads (25% GET a customer, 20% a filtered customer
list ``?region=..&limit=50``, 25% the customer 360 JSON) and 30% writes (15% POST an
interaction, 15% POST an order). Prints per server requests/s, p50/p95/p99 per kind and
errors (any non-2xx or failed request; must be 0) and the CPU time the server's processes
spent per request, and how many of the clients' connections each worker took (the
workers share one listening socket, and a worker serves only the connections it took;
the clients connect once every worker has logged its start), then crmkit's throughput
as a percentage of the bare app's and crmkit's read p95 beside the issue's targets
(>= 70%, <= 50 ms). Record ``uptime`` beside the figures: on a shared machine the
throughput ratio moves with the load, the CPU per request much less. ``--rounds 2``
alternates the servers twice.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REGIONS = ["north", "south", "east", "west", "central", "northeast", "northwest", "southwest"]
REPS = [f"rep{n:02d}" for n in range(1, 21)]
CALLER = "bench_manager"
KINDS = ("get", "list", "view360", "interaction", "order")
WEIGHTS = (25, 20, 25, 15, 15)
READS = ("get", "list", "view360")

# -- building the database -------------------------------------------------------------


def database_url(server: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server).set(database=name).render_as_string(hide_password=False)


def recreate_database(server: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def _customers(count: int, rng: random.Random) -> Any:
    for n in range(1, count + 1):
        yield {
            "external_id": f"C{n:07d}",
            "name": f"Customer {n}",
            "email": f"c{n}@example.com",
            "phone": f"+86 138{n:08d}",
            "region": REGIONS[n % len(REGIONS)],
            "city": f"City {n % 97}",
            "owner": REPS[n % len(REPS)],
            "type": "organisation" if n % 10 == 0 else "person",
            "consents": {"marketing": rng.random() < 0.6} if n % 3 else {},
        }


def build(url: str, customers: int, orders: int, interactions: int, seed: int = 7) -> str:
    """Fill the empty database at ``url``; return the caller's API token."""
    import crmkit
    from crmkit.core import identity

    rng = random.Random(seed)
    started = time.perf_counter()
    crm = crmkit.open(url, plugins=[], upgrade=True)
    try:
        crm.staff.add(CALLER, "Bench Manager", roles=["manager"])
        crm.staff.add("bench_lead", "Bench Lead", roles=["sales_manager"])
        for rep in REPS:
            crm.staff.add(rep, rep.title(), roles=["sales_rep"], manager="bench_lead")
        crm.customers.add_many(_customers(customers, rng), batch_size=10_000)
        print(f"  {customers:,} customers: {time.perf_counter() - started:.1f} s", flush=True)
        ids = list(range(1, customers + 1))  # a fresh database: ids from 1 in insert order
        start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        statuses = ["paid"] * 18 + ["refunded", "cancelled"]
        batch = 200_000
        for first in range(0, orders, batch):
            rows = []
            for n in range(first + 1, min(orders, first + batch) + 1):
                amount = Decimal(int(rng.lognormvariate(8.5, 1.1))) / 100
                moment = start + dt.timedelta(seconds=rng.randrange(63_000_000))
                rows.append((
                    f"O{n:08d}", rng.choice(ids), moment,
                    amount, (amount * Decimal("0.6")).quantize(Decimal("0.01")), "CNY",
                    rng.choice(statuses), rng.choice(["web", "phone", "visit"]),
                ))  # fmt: skip
            crm.orders.add_rows(rows, customers_checked=True)
        print(f"  {orders:,} orders: {time.perf_counter() - started:.1f} s", flush=True)
        crm.interactions.log_many(
            (
                {
                    "customer_id": rng.choice(ids),
                    "channel": rng.choice(["phone", "email", "visit", "chat"]),
                    "subject": f"note {n}",
                    "occurred_at": start + dt.timedelta(seconds=rng.randrange(63_000_000)),
                    "external_id": f"I{n:08d}",
                    "staff": REPS[n % len(REPS)],
                }
                for n in range(1, interactions + 1)
            ),
            batch_size=10_000,
        )
        print(f"  {interactions:,} interactions: {time.perf_counter() - started:.1f} s", flush=True)
        token, _info = identity.create_token(crm, CALLER, scopes=["*"], name="bench")
        with crm.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    finally:
        crm.close()
    return token


def fresh_token(url: str) -> str:
    """A new API token for the bench's caller on a database built before (--reuse)."""
    import crmkit
    from crmkit.core import identity

    with crmkit.open(url, plugins=[], upgrade=True) as crm:
        return identity.create_token(crm, CALLER, scopes=["*"], name="bench")[0]


def counts(url: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders)")
        ).one()
    engine.dispose()
    return int(found[0]), int(found[1])


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: what uvicorn logs when a worker is ready to serve
STARTED = b"Application startup complete."


def wait_ready(
    port: int, process: subprocess.Popen[bytes], log: Path, workers: int, timeout: float = 60
) -> None:
    """Until /healthz answers and every worker logged its start: a worker still starting
    when the clients connect gets none of them (they share one listening socket), and the
    run would measure one worker instead of ``workers``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before answering")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answered = sock.recv(100).startswith(b"HTTP/1.1 200")
            if answered and log.read_bytes().count(STARTED) >= workers:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {port} was not ready within {timeout} s (see {log})")


def start_bare(url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    # accepting one connection at a time, as crmkit serve's workers do (crmkit/cli/serve.py)
    env = {"UV_TCP_SINGLE_ACCEPT": "1", **os.environ, "BARE_DATABASE_URL": url}
    command = [
        sys.executable, "-m", "uvicorn", "bare_asgi:app", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--log-level", "info",
    ]  # fmt: skip
    log = server_log(Path(tempfile.gettempdir()), port).open("wb")
    return subprocess.Popen(command, env=env, start_new_session=True, stdout=log, stderr=log)


def server_log(folder: Path, port: int) -> Path:
    """Where a server's output goes (crmkit's: its access log, one JSON line a request)."""
    return folder / f"server-{port}.log"


def start_crmkit(folder: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    crmkit = Path(sys.executable).with_name("crmkit")
    command = [str(crmkit), "serve", "--port", str(port), "--workers", str(workers)]
    log = server_log(folder, port).open("wb")
    return subprocess.Popen(command, cwd=folder, start_new_session=True, stdout=log, stderr=log)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# -- the load ----------------------------------------------------------------------------------

#: what each kind of request is, on both servers: method, path, body (from a customer id)
Request = tuple[str, str, dict[str, Any] | None]


def requests_for(kind: str, customer_id: int, rng: random.Random) -> Request:
    if kind == "get":
        return "GET", f"/api/v1/customers/{customer_id}", None
    if kind == "list":
        return "GET", f"/api/v1/customers?region={rng.choice(REGIONS)}&limit=50", None
    if kind == "view360":
        return "GET", f"/api/v1/customers/{customer_id}/360", None
    if kind == "interaction":
        body = {"customer_id": customer_id, "channel": "phone", "direction": "inbound",
                "subject": "bench call", "body": "asked about delivery"}  # fmt: skip
        return "POST", "/api/v1/interactions", body
    amount = f"{rng.randrange(100, 100_000) / 100:.2f}"
    body = {"customer_id": customer_id, "amount": amount, "currency": "CNY", "status": "paid",
            "channel": "web"}  # fmt: skip
    return "POST", "/api/v1/orders", body


class Connection:
    """One keep-alive HTTP/1.1 connection: just enough protocol for this bench."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.extra}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and "close" in value.lower():
                close = True
        payload = await (self._chunks() if chunked else self.reader.readexactly(length))
        if close:
            self.close()
        return status, payload

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Tally:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {k: [] for k in KINDS}
        self.errors: dict[str, int] = {k: 0 for k in KINDS}
        self.examples: list[str] = []
        self.cpu = 0.0  # CPU seconds the server's processes used while measured
        self.split: list[int] = []  # the clients' connections each worker holds
        self.system = 0.0  # the part of it in the kernel (sockets, scheduling)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {what[:300]}")


async def client(
    port: int, headers: dict[str, str], customers: int, seed: int,
    started: float, warmup: float, until: float, tally: Tally,
) -> None:  # fmt: skip
    rng = random.Random(seed)
    connection = Connection(port, headers)
    loop = asyncio.get_running_loop()
    while (now := loop.time()) < until:
        kind = rng.choices(KINDS, WEIGHTS)[0]
        method, path, body = requests_for(kind, rng.randrange(1, customers + 1), rng)
        begin = time.perf_counter()
        try:
            status, payload = await connection.request(method, path, body)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            connection.close()
            if now >= started + warmup:
                tally.error(kind, f"{type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - begin
        if now < started + warmup:
            continue
        if 200 <= status < 300:
            tally.times[kind].append(elapsed)
        else:
            tally.error(kind, f"{status} {method} {path}: {payload.decode(errors='replace')}")
    connection.close()


def cpu_seconds(root: int) -> tuple[float, float]:
    """CPU time used so far by process ``root`` and its descendants: user + system, and
    system alone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = system = 0.0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        system += int(fields[12]) / tick
    return total, system


def process_tree(root: int) -> set[int]:
    """Process ``root`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rpartition(")")[2].split()[1]
                )
            except OSError:
                continue
    tree, todo = {root}, [root]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                todo.append(pid)
    return tree


def connections_per_worker(root: int, port: int) -> list[int]:
    """How many of the clients' connections each server process holds, most first: the
    workers share one listening socket, and a worker serves only the connections it took."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].rpartition(":")[2], 16) == port:  # established
            inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in process_tree(root):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        held = sum(1 for link in links if link in inodes)
        if held:
            counts.append(held)
    return sorted(counts, reverse=True)


async def drive(port: int, headers: dict[str, str], customers: int, clients: int,
                seconds: float, warmup: float, server: int) -> Tally:  # fmt: skip
    tally = Tally()
    loop = asyncio.get_running_loop()
    started = loop.time()
    until = started + warmup + seconds
    marks: list[tuple[float, float]] = []

    def mark() -> None:
        marks.append(cpu_seconds(server))
        tally.split = connections_per_worker(server, port)

    loop.call_at(started + warmup, mark)
    await asyncio.gather(*(
        client(port, headers, customers, 1000 + n, started, warmup, until, tally)
        for n in range(clients)
    ))  # fmt: skip
    total, system = cpu_seconds(server)
    tally.cpu, tally.system = total - marks[0][0], system - marks[0][1]
    return tally


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name: str, tally: Tally, seconds: float) -> dict[str, float]:
    done = sum(len(v) for v in tally.times.values())
    errors = sum(tally.errors.values())
    rate = done / seconds
    cpu_ms = tally.cpu * 1000 / done if done else float("nan")
    system_ms = tally.system * 1000 / done if done else float("nan")
    print(
        f"\n{name}: {rate:,.0f} requests/s ({done:,} in {seconds:.0f} s), errors {errors}; "
        f"server CPU {cpu_ms:.2f} ms a request ({system_ms:.2f} ms of it in the kernel); "
        f"connections per worker: {', '.join(map(str, tally.split)) or 'not seen'}"
    )
    print(f"  {'kind':<12}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for kind in KINDS:
        values = tally.times[kind]
        print(
            f"  {kind:<12}{len(values):>8}{percentile(values, 0.5) * 1000:>9.1f}"
            f"{percentile(values, 0.95) * 1000:>9.1f}{percentile(values, 0.99) * 1000:>9.1f}"
            f"{tally.errors[kind]:>8}"
        )
    reads = [v for k in READS for v in tally.times[k]]
    writes = [v for k in KINDS if k not in READS for v in tally.times[k]]
    for label, values in (("all reads", reads), ("all writes", writes)):
        print(
            f"  {label:<12}{len(values):>8}{percentile(values, 0.5) * 1000:>9.1f}"
            f"{percentile(values, 0.95) * 1000:>9.1f}{percentile(values, 0.99) * 1000:>9.1f}"
        )
    for example in tally.examples:
        print(f"  ! {example}")
    return {"rate": rate, "errors": errors, "read_p95": percentile(reads, 0.95), "cpu_ms": cpu_ms}


def run_one(name: str, start: Callable[[int], subprocess.Popen[bytes]], log_folder: Path,
            headers: dict[str, str], args: argparse.Namespace) -> dict[str, float]:  # fmt: skip
    port = free_port()
    process = start(port)
    try:
        wait_ready(port, process, server_log(log_folder, port), args.workers)
        tally = asyncio.run(
            drive(
                port, headers, args.customers, args.clients, args.seconds, args.warmup, process.pid
            )
        )
    finally:
        stop(process)
    return report(name, tally, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--postgres", required=True, help="server URL; the bench makes its own database"
    )
    parser.add_argument("--name", default="crmkit_bench", help="the bench database's name")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, help="crmkit's [server] threads (default: the configuration's)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="bare then crmkit, this many times")
    parser.add_argument("--only", choices=["bare", "crmkit"], help="run one server only")
    parser.add_argument("--reuse", action="store_true", help="keep the database if it is filled")
    args = parser.parse_args()

    url = database_url(args.postgres, args.name)
    token = None
    if args.reuse:
        try:
            have = counts(url)
        except Exception:  # noqa: BLE001 - no such database yet: build it
            have = (0, 0)
        if have[0] >= args.customers and have[1] >= args.orders:
            args.customers = have[0]
            print(f"reusing {args.name}: {have[0]:,} customers, {have[1]:,} orders")
            token = fresh_token(url)
    if token is None:
        print(f"building {args.name}: {args.customers:,} customers, {args.orders:,} orders")
        recreate_database(args.postgres, args.name)
        token = build(url, args.customers, args.orders, args.interactions)
    print(f"machine: {os.cpu_count()} CPUs; load before: {os.getloadavg()}")
    folder = Path(tempfile.mkdtemp(prefix="crmkit-bench-"))
    toml = f'database = "{url}"\nplugins = []\n'
    if args.threads:
        toml += f"\n[server]\nthreads = {args.threads}\n"
    (folder / "crmkit.toml").write_text(toml, encoding="utf-8")
    headers = {"Authorization": f"Bearer {token}"}
    results: dict[str, list[dict[str, float]]] = {"bare": [], "crmkit": []}
    for _ in range(args.rounds):
        if args.only != "crmkit":
            results["bare"].append(
                run_one(
                    "bare ASGI",
                    lambda p: start_bare(url, p, args.workers),
                    Path(tempfile.gettempdir()),
                    {},
                    args,
                )  # fmt: skip
            )
        if args.only != "bare":
            results["crmkit"].append(
                run_one(
                    "crmkit serve",
                    lambda p: start_crmkit(folder, p, args.workers),
                    folder,
                    headers,
                    args,
                )  # fmt: skip
            )
    print(f"\nload after: {os.getloadavg()}")
    if results["bare"] and results["crmkit"]:
        bare = sum(r["rate"] for r in results["bare"]) / len(results["bare"])
        ours = sum(r["rate"] for r in results["crmkit"]) / len(results["crmkit"])
        p95 = max(r["read_p95"] for r in results["crmkit"]) * 1000
        print(f"crmkit throughput: {ours / bare:.0%} of the bare app's (target >= 70%)")
        print(f"crmkit read p95: {p95:.1f} ms (target <= 50 ms)")
        bare_cpu = sum(r["cpu_ms"] for r in results["bare"]) / len(results["bare"])
        our_cpu = sum(r["cpu_ms"] for r in results["crmkit"]) / len(results["crmkit"])
        print(
            f"server CPU a request: crmkit {our_cpu:.2f} ms, bare {bare_cpu:.2f} ms: "
            f"{bare_cpu / our_cpu:.0%} (the throughput ratio on an idle machine with CPU "
            "the limit; the database's own CPU not counted)"
        )
    if any(r["errors"] for rs in results.values() for r in rs):
        raise SystemExit("errors: see above")


if __name__ == "__main__":
    main()
