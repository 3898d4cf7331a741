"""One transaction per write, together with its events; after-commit only after commit."""

import datetime as dt

import pytest
from sqlalchemy import select

import crmkit

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


class Exploding:
    CRMKIT_NAME = "exploding"

    @crmkit.hookimpl
    def crmkit_after_orders_created(self, ctx, orders):
        if any(o.amount > 100 for o in orders):
            raise RuntimeError("amount over the test limit")


class Watching:
    CRMKIT_NAME = "watching"

    def __init__(self):
        self.committed = []
        self.seen_in_transaction = []

    @crmkit.hookimpl
    def crmkit_after_customers_created(self, ctx, customers):
        # the plugin reads the rows through the same transaction
        from crmkit.core import tables as t

        names = ctx.connection.scalars(select(t.customers.c.name)).all()
        self.seen_in_transaction.append(sorted(names))

    @crmkit.hookimpl
    def crmkit_after_commit(self, crm, changes):
        self.committed.append([c.name for c in changes.customers_created])


def test_plugin_error_rolls_back_the_whole_write_and_names_the_plugin(make_crm):
    crm = make_crm(plugins=[Exploding()])
    c = crm.customers.add(name="A")
    batch = [
        {"customer_id": c.id, "amount": str(a), "occurred_at": T0, "external_id": f"O{a}"}
        for a in (5, 50, 500)
    ]
    with pytest.raises(
        crmkit.PluginError,
        match="plugin 'exploding' failed in crmkit_after_orders_created: RuntimeError: amount over the test limit",
    ):
        crm.orders.add_many(batch)
    assert crm.orders.list() == []


def test_outer_transaction_groups_writes(make_crm):
    crm = make_crm()
    with pytest.raises(ZeroDivisionError), crm.transaction():
        c = crm.customers.add(name="A")
        crm.orders.add(customer_id=c.id, amount="1", occurred_at=T0)
        raise ZeroDivisionError
    assert crm.customers.count() == 0
    with crm.transaction():
        c = crm.customers.add(name="B")
        crm.orders.add(customer_id=c.id, amount="1", occurred_at=T0)
    assert crm.customers.count() == 1 and len(crm.orders.list()) == 1


def test_after_commit_runs_after_commit_only(make_crm):
    watcher = Watching()
    crm = make_crm(plugins=[watcher])
    crm.customers.add(name="Kept")
    with pytest.raises(RuntimeError), crm.transaction():
        crm.customers.add(name="Rolled back")
        raise RuntimeError("abort")
    assert watcher.committed == [["Kept"]]
    assert watcher.seen_in_transaction == [["Kept"], ["Kept", "Rolled back"]]


def test_sqlite_writers_in_parallel_processes_do_not_lose_rows(tmp_path):
    """Real processes write to one SQLite file at once; every row arrives (BEGIN IMMEDIATE)."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'c.db'}"
    crmkit.open(url, plugins=[], upgrade=True).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.starmap(_add_customers, [(url, "p1"), (url, "p2")])
    crm = crmkit.open(url, plugins=[])
    assert crm.customers.count() == 100
    crm.close()


def _add_customers(url, prefix):
    crm = crmkit.open(url, plugins=[])
    for i in range(50):
        crm.customers.add(name=f"{prefix}-{i}", external_id=f"{prefix}-{i}")
    crm.close()


def test_bulk_ids_are_right_with_two_bulk_writers(tmp_path):
    """Two processes bulk-insert into one SQLite file; every returned id names its own row."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'c.db'}"
    crmkit.open(url, plugins=[], upgrade=True).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_bulk_customers, [(url, "a"), (url, "b")])
    crm = crmkit.open(url, plugins=[])
    for pairs in results:
        for customer_id, external_id in pairs:
            assert crm.customers.get(customer_id).external_id == external_id
    assert crm.customers.count() == 6000
    crm.close()


class _Collect:
    CRMKIT_NAME = "collect"

    def __init__(self):
        self.pairs = []

    @crmkit.hookimpl
    def crmkit_after_customers_created(self, ctx, customers):
        self.pairs.extend((c.id, c.external_id) for c in customers)


def _bulk_customers(url, prefix):
    collect = _Collect()
    crm = crmkit.open(url, plugins=[collect])
    crm.customers.add_many(
        ({"name": f"{prefix}{i}", "external_id": f"{prefix}{i}"} for i in range(3000)),
        batch_size=500,
    )
    crm.close()
    return collect.pairs
