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
import io
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
from crmkit.transfer.orderruns import order_runs
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


# --------------------------------------------------------------------------
# CSV text read a block at a time (split on line ends and the delimiter) gives the records
# the csv module gives, line for line; order runs converted column by column give what the
# row function gives.
# --------------------------------------------------------------------------

csv_text = st.lists(
    st.lists(st.text(alphabet="ab ,;'=\"\r\n\t\x00-", max_size=4), min_size=0, max_size=4).map(
        lambda cells: ",".join(cells)
    ),
    max_size=12,
).flatmap(
    lambda lines: st.tuples(
        st.just(lines),
        st.lists(
            st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines), max_size=len(lines)
        ),  # fmt: skip
    )
)


def _parsed_by_the_csv_module(path):
    """The records of ``path`` as the csv module parses them (the reader's general path)."""
    from crmkit.transfer.read import RecordReader, _CsvRecords

    reader = RecordReader(path, input_format="csv")
    raw = open(path, "rb")  # noqa: SIM115 - closed by the records
    records = _CsvRecords(reader, io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
    try:
        width = len(records._header())
        line = 1 + len(records.taken)
        records.taken.clear()
        return reader.fieldnames, [
            (n, r if isinstance(r, list) else (r.reason, r.record))
            for n, r in records._parsed(line, width)
        ]
    finally:
        records.text.close()


@settings(max_examples=300, deadline=None)
@given(
    header=st.sampled_from(["a,b,c", "a", "a,b", '"a",b']),
    body=csv_text,
    last_end=st.booleans(),
    block=st.sampled_from([1, 2, 5, 16, 1 << 20]),
)
def test_csv_read_in_blocks_gives_the_records_the_csv_module_gives(
    tmp_path_factory, monkeypatch_module, header, body, last_end, block
):
    from crmkit.transfer import read

    lines, ends = body
    text = header + "\n" + "".join(line + end for line, end in zip(lines, ends, strict=True))
    if not last_end:
        text = text.rstrip("\r\n")
    path = tmp_path_factory.mktemp("blocks") / "rows.csv"
    path.write_text(text, encoding="utf-8", newline="")
    expected_names, expected = _parsed_by_the_csv_module(path)
    monkeypatch_module.setattr(read, "BLOCK_CHARS", block)
    reader = read.RecordReader(path, input_format="csv")
    got = []
    for lines_of, run, uniform in reader.blocks():
        assert len(lines_of) == len(run)
        if uniform:
            width = len(reader.fieldnames)
            assert all(isinstance(r, list) and len(r) == width for r in run)
        got.extend(
            (n, r if isinstance(r, list) else (r.reason, r.record))
            for n, r in zip(lines_of, run, strict=True)
        )
    assert reader.fieldnames == expected_names
    assert got == expected


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


good_cells = {
    "external_id": st.sampled_from(["O1", "O2", "订单-3", "x" * 100]),
    "customer": st.sampled_from(["C1", "C 2", "客户"]),
    "occurred_at": st.builds(
        lambda m: m.isoformat(timespec="seconds") + "+00:00",
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    ),
    "amount": st.sampled_from(["0", "12.50", "99999999999999.9999", "7.1"]),
    "cost": st.sampled_from(["", "0.0001", "3"]),
    "currency": st.sampled_from(["", "CNY", "usd", " EUR "]),
    "status": st.sampled_from(["", "paid", "refunded", "cancelled", " paid"]),
    "channel": st.sampled_from(["", "web", " shop "]),
}
#: any cell, and times next to the common form (the runs path must decline them)
odd_cells = {
    **cells,
    "occurred_at": st.sampled_from(
        ["2026-01-01T24:00:00+00:00", "2026-01-01T23:60:00+00:00", "2026-01-01T23:59:60+00:00",
         "2026-02-29T10:00:00+00:00", "2026-02-28T10:00:00+01:00", "2026-02-28T10:00:00Z",
         "2026-02-28 10:00:00+00:00", "2026-02-28T10:00:00+00:00 ", "٢٠٢٦-02-28T10:00:00+00:00",
         "2026-02-28T10:00:00.5+00:00", "0001-01-01T10:00:00+00:00", "2026-02-28T10:00:00"]
    )
    | times(),
}  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rows=st.integers(1, 6), runs=st.integers(1, 3))
def test_order_runs_column_by_column_equal_the_row_function(crm, data, rows, runs):
    """Mostly good cells (the runs path takes them), now and then any cell (it must then
    answer None or the same as the row function); runs one after the other share caches.
    Both forms: SQLite's driver form and PostgreSQL's values."""
    crm.config.timezone = "UTC"
    optional = data.draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    names = data.draw(st.permutations(["external_id", "customer", "occurred_at", "amount"]))
    names = [*names, *optional]
    converter = Converter(crm, "orders")
    row_function = converter.bind(names)
    run_function = converter.bind_runs()
    assert run_function is not None
    # PostgreSQL's form (Python values) against order_rows, its own caches
    python_rows, python_runs = order_rows(converter, names), order_runs(converter, names)
    for _ in range(runs):
        odd = data.draw(st.booleans())
        run = []
        for _ in range(rows):
            # an odd row has one odd cell, the others good (so the odd one decides)
            odd_one = data.draw(st.sampled_from(names)) if odd and data.draw(st.booleans()) else ""
            run.append([data.draw((odd_cells if n == odd_one else good_cells)[n]) for n in names])
        given_run = [list(r) for r in run]
        for rows_of, runs_of in ((row_function, run_function), (python_rows, python_runs)):
            outcomes = [_outcome(rows_of, r) for r in run]
            converted = runs_of(run)
            assert run == given_run
            if converted is not None:
                assert all(len(column) == rows for column in converted)
                assert [("ok", v) for v in zip(*converted, strict=True)] == outcomes
            elif not odd:
                # good cells: only a year 1 or 9999 time (the row path's exception) declines
                assert any(r[names.index("occurred_at")][:4] in ("0001", "9999") for r in run)
