"""Earning on the core's bulk import: one pass per chunk of batches, the same result as order by
order."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from crmkit_loyalty import deferred, loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, program
from sqlalchemy import Engine, event, select

import crmkit
from crmkit.testing import run_cli

# no earn multipliers on tiers: earning does not depend on when an upgrade lands
TIERS = [{"name": "bronze", "threshold": 0}, {"name": "silver", "threshold": 1900}]


class Counter:
    """Counts the points-earned events (one per imported batch that earned)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_after_points_earned(self, ctx: Any, entries: Any) -> None:
        self.calls.append(len(entries))


def _orders(rng: random.Random, customers: int, count: int) -> list[tuple[Any, ...]]:
    start = at(2025, 1, 1)
    rows = [
        (
            f"O{n}",
            f"{rng.randrange(customers)}",
            start + dt.timedelta(minutes=rng.randrange(400_000)),
            f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}",
        )
        for n in range(count)
    ]
    return sorted(rows, key=lambda r: r[2])  # in time order: the Nth order is the same both ways


@pytest.mark.parametrize(
    ("chunk", "calls"),
    [
        (1, 8),  # every batch earns as it is stored: ceil(150 / 20) calls
        (50, 3),  # kept until 50 orders wait: 3 batches (60 orders), 3 more, the last 2
        (deferred.CHUNK_ORDERS, 1),  # all kept until the import commits
    ],
)
def test_import_earns_once_per_chunk_like_single_orders(
    make_crm: Any,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
    calls: int,
) -> None:
    """An import's batches of 20 earn set-based, kept until ``chunk`` orders wait
    (crmkit_loyalty.deferred): one points-earned event and a fixed number of statements
    per chunk, the same points as orders stored one by one."""
    monkeypatch.setattr(deferred, "CHUNK_ORDERS", chunk)
    rng = random.Random(11)
    rows = _orders(rng, customers=12, count=150)
    counter = Counter()
    crm = make_crm(plugins=["loyalty", counter])
    service = loyalty(crm)
    service.load_program(program(tiers=TIERS, auto_enrol=True))
    # the same order history twice: B customers through the importer, S customers one by one
    crm.customers.add_many(
        {"external_id": f"{side}{i}", "name": f"{side}{i}"} for side in "BS" for i in range(12)
    )
    ids = {c.external_id: c.id for c in crm.customers.iterate()}
    path = tmp_path / "orders.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "customer", "occurred_at", "amount"])
        writer.writerows([(e, "B" + c, when.isoformat(), amount) for e, c, when, amount in rows])

    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    # `crmkit import` opens its own CRM (and engine) on the database: listen on every engine
    event.listen(Engine, "before_cursor_execute", record)
    try:
        result = run_cli(
            ["import", "orders", str(path), "--batch-size", "20"],
            database=database_url,
            plugins=["loyalty", counter],
        )
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert result.exit_code == 0, result.output
    assert "read 150, stored 150," in result.output
    assert len(counter.calls) == calls  # one event per chunk
    assert sum(counter.calls) == len(_earn_entries(crm))
    # the plugin's writes per chunk do not grow with the chunk: no statement per order
    ledger = [s for s in statements if s.lstrip().startswith("INSERT INTO loyalty_ledger")]
    # per chunk: one INSERT ... SELECT per rule (2), and one executemany (SQLite; a page or
    # two on PostgreSQL) for the members earning order by order: with a points measure,
    # those whose tier moves up within the chunk
    assert len(ledger) <= calls * 4

    for _, customer, when, amount in rows:
        crm.orders.add(customer_id=ids["S" + customer], amount=amount, occurred_at=when)
    for i in range(12):
        b, s = service.member(ids[f"B{i}"]), service.member(ids[f"S{i}"])
        assert (b.balance, b.tier, b.orders_count) == (s.balance, s.tier, s.orders_count), i
    assert {service.member(ids[f"B{i}"]).tier for i in range(12)} == {"bronze", "silver"}
    assert_consistent(service)


def _earn_entries(crm: Any) -> list[Any]:
    with crm.reading() as connection:
        return connection.execute(select(t.ledger).where(t.ledger.c.kind == "earn")).all()
