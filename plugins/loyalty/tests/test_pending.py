"""An import's batches leave their members' counters pending until the import commits
(crmkit_loyalty.pending): every read in the same transaction sees them whole, and a
rollback, of the transaction or a savepoint, takes them away with the rest."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty, pending
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, program
from sqlalchemy import select

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


def test_the_counters_are_written_once_before_the_import_commits(club):
    crm, service, ids = club
    rows = _rows(3, 80)
    _import(crm, ids, rows, 9)
    _one_by_one(crm, ids, rows)
    _same_both_sides(service, ids)


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
