"""An import's batches leave their members' counters pending until the import commits
(crmkit_loyalty.pending): every read in the same transaction sees them whole, and a
rollback, of the transaction or a savepoint, takes them away with the rest."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from crmkit_loyalty import loyalty, pending
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, program
from sqlalchemy import select

from crmkit.transfer import import_file

# spend measure (the spend bound and the order count are read by every batch), an nth-order
# bonus (the order count), tier multipliers (the tier)
PROGRAM = program(
    qualification={"measure": "spend", "window_months": 12},
    tiers=[
        {"name": "bronze", "threshold": 0},
        {"name": "silver", "threshold": 600, "earn_multiplier": "1.5"},
        {"name": "gold", "threshold": 2500, "earn_multiplier": "2"},
    ],
)
CUSTOMERS = 8


def _rows(seed: int, count: int) -> list[tuple[str, str, dt.datetime, str]]:
    rng = random.Random(seed)
    start = at(2025, 1, 1)
    rows = [
        (
            f"O{seed}-{n}",
            str(rng.randrange(CUSTOMERS)),
            start + dt.timedelta(minutes=rng.randrange(400_000)),
            f"{rng.randint(1, 300)}.{rng.randint(0, 99):02d}",
        )
        for n in range(count)
    ]
    return sorted(rows, key=lambda r: r[2])


def _csv(path: Path, rows: list[tuple[str, str, dt.datetime, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "customer", "occurred_at", "amount"])
        writer.writerows([(e, "B" + c, when.isoformat(), amount) for e, c, when, amount in rows])
    return path


@pytest.fixture
def club(make_crm: Any) -> tuple[Any, Any, dict[str, int]]:
    """B customers get orders imported, S customers the same orders one by one."""
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(PROGRAM)
    crm.customers.add_many(
        {"external_id": f"{side}{i}", "name": f"{side}{i}"}
        for side in "BS"
        for i in range(CUSTOMERS)
    )
    ids = {c.external_id: c.id for c in crm.customers.iterate()}
    service.enrol_many(sorted(ids.values()), at=at(2024, 12, 1))
    return crm, service, ids


def _stored_balances(ctx: Any) -> dict[int, int]:
    m = t.members.c
    return dict(ctx.connection.execute(select(m.customer_id, m.balance)).all())


def _same_both_sides(service: Any, ids: dict[str, int]) -> None:
    for i in range(CUSTOMERS):
        b, s = service.member(ids[f"B{i}"]), service.member(ids[f"S{i}"])
        assert (b.balance, b.tier, b.orders_count) == (s.balance, s.tier, s.orders_count), i
    assert_consistent(service)


def _one_by_one(crm: Any, ids: dict[str, int], rows: list[Any]) -> None:
    for _, customer, when, amount in rows:
        crm.orders.add(customer_id=ids["S" + customer], amount=amount, occurred_at=when)


def test_counters_wait_for_the_commit_and_every_read_sees_them_whole(club, tmp_path: Path):
    crm, service, ids = club
    rows = _rows(1, 100)
    first, second = rows[:60], rows[60:]
    with crm.transaction() as ctx:
        before = _stored_balances(ctx)
        import_file(crm, "orders", _csv(tmp_path / "a.csv", first), batch_size=7)
        # the batches wrote the ledger; the members' rows wait for the commit ...
        assert _stored_balances(ctx) == before
        assert pending.table(ctx.connection) is not None
        # ... but the service reads them whole (it writes them first)
        sums = service.ledger_sums()
        assert all(balance == total for balance, total in sums.values())
        assert sum(total for _, total in sums.values()) > 0
        assert _stored_balances(ctx) == {cid: balance for cid, (balance, _) in sums.items()}
        assert pending.table(ctx.connection) is None
        # more batches after that, and one order earning order by order among them
        import_file(crm, "orders", _csv(tmp_path / "b.csv", second[:20]), batch_size=6)
        _, customer, when, amount = second[20]
        crm.orders.add(customer_id=ids["B" + customer], amount=amount, occurred_at=when)
        import_file(crm, "orders", _csv(tmp_path / "c.csv", second[21:]), batch_size=6)
    _one_by_one(crm, ids, first + second)
    _same_both_sides(service, ids)
    assert {service.member(ids[f"B{i}"]).tier for i in range(CUSTOMERS)} - {"bronze"}


def test_the_counters_are_written_once_before_the_import_commits(club, tmp_path: Path):
    crm, service, ids = club
    rows = _rows(3, 80)
    result = import_file(crm, "orders", _csv(tmp_path / "a.csv", rows), batch_size=9)
    assert result.stored == 80
    _one_by_one(crm, ids, rows)
    _same_both_sides(service, ids)


def test_a_rollback_takes_the_pending_counters_with_it(club, tmp_path: Path):
    crm, service, ids = club
    rows = _rows(4, 50)
    path = _csv(tmp_path / "a.csv", rows)
    # one connection for every transaction below: nothing of the rolled-back one may stay
    with crm.connection_scope():
        with pytest.raises(RuntimeError), crm.transaction():
            import_file(crm, "orders", path, batch_size=8)
            raise RuntimeError("abort")
        assert crm.orders.list() == []
        assert {balance for balance, _ in service.ledger_sums().values()} == {0}
        with crm.transaction() as ctx:
            with pytest.raises(RuntimeError), ctx.connection.begin_nested():
                import_file(crm, "orders", path, batch_size=8)
                raise RuntimeError("abort the savepoint")
            import_file(crm, "orders", path, batch_size=8)
    _one_by_one(crm, ids, rows)
    _same_both_sides(service, ids)
