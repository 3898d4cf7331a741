"""The bulk path the importer uses: crm.orders.add_rows and crmkit.core.bulk.RowFormat."""

from __future__ import annotations

import datetime as dt
import gc
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

import crmkit
from crmkit.core import tables as t
from crmkit.core.bulk import RowFormat, sqlite_utc_text
from crmkit.core.orders import ORDER_COLUMNS
from crmkit.core.types import UTCDateTime
from crmkit.transfer import duplicates, import_file
from crmkit.transfer import validate as validation

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Listener:
    """Keeps every order the created event carried."""

    CRMKIT_NAME = "listener"

    def __init__(self) -> None:
        self.batches: list[list[crmkit.Order]] = []

    @crmkit.hookimpl
    def crmkit_after_orders_created(self, ctx, orders):
        self.batches.append(list(orders))


def _rows(customer_id: int, prefix: str) -> list[tuple]:
    return [
        # midnight in Shanghai is 16:00 UTC the day before: the stored text must compare
        # correctly with bound datetimes in WHERE clauses
        (f"{prefix}1", customer_id, dt.datetime(2025, 3, 2, 0, 0, tzinfo=SHANGHAI),
         Decimal("12.5"), None, "CNY", "paid", "web"),
        (f"{prefix}2", customer_id, dt.datetime(2025, 3, 1, 15, 59, 59, 999999, tzinfo=dt.UTC),
         Decimal("0.0001"), Decimal("3.25"), "EUR", "refunded", None),
    ]  # fmt: skip


@pytest.mark.parametrize("driver_form", [False, True])
def test_add_rows_stores_what_add_stores_and_announces_it(make_crm, driver_form):
    listener = Listener()
    crm = make_crm(plugins=[listener])
    customer = crm.customers.add(name="Wu", external_id="C1")
    rows = _rows(customer.id, "R")
    given_rows = crm.orders.row_format().to_driver(rows) if driver_form else rows
    result = crm.orders.add_rows(given_rows, driver_form=driver_form)
    assert (result.stored, result.skipped) == (2, [])

    [announced] = listener.batches
    for row, order in zip(rows, announced, strict=True):
        stored = crm.orders.get_by_external_id(row[0])
        assert order.id == stored.id
        for name, value in zip(ORDER_COLUMNS, row, strict=True):
            assert getattr(order, name) == value, name
            assert getattr(stored, name) == value, name
        assert order.occurred_at.utcoffset() is not None and order.lines == []
        assert attrs.asdict(order)["id"] == stored.id  # every field of the entity is set

    # the same instants through the normal path compare the same way in queries
    since = dt.datetime(2025, 3, 1, 16, 0, tzinfo=dt.UTC)
    assert [o.external_id for o in crm.orders.list(since=since)] == ["R1"]
    assert [o.external_id for o in crm.orders.list(until=since)] == ["R2"]

    again = crm.orders.add_rows(given_rows, driver_form=driver_form)
    assert (again.stored, sorted(again.skipped)) == (0, ["R1", "R2"])
    assert len(listener.batches) == 1  # nothing new, no event


def test_add_rows_without_listeners_stores_the_same(make_crm):
    crm = make_crm(plugins=[])
    customer = crm.customers.add(name="Wu")
    rows = _rows(customer.id, "S")
    assert crm.orders.add_rows(rows).stored == 2
    assert [o.external_id for o in crm.orders.list()] == ["S1", "S2"]
    assert crm.orders.get_by_external_id("S2").cost == Decimal("3.25")


zones = st.sampled_from(
    [dt.UTC, SHANGHAI, ZoneInfo("America/New_York"), dt.timezone(dt.timedelta(hours=5, minutes=45))]
)
moments = st.datetimes(
    min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=zones
)
money = st.decimals(min_value=-(10**13), max_value=10**13, places=4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=5), moments, money, st.none() | money), min_size=1))
def test_row_format_round_trips_and_writes_what_sqlalchemy_writes(values):
    columns = ("external_id", "occurred_at", "amount", "cost")
    rows = [tuple(v) for v in values]
    # compared in UTC: Python never calls a time in a DST gap or fold equal to one in
    # another zone, although both name the same instant
    expected = [(e, m.astimezone(dt.UTC), a, c) for e, m, a, c in rows]
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        form = RowFormat(dialect, t.orders, columns)
        back = form.to_python(form.to_driver(rows))
        assert [(e, m.astimezone(dt.UTC), a, c) for e, m, a, c in back] == expected
    # on SQLite a time becomes exactly the text SQLAlchemy's own bind processing writes
    dialect = sqlite.dialect()
    reference = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    for _, moment, _, _ in rows:
        assert sqlite_utc_text(moment) == reference(moment)


def test_naive_time_is_refused_by_the_sqlite_form():
    form = RowFormat(sqlite.dialect(), t.orders, ("occurred_at",))
    with pytest.raises(ValueError, match="naive datetime"):
        form.to_driver([(dt.datetime(2025, 1, 1),)])


def test_import_pauses_the_collector_only_while_it_runs(make_crm, tmp_path: Path):
    crm = make_crm(plugins=[])
    crm.customers.add(name="Wu", external_id="C1")
    good = tmp_path / "good.csv"
    good.write_text("external_id,customer,occurred_at,amount\nO1,C1,2025-03-01,5\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,customer,occurred_at,amount\nO2,C1,2025-03-01,five\n")
    assert gc.isenabled()
    assert import_file(crm, "orders", good).stored == 1
    assert not import_file(crm, "orders", bad).committed
    assert gc.isenabled()
    gc.disable()
    try:
        import_file(crm, "orders", good)
        assert not gc.isenabled()  # a caller's choice is left alone
    finally:
        gc.enable()


def test_rejects_keep_file_order_across_kinds_of_problem(make_crm, tmp_path: Path):
    crm = make_crm(plugins=[])
    crm.customers.add(name="Wu", external_id="C1")
    path = tmp_path / "orders.csv"
    path.write_text(
        "external_id,customer,occurred_at,amount\n"
        "O1,NOPE,2025-03-01,5\n"  # unknown customer: found only when the batch is looked up
        "O2,C1,2025-03-01,five\n"  # bad amount: found at once
        "O3,C1,2025-03-01,5\n"
        "O3,C1,2025-03-01,5\n"  # repeated id
        "O4,GONE,2025-03-01,5\n"
    )
    result = import_file(crm, "orders", path, skip_invalid=True, rejects=tmp_path / "bad.csv")
    assert (result.read, result.stored, result.rejected) == (5, 1, 4)
    assert [(p.line, p.column) for p in result.problems] == [
        (2, "customer"),
        (3, "amount"),
        (5, "external_id"),
        (6, "customer"),
    ]
    lines = (tmp_path / "bad.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == ["2", "3", "5", "6"]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=8), max_size=6),
    st.integers(min_value=0, max_value=6),
)
def test_seen_keys_answer_the_same_in_memory_and_spilled(batches, limit):
    spilling = duplicates.SeenKeys(limit=limit)
    met: set[str] = set()
    try:
        for batch in batches:
            expected = []
            for key in batch:
                expected.append(key not in met)
                met.add(key)
            assert spilling.first_times(batch) == expected
    finally:
        spilling.close()


def test_duplicates_are_found_after_the_ids_spill_to_disk(make_crm, tmp_path, monkeypatch):
    monkeypatch.setattr(duplicates, "SEEN_IN_MEMORY", 3)
    monkeypatch.setattr(validation, "LOOKUP_BATCH", 2)
    crm = make_crm(plugins=[])
    crm.customers.add(name="Wu", external_id="C1")
    ids = ["O1", "O2", "O3", "O4", "O5", "O2", "O6", "O5", "O1"]
    path = tmp_path / "orders.csv"
    path.write_text(
        "external_id,customer,occurred_at,amount\n" + "".join(f"{i},C1,2025-03-01,5\n" for i in ids)
    )
    result = import_file(crm, "orders", path, skip_invalid=True)
    assert (result.stored, result.rejected) == (6, 3)
    assert [(p.line, p.reason) for p in result.problems] == [
        (7, "'O2' appears earlier in the file"),
        (9, "'O5' appears earlier in the file"),
        (10, "'O1' appears earlier in the file"),
    ]


class IdsOnly:
    """Reads only the ids of what the created event carried."""

    CRMKIT_NAME = "ids-only"

    def __init__(self) -> None:
        self.ids: list[tuple[int, ...]] = []
        self.kinds: list[type] = []

    @crmkit.hookimpl
    def crmkit_after_orders_created(self, ctx, orders):
        self.kinds.append(type(orders))
        self.ids.append(orders.ids)


def _count_builds(monkeypatch) -> list[int]:
    """Count the Order entities the bulk path builds (the real builder still runs)."""
    from crmkit.core import orders as orders_module

    built = [0]
    real = orders_module._trusted_order

    def counting(row, order_id):
        built[0] += 1
        return real(row, order_id)

    monkeypatch.setattr(orders_module, "_trusted_order", counting)
    return built


def test_an_import_batch_builds_its_entities_only_when_a_listener_reads_them(make_crm, monkeypatch):
    built = _count_builds(monkeypatch)
    ids_only = IdsOnly()
    crm = make_crm(plugins=[ids_only])
    customer = crm.customers.add(name="Wu", external_id="C1")
    crm.orders.add_rows(_rows(customer.id, "R"))
    stored = [crm.orders.get_by_external_id(f"R{n}").id for n in (1, 2)]
    assert ids_only.kinds == [crmkit.StoredOrders]
    assert ids_only.ids == [tuple(stored)]
    assert built == [0]  # nobody read an Order

    listener = Listener()  # a listener that reads them gets them all, built once
    crm = make_crm(plugins=[ids_only, listener])
    customer = crm.customers.add(name="Li", external_id="C2")
    crm.orders.add_rows(_rows(customer.id, "S"))
    [orders] = listener.batches
    assert [o.id for o in orders] == list(ids_only.ids[-1])
    assert built == [2]


def test_stored_orders_is_a_sequence_of_orders(make_crm):
    class Keep:
        CRMKIT_NAME = "keep"

        def __init__(self) -> None:
            self.kept: list = []

        @crmkit.hookimpl
        def crmkit_after_orders_created(self, ctx, orders):
            self.kept.append(orders)

    keep = Keep()
    crm = make_crm(plugins=[keep])
    customer = crm.customers.add(name="Wu", external_id="C1")
    crm.orders.add_rows(_rows(customer.id, "R"))
    [orders] = keep.kept
    assert len(orders) == 2 and repr(orders) == "StoredOrders(2 orders)"
    assert [o.external_id for o in orders] == ["R1", "R2"]
    assert orders[0] is orders[0] and orders[-1].external_id == "R2"
    assert [o.id for o in orders[0:2]] == list(orders.ids)
    assert orders.index(orders[1]) == 1 and orders[0] in orders


def test_after_commit_still_gets_an_import_batch(make_crm):
    class AfterCommit:
        CRMKIT_NAME = "after-commit"

        def __init__(self) -> None:
            self.seen: list = []

        @crmkit.hookimpl
        def crmkit_after_commit(self, crm, changes):
            self.seen.extend(o.external_id for o in changes.orders_created)

    watcher = AfterCommit()
    crm = make_crm(plugins=[watcher])
    customer = crm.customers.add(name="Wu", external_id="C1")
    crm.orders.add_rows(_rows(customer.id, "R"))
    assert watcher.seen == ["R1", "R2"]
