"""``ctx.before_commit``: work run once in the write's transaction, just before it commits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import crmkit
from crmkit.core import tables as t
from crmkit.transfer import import_file

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Totals:
    """Counts the orders of every batch and writes the total once, before the commit, as a
    customer's note (a write in the same transaction)."""

    CRMKIT_NAME = "totals"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.batches = 0
        self.runs: list[tuple[int, int, bool]] = []  # (orders seen, orders stored, in txn)
        self.seen: dict[int, int] = {}

    @crmkit.hookimpl
    def crmkit_after_orders_created(self, ctx: Any, orders: Any) -> None:
        self.batches += 1
        first = id(ctx) not in self.seen
        self.seen[id(ctx)] = self.seen.get(id(ctx), 0) + len(orders)
        if first:
            ctx.before_commit(self.finish)

    def finish(self, ctx: Any) -> None:
        stored = ctx.connection.scalar(select(func.count()).select_from(t.orders))
        self.runs.append((self.seen.pop(id(ctx)), stored, ctx.connection.in_transaction()))
        ctx.connection.execute(t.customers.update().values(industry=f"total {stored}"))
        if self.fail:
            raise RuntimeError("before-commit failed")


def _industries(crm: Any) -> list[str | None]:
    return [c.industry for c in crm.customers.list()]


def test_runs_once_in_the_transaction_after_the_last_event(make_crm):
    totals = Totals()
    crm = make_crm(plugins=[totals])
    c = crm.customers.add(name="A")
    with crm.transaction():
        crm.orders.add(customer_id=c.id, amount="1", occurred_at=T0)
        crm.orders.add(customer_id=c.id, amount="2", occurred_at=T0)
        assert totals.runs == []  # not before the write ends
    assert totals.batches == 2 and totals.runs == [(2, 2, True)]
    assert _industries(crm) == ["total 2"]  # its write committed with the orders
    crm.orders.add(customer_id=c.id, amount="3", occurred_at=T0)  # a write of its own
    assert totals.runs == [(2, 2, True), (1, 3, True)]


def test_an_error_rolls_the_whole_write_back(make_crm):
    crm = make_crm(plugins=[Totals(fail=True)])
    with crm.transaction():
        c = crm.customers.add(name="A")
    with pytest.raises(RuntimeError, match="before-commit failed"):
        crm.orders.add(customer_id=c.id, amount="1", occurred_at=T0)
    assert crm.orders.list() == [] and _industries(crm) == [None]


def test_runs_once_for_an_import_of_several_batches(make_crm, tmp_path: Path):
    totals = Totals()
    crm = make_crm(plugins=[totals])
    crm.customers.add(name="Wu", external_id="C1")
    path = tmp_path / "orders.csv"
    path.write_text(
        "external_id,customer,occurred_at,amount\n"
        + "".join(f"O{i},C1,2025-03-01,5\n" for i in range(7))
    )
    result = import_file(crm, "orders", path, batch_size=3)
    assert result.stored == 7 and totals.batches == 3
    assert totals.runs == [(7, 7, True)]
    assert _industries(crm) == ["total 7"]


def test_an_error_rolls_the_whole_import_back(make_crm, tmp_path: Path):
    crm = make_crm(plugins=[Totals(fail=True)])
    crm.customers.add(name="Wu", external_id="C1")
    path = tmp_path / "orders.csv"
    path.write_text(
        "external_id,customer,occurred_at,amount\n"
        + "".join(f"O{i},C1,2025-03-01,5\n" for i in range(7))
    )
    with pytest.raises(Exception, match="before-commit failed"):
        import_file(crm, "orders", path, batch_size=3)
    assert crm.orders.list() == [] and _industries(crm) == [None]


def test_a_callback_given_while_callbacks_run_runs_too(make_crm):
    crm = make_crm(plugins=[])
    ran: list[str] = []
    with crm.transaction() as ctx:
        ctx.before_commit(lambda c: (ran.append("first"), c.before_commit(ran.append)))
    assert ran[0] == "first" and len(ran) == 2 and ran[1] is ctx


class Keeper:
    """Keeps each orders event's work for later (``ctx.before_next_write``) and records
    when it runs: how many orders the transaction held then."""

    CRMKIT_NAME = "keeper"

    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []

    @crmkit.hookimpl
    def crmkit_after_orders_created(self, ctx: Any, orders: Any) -> None:
        ctx.before_next_write(lambda c: self.runs.append(("kept", _orders(c))))
        ctx.before_commit(lambda c: self.runs.append(("commit", _orders(c))))


def _orders(ctx: Any) -> int:
    return int(ctx.connection.scalar(select(func.count()).select_from(t.orders)))


def test_kept_work_runs_before_the_next_write_joins_and_before_the_commit(make_crm) -> None:
    keeper = Keeper()
    crm = make_crm(plugins=[keeper])
    alice = crm.customers.add(name="Alice")
    with crm.transaction():
        crm.orders.add(customer_id=alice.id, amount="10", occurred_at=T0)
        assert keeper.runs == []  # kept
        crm.orders.add(customer_id=alice.id, amount="20", occurred_at=T0)  # joins: runs first
        assert keeper.runs == [("kept", 1)]
    # the second order's work: before the commit, ahead of the before_commit callbacks
    assert keeper.runs == [("kept", 1), ("kept", 2), ("commit", 2), ("commit", 2)]


def test_an_import_stores_its_batches_without_joining_again(make_crm, tmp_path: Path) -> None:
    keeper = Keeper()
    crm = make_crm(plugins=[keeper])
    crm.customers.add(name="Alice", external_id="A")
    path = tmp_path / "orders.csv"
    rows = [f"O{n},A,2025-01-01T00:00:00+00:00,{n}.00" for n in range(1, 8)]
    path.write_text("external_id,customer,occurred_at,amount\n" + "\n".join(rows) + "\n")
    import_file(crm, "orders", str(path), batch_size=3)
    # three batches, each kept work: all of it runs before the commit, none before
    assert [kind for kind, _ in keeper.runs] == ["kept"] * 3 + ["commit"] * 3
    assert {count for _, count in keeper.runs} == {7}


def test_kept_work_of_a_rolled_back_write_never_runs(make_crm) -> None:
    keeper = Keeper()
    crm = make_crm(plugins=[keeper])
    alice = crm.customers.add(name="Alice")
    with pytest.raises(RuntimeError), crm.transaction():
        crm.orders.add(customer_id=alice.id, amount="10", occurred_at=T0)
        raise RuntimeError("abort")
    assert keeper.runs == []
