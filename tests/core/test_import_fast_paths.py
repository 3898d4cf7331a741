"""The importer's shortcuts answer exactly what the general code answers.

* order rows made straight from the cells equal the general conversion, or fail on the same
  column: SQLite's driver form (``Converter.bind``) the general values followed by
  ``row_format().to_driver_row``, PostgreSQL's values (``order_rows``) the general values;
* the spool gives back the batches it was given, whatever their values;
* the duplicate check with its ascending-ids shortcut answers what a set answers;
* ``existing_values`` with its range read answers what a plain look-up answers.
"""

from __future__ import annotations

import datetime as dt
import string
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

import crmkit
from crmkit.core import bulk, db
from crmkit.transfer import duplicates
from crmkit.transfer.convert import Converter
from crmkit.transfer.orderrows import order_rows
from crmkit.transfer.results import RowError
from crmkit.transfer.spool import Spool

ZONES = ("UTC", "Asia/Shanghai", "Europe/Berlin", "America/St_Johns")
OPTIONAL = ("cost", "currency", "status", "channel")

moments = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)
) | st.sampled_from([dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)])
offsets = st.sampled_from(
    [None, dt.UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(-dt.timedelta(hours=12))]
)


@st.composite
def times(draw) -> str:
    moment = draw(moments).replace(tzinfo=draw(offsets))
    form = draw(st.sampled_from(["iso", "seconds", "date", "space", "z", "odd"]))
    if form == "seconds":
        return moment.isoformat(timespec="seconds")
    if form == "date":
        return moment.date().isoformat()
    if form == "space":
        return moment.isoformat(" ")
    if form == "z":
        return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    if form == "odd":
        return draw(
            st.sampled_from(
                [
                    "2026-W05-3T12:00:00+00:00",
                    "2026-034T12:00:00+00:00",
                    "20260203T120000+00:00",
                    "2026-02-30T12:00:00+00:00",
                    "2026-03-29T02:30:00",
                    "2026-10-25T02:30:00",
                    "2025-03-01T14:30:00.5+00:00",
                    " 2025-03-01T14:30:00+00:00",
                    "tomorrow",
                    "",
                ]
            )
        )
    return moment.isoformat()


money = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6, max_value=10**6)
    .map(str),
    st.sampled_from(
        ["0", "0.0000", "007", "+5", "-0", "-0.00", ".5", "5.", "1.23456", "99999999999999.9999",
         "100000000000000", "1e3", "1,50", " 12.50", "abc", ""]
    ),
    st.text(alphabet="0123456789.+-", max_size=8),
)  # fmt: skip
ids = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_ \t\u3000", max_size=6),
    st.sampled_from(["", " O1", "O1 ", "\tO1", "O1\u3000", "a\x00b", "x" * 101, "订单-1"]),
)
cells = {
    "external_id": ids,
    "customer": ids,
    "occurred_at": times(),
    "amount": money,
    "cost": money,
    "currency": st.sampled_from(["", "CNY", "usd", " EUR ", "EURO", "€€€", "12"]),
    "status": st.sampled_from(["", "paid", "refunded", "cancelled", " paid", "bogus"]),
    "channel": st.sampled_from(["", "web", " shop ", "x" * 30, "a\x00"]),
}


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast")
    crm = crmkit.open(f"sqlite:///{folder / 'crm.db'}", plugins=[], upgrade=True)
    yield crm
    crm.close()


def _outcome(convert, row):
    try:
        return "ok", convert(row)
    except RowError as exc:
        return "refused", exc.column


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), zone=st.sampled_from(ZONES), rows=st.integers(1, 8))
def test_order_rows_from_the_cells_equal_the_general_conversion(crm, data, zone, rows):
    crm.config.timezone = zone
    optional = data.draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    names = data.draw(st.permutations(["external_id", "customer", "occurred_at", "amount"]))
    names = [*names, *optional]
    converter = Converter(crm, "orders")
    fast = converter.bind(names)
    assert converter.driver_form
    to_driver = crm.orders.row_format().to_driver_row

    def general(row):
        return to_driver(converter.order(dict(zip(names, row, strict=True))))

    python_values = order_rows(converter, names)

    def general_values(row):
        return converter.order(dict(zip(names, row, strict=True)))

    for _ in range(rows):
        row = [data.draw(cells[name]) for name in names]
        given_row = list(row)
        assert _outcome(fast, row) == _outcome(general, row), row
        assert _outcome(python_values, row) == _outcome(general_values, row), row
        assert row == given_row  # the record is left as read (the rejects file writes it)


def test_sqlite_rows_are_the_texts_sqlalchemy_stores(crm):
    crm.config.timezone = "UTC"
    converter = Converter(crm, "orders")
    fast = converter.bind(["external_id", "customer", "occurred_at", "amount", "cost"])
    assert fast(["O1", "C1", "2025-03-01T14:30:00+00:00", "12.50", ""]) == (
        "O1", "C1", "2025-03-01 14:30:00.000000", "12.50", None, crm.config.currency, "paid", None,
    )  # fmt: skip
    assert fast(["O2", "C1", "2025-03-01T14:30:00.25+08:00", "007", "0.0001"])[2:5] == (
        "2025-03-01 06:30:00.250000", "7", "0.0001",
    )  # fmt: skip
    with pytest.raises(RowError) as refused:
        fast(["O1", "C1", "2025-03-01T14:30:00+08:00", "-1", ""])
    assert refused.value.column == "amount"


values = st.one_of(
    st.text(max_size=4), st.none(), st.integers(-(2**63), 2**63 - 1), st.booleans(),
    st.decimals(allow_nan=False, places=2), st.integers(2**63, 2**64),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.integers(1, 4).flatmap(
            lambda width: st.lists(
                st.one_of(
                    st.tuples(*[values] * width),
                    st.tuples(*[st.text(max_size=3) | st.none()] * width),
                    st.tuples(*[st.integers(0, 9)] * width),
                ),
                min_size=1,
                max_size=5,
            )
        ),
        max_size=4,
    )
)
def test_the_spool_gives_back_what_it_was_given(batches):
    spool = Spool()
    try:
        for number, batch in enumerate(batches):
            spool.write(batch, list(range(number * 10, number * 10 + len(batch))))
        back = list(spool)
    finally:
        spool.close()
    assert [list(lines) for lines, _ in back] == [
        list(range(n * 10, n * 10 + len(b))) for n, b in enumerate(batches)
    ]
    for (_, rows), batch in zip(back, batches, strict=True):
        assert rows == batch
        assert [[type(v) for v in row] for row in rows] == [[type(v) for v in r] for r in batch]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 60), max_size=8), max_size=8),
    st.integers(min_value=0, max_value=6),
    st.booleans(),
)
def test_seen_keys_with_ascending_runs_answer_what_a_set_answers(batches, limit, sort):
    """Mostly ascending ids (sorted batches, gaps, then a step back) through the shortcut."""
    seen = duplicates.SeenKeys(limit=limit)
    met: set[str] = set()
    try:
        for batch in batches:
            keys = [f"K{n:03d}" for n in (sorted(batch) if sort else batch)]
            expected = []
            for key in keys:
                expected.append(key not in met)
                met.add(key)
            assert seen.first_times(keys) == expected
    finally:
        seen.close()


@pytest.fixture
def things(database_url):
    """A table of keys on this run's backend (PostgreSQL: its own collation, not code points)."""
    engine = db.create(database_url)
    meta = MetaData()
    table = Table(
        "things", meta, Column("id", Integer, primary_key=True), Column("key", String(10))
    )
    meta.create_all(engine)
    patch = pytest.MonkeyPatch()
    patch.setattr(bulk, "_SETWISE", 2)  # the range reads from two values on, not 1,000
    yield engine, table
    patch.undo()
    engine.dispose()


keys = st.text(alphabet="aBb\x1f,-_ 9", max_size=4)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.sets(keys),
    wanted=st.lists(keys),
    numbers=st.sets(st.integers(0, 50)),
    asked=st.lists(st.integers(0, 60)),
)
def test_existing_values_with_a_range_read_answer_what_a_look_up_answers(
    things, stored, wanted, numbers, asked
):
    engine, table = things
    with engine.begin() as connection:
        connection.execute(table.delete())
        if stored:
            connection.execute(insert(table), [{"key": k} for k in stored])
        if numbers:
            connection.execute(insert(table), [{"id": n + 1000, "key": None} for n in numbers])
        assert bulk.existing_values(connection, table.c.key, wanted) == stored & set(wanted)
        assert bulk.existing_values(connection, table.c.key, sorted(stored)) == stored
        ids = {n + 1000 for n in numbers}
        assert bulk.existing_values(connection, table.c.id, [a + 1000 for a in asked]) == ids & {
            a + 1000 for a in asked
        }


def test_money_that_is_its_own_text_is_the_decimal_text():
    from crmkit.transfer.orderrows import CANONICAL_MONEY

    for text in ("0", "0.0000", "12.50", "99999999999999.9999", "100", "7.1"):
        assert CANONICAL_MONEY.fullmatch(text)
        assert str(Decimal(text)) == text
    for text in ("007", "+5", "-1", ".5", "5.", "1.23456", "100000000000000", "1e3"):
        assert not CANONICAL_MONEY.fullmatch(text)
