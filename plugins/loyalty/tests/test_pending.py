"""An import's batches leave their members' counters pending until the import commits
(crmkit_loyalty.pending): every read in the same transaction sees them whole, and a
rollback, of the transaction or a savepoint, takes them away with the rest.

The batches an import keeps to earn together (crmkit_loyalty.deferred) earn before any
read, before an order earns order by order and before the commit; a rolled-back
savepoint takes the batches it stored with it. The pending tests let every batch earn
as it is stored (``per_batch``)."""

from __future__ import annotations

import csv
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from crmkit_loyalty import deferred, loyalty, pending
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, program
from sqlalchemy import select

from crmkit.testing import import_file

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


def _import(crm: Any, ids: dict[str, int], rows: list[Any], batch_size: int) -> None:
    """The B customers' orders through the importer's path: batches of crmkit.StoredOrders
    (each ``add_rows`` joins the running transaction, as the importer's batches do)."""
    with crm.transaction():
        for start in range(0, len(rows), batch_size):
            crm.orders.add_rows(
                [
                    (e, ids["B" + c], when, Decimal(amount), None, "EUR", "paid", None)
                    for e, c, when, amount in rows[start : start + batch_size]
                ]
            )


@pytest.fixture
def per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch of an import earns as it is stored (no batch kept for later)."""
    monkeypatch.setattr(deferred, "CHUNK_ORDERS", 1)


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


@pytest.mark.usefixtures("per_batch")
def test_counters_wait_for_the_commit_and_every_read_sees_them_whole(club):
    crm, service, ids = club
    rows = _rows(1, 100)
    first, second = rows[:60], rows[60:]
    with crm.transaction() as ctx:
        before = _stored_balances(ctx)
        _import(crm, ids, first, 7)
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
        _import(crm, ids, second[:20], 6)
        _, customer, when, amount = second[20]
        crm.orders.add(customer_id=ids["B" + customer], amount=amount, occurred_at=when)
        _import(crm, ids, second[21:], 6)
    _one_by_one(crm, ids, first + second)
    _same_both_sides(service, ids)
    assert {service.member(ids[f"B{i}"]).tier for i in range(CUSTOMERS)} - {"bronze"}


@pytest.mark.usefixtures("per_batch")
def test_the_counters_are_written_once_before_the_import_commits(club):
    crm, service, ids = club
    rows = _rows(3, 80)
    _import(crm, ids, rows, 9)
    _one_by_one(crm, ids, rows)
    _same_both_sides(service, ids)


@pytest.mark.usefixtures("per_batch")
def test_a_rollback_takes_the_pending_counters_with_it(club):
    crm, service, ids = club
    rows = _rows(4, 50)
    # one connection for every transaction below: nothing of the rolled-back one may stay
    with crm.connection_scope():
        with pytest.raises(RuntimeError), crm.transaction():
            _import(crm, ids, rows, 8)
            raise RuntimeError("abort")
        assert crm.orders.list() == []
        assert {balance for balance, _ in service.ledger_sums().values()} == {0}
        with crm.transaction() as ctx:
            with pytest.raises(RuntimeError), ctx.connection.begin_nested():
                _import(crm, ids, rows, 8)
                raise RuntimeError("abort the savepoint")
            _import(crm, ids, rows, 8)
    _one_by_one(crm, ids, rows)
    _same_both_sides(service, ids)


def _locked(url: str, member_ids: list[int]) -> set[int]:
    """The members another session cannot lock now (PostgreSQL: FOR UPDATE NOWAIT each)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(url)
    locked = set()
    try:
        with engine.connect() as other:
            for member_id in member_ids:
                with other.begin():
                    try:
                        other.execute(
                            text("SELECT id FROM loyalty_members WHERE id = :id FOR UPDATE NOWAIT"),
                            {"id": member_id},
                        )
                    except OperationalError as exc:
                        assert "could not obtain lock" in str(exc)
                        locked.add(member_id)
    finally:
        engine.dispose()
    return locked


@pytest.mark.usefixtures("per_batch")
def test_every_member_of_an_import_stays_locked_until_it_commits(
    club: Any, database_url: str
) -> None:
    """Each batch locks the members no earlier batch locked (setbased._lock_members); a
    member locked by the first batch is not locked again and stays locked through the
    second, so no other transaction changes a counter or tier the batches read."""
    crm, service, ids = club
    if crm.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transaction locks the whole database")
    member = {i: service.member(ids[f"B{i}"]).id for i in range(CUSTOMERS)}
    when = at(2025, 3, 1)
    first = [("L1", "0", when, "10.00"), ("L2", "1", when, "20.00")]
    second = [("L3", "1", when, "30.00"), ("L4", "2", when, "40.00")]
    with crm.transaction():
        _import(crm, ids, first, 10)
        assert _locked(database_url, list(member.values())) == {member[0], member[1]}
        _import(crm, ids, second, 10)
        assert _locked(database_url, list(member.values())) == {member[0], member[1], member[2]}
    assert _locked(database_url, list(member.values())) == set()
    assert [service.member(ids[f"B{i}"]).orders_count for i in range(4)] == [1, 2, 1, 0]


def _earned(ctx: Any) -> int:
    """Earn entries in the ledger, read in the transaction (no service method: none runs)."""
    return len(ctx.connection.execute(select(t.ledger.c.id).where(t.ledger.c.kind == "earn")).all())


def _import_file(crm: Any, rows: list[Any], batch_size: int, folder: Path) -> None:
    """The B customers' orders through the importer (crmkit.testing.import_file): it
    joins the running transaction once and stores its batches without joining again."""
    path = folder / f"{rows[0][0]}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "customer", "occurred_at", "amount"])
        writer.writerows([(e, "B" + c, when.isoformat(), amount) for e, c, when, amount in rows])
    assert import_file(crm, "orders", path, batch_size=batch_size).stored == len(rows)


def test_kept_batches_earn_before_a_read_before_another_write_and_at_the_commit(
    club: Any, tmp_path: Path
) -> None:
    """Orders earn in the order they were stored, whenever the kept batches earn: a read
    in the transaction, another write (an order added) and the commit each find them
    earned; the result equals the same orders stored one by one."""
    crm, service, ids = club
    rows = _rows(7, 90)
    with crm.transaction() as ctx:
        _import_file(crm, rows[:30], 7, tmp_path)
        assert _earned(ctx) == 0  # kept: 30 orders wait
        assert sum(total for _, total in service.ledger_sums().values()) > 0  # a read
        assert _earned(ctx) > 0 and deferred._kept.get(ctx.connection) is None
        _import_file(crm, rows[30:50], 7, tmp_path)
        before = _earned(ctx)
        assert deferred._kept.get(ctx.connection) is not None  # kept again
        _, customer, when, amount = rows[50]  # another write: the kept batches go first
        crm.orders.add(customer_id=ids["B" + customer], amount=amount, occurred_at=when)
        assert _earned(ctx) > before
        _import_file(crm, rows[51:], 7, tmp_path)
        assert deferred._kept.get(ctx.connection) is not None  # kept until the commit
    _one_by_one(crm, ids, rows)
    _same_both_sides(service, ids)


def test_a_savepoint_rolled_back_takes_the_batches_it_kept(club: Any, tmp_path: Path) -> None:
    crm, service, ids = club
    rows = _rows(9, 60)
    with crm.connection_scope(), crm.transaction() as ctx:
        _import_file(crm, rows[:20], 10, tmp_path)
        with pytest.raises(RuntimeError), ctx.connection.begin_nested():
            _import_file(crm, rows[20:40], 10, tmp_path)
            raise RuntimeError("abort the savepoint")
        _import_file(crm, rows[40:], 10, tmp_path)
    assert len(crm.orders.list(limit=100)) == 40
    _one_by_one(crm, ids, rows[:20] + rows[40:])
    _same_both_sides(service, ids)


def test_an_order_refunded_before_its_kept_batch_earned(club: Any, tmp_path: Path) -> None:
    """The refund joins the import's transaction: the kept batch earns first, as the
    orders were stored, and the reversal then takes the refunded order's points back."""
    crm, service, ids = club
    when = at(2025, 2, 1)
    with crm.transaction():
        _import_file(crm, [("R1", "0", when, "120.00"), ("R2", "0", when, "30.00")], 10, tmp_path)
        crm.orders.set_status(crm.orders.get_by_external_id("R1").id, "refunded")
    crm.orders.add(customer_id=ids["S0"], amount="120.00", occurred_at=when, external_id="S1")
    crm.orders.add(customer_id=ids["S0"], amount="30.00", occurred_at=when)
    crm.orders.set_status(crm.orders.get_by_external_id("S1").id, "refunded")
    b, s = service.member(ids["B0"]), service.member(ids["S0"])
    assert (b.balance, b.tier, b.orders_count) == (s.balance, s.tier, s.orders_count)
    assert b.orders_count == 2
    assert_consistent(service)
