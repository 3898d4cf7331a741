"""Property tests of the importer (crmkit.transfer) on SQLite and PostgreSQL.

For generated files — valid and invalid rows mixed, unicode, any of the
delimiters, with or without a BOM, CSV or JSON Lines — rows in = stored +
rejected (+ already present), exactly the valid rows are stored with their
values, and atomic mode stores nothing when any row is bad.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.errors import NotFound
from crmkit.transfer import import_file

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KNOWN_CUSTOMERS = ("K1", "客户-2", "K 3")
_counter = itertools.count()

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029"),
    max_size=12,
)
id_text = st.text(
    alphabet=st.characters(
        whitelist_categories=("L", "N"), whitelist_characters="-_;,|\t\"' ", max_codepoint=0x9FFF
    ),
    min_size=1,
    max_size=8,
).map(lambda s: s.strip() or "x")
moments = st.datetimes(
    min_value=dt.datetime(1990, 1, 1),
    max_value=dt.datetime(2090, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=8)),
                               dt.timezone(dt.timedelta(hours=-5, minutes=-30))]),
)  # fmt: skip
amounts = st.decimals(
    min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2, allow_nan=False
)

DEFECTS = ("amount", "date", "customer", "empty_id", "duplicate", "status")


@st.composite
def order_rows(draw):
    """(rows, expected) where expected maps external id -> (customer, moment, amount)."""
    count = draw(st.integers(min_value=0, max_value=25))
    rows: list[dict[str, str]] = []
    expected: dict[str, tuple[str, dt.datetime, Decimal]] = {}
    for n in range(count):
        ext = f"{draw(id_text)}#{n}"  # unique by construction
        customer = draw(st.sampled_from(KNOWN_CUSTOMERS))
        moment = draw(moments)
        amount = draw(amounts)
        row = {
            "external_id": ext,
            "customer": customer,
            "occurred_at": moment.isoformat(),
            "amount": str(amount),
            "status": draw(st.sampled_from(["", "paid", "refunded"])),
        }
        defect = draw(st.sampled_from((None,) * 4 + DEFECTS))
        if defect == "duplicate" and not expected:
            defect = None
        match defect:
            case "amount":
                row["amount"] = draw(st.sampled_from(["", "abc", "1.2.3", "NaN", "1e400", "--1"]))
            case "date":
                row["occurred_at"] = draw(st.sampled_from(["", "2025-02-30", "tomorrow", "12:00"]))
            case "customer":
                row["customer"] = "missing-" + draw(id_text)
            case "empty_id":
                row["external_id"] = ""
            case "duplicate":
                row["external_id"] = draw(st.sampled_from(sorted(expected)))
            case "status":
                row["status"] = draw(text.filter(lambda s: s.strip() not in ("", "paid",
                                                                              "refunded",
                                                                              "placed",
                                                                              "cancelled")))  # fmt: skip
            case None:
                # negative amounts only for refunds (crmkit's rule): anything else is a defect
                if amount >= 0 or row["status"] == "refunded":
                    expected[ext] = (customer, moment, amount)
        rows.append(row)
    return rows, expected


def write_file(folder: Path, rows, fmt: str, delimiter: str, bom: bool, columns) -> Path:
    path = folder / f"rows-{next(_counter)}.{'jsonl' if fmt == 'jsonl' else 'csv'}"
    if fmt == "jsonl":
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] for c in columns])
        body = buffer.getvalue()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode("utf-8"))
    return path


@pytest.fixture
def crm_with_customers(make_crm):
    crm = make_crm()
    crm.customers.add_many({"external_id": e, "name": e} for e in KNOWN_CUSTOMERS)
    return crm


def stored_orders(crm, prefix_ids):
    found = {}
    for ext in prefix_ids:
        with contextlib.suppress(NotFound):
            found[ext] = crm.orders.get_by_external_id(ext)
    return found


@SETTINGS
@given(
    data=order_rows(),
    fmt=st.sampled_from(["csv", "jsonl"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    bom=st.booleans(),
    skip_invalid=st.booleans(),
)
def test_orders_accounting_and_exact_storage(
    crm_with_customers, tmp_path_factory, data, fmt, delimiter, bom, skip_invalid
):
    crm = crm_with_customers
    rows, expected = data
    # a run-unique suffix keeps examples apart in the one database
    run = f"~{next(_counter)}"
    for row in rows:
        if row["external_id"]:
            row["external_id"] += run
    expected = {k + run: v for k, v in expected.items()}
    before = len(crm.orders.list(limit=None))
    columns = ["external_id", "customer", "occurred_at", "amount", "status"]
    path = write_file(tmp_path_factory.mktemp("p"), rows, fmt, delimiter, bom, columns)
    rejects = path.with_suffix(".rejects")

    result = import_file(
        crm, "orders", path, skip_invalid=skip_invalid, rejects=rejects if skip_invalid else None
    )

    assert result.read == len(rows)
    invalid = len(rows) - len(expected)
    assert result.rejected == invalid
    after = len(crm.orders.list(limit=None))
    if invalid and not skip_invalid:
        assert not result.committed and result.stored == 0
        assert after == before  # nothing stored
        assert len(result.problems) == min(invalid, 100)
        return
    assert result.committed
    assert result.read == result.stored + result.rejected + result.already_present
    assert result.stored == len(expected) and result.already_present == 0
    assert after == before + len(expected)
    ids = crm.customers.ids_by_external_id(KNOWN_CUSTOMERS)
    stored = stored_orders(crm, expected)
    assert set(stored) == set(expected)
    for ext, (customer, moment, amount) in expected.items():
        order = stored[ext]
        assert order.customer_id == ids[customer]
        assert order.occurred_at == moment
        assert order.amount == amount
    if skip_invalid and fmt == "csv":
        with rejects.open(encoding="utf-8", newline="") as handle:
            rejected = list(csv.reader(handle, delimiter=delimiter))
        assert len(rejected) == 1 + invalid
        assert [int(r[0]) for r in rejected[1:]] == sorted(int(r[0]) for r in rejected[1:])
    # the same file again stores nothing new
    again = import_file(crm, "orders", path, skip_invalid=True)
    assert (again.stored, again.already_present, again.rejected) == (0, len(expected), invalid)


@st.composite
def customer_rows(draw):
    count = draw(st.integers(min_value=0, max_value=15))
    rows, expected = [], {}
    for n in range(count):
        ext = f"{draw(id_text)}#{n}"
        name = draw(text.map(str.strip).filter(bool))
        note = draw(text)
        row = {"external_id": ext, "name": name, "email": "", "note": note}
        defect = draw(st.sampled_from((None, None, None, "name", "email")))
        if defect == "name":
            row["name"] = ""
        elif defect == "email":
            row["email"] = "not an address"
        else:
            expected[ext] = (name, note)
        rows.append(row)
    return rows, expected


@SETTINGS
@given(
    data=customer_rows(),
    fmt=st.sampled_from(["csv", "jsonl"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    bom=st.booleans(),
)
def test_customers_unicode_values_are_stored_exactly(
    crm_with_customers, tmp_path_factory, data, fmt, delimiter, bom
):
    crm = crm_with_customers
    rows, expected = data
    run = f"~{next(_counter)}"
    for row in rows:
        row["external_id"] += run
    expected = {k + run: v for k, v in expected.items()}
    count = crm.customers.count()
    path = write_file(
        tmp_path_factory.mktemp("c"), rows, fmt, delimiter, bom,
        ["external_id", "name", "email", "note"],
    )  # fmt: skip
    result = import_file(crm, "customers", path, skip_invalid=True)
    assert result.read == len(rows) == result.stored + result.rejected
    assert result.stored == len(expected)
    assert crm.customers.count() == count + len(expected)
    for ext, (name, note) in expected.items():
        customer = crm.customers.get_by_external_id(ext)
        assert customer.name == name
        # an empty attribute is not stored; any other text exactly as given
        assert customer.attributes == ({"note": note} if note else {})


# -- every line of a CSV file is accounted for, whatever its quotes and column count ------

plain_id = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=6)
LINE_DEFECTS = ("quote", "extra", "missing", "formula")


@st.composite
def order_lines_with_broken_rows(draw):
    """(lines, good ids, bad line numbers): rows as CSV text, some with an unbalanced quote
    or a wrong number of fields; ids and values never need quoting, so each row is a line."""
    count = draw(st.integers(min_value=1, max_value=30))
    lines, good, bad = [], set(), []
    for n in range(count):
        ext = f"{draw(plain_id)}-{n}"
        amount = draw(st.decimals(min_value=0, max_value=10**6, places=2))
        cells = [ext, "K1", "2025-01-02T10:00:00+00:00", str(amount), "paid"]
        defect = draw(st.sampled_from((None, None, *LINE_DEFECTS)))
        match defect:
            case "quote":  # a quote that never closes, in any cell
                where = draw(st.integers(min_value=0, max_value=4))
                cells[where] = '"' + cells[where]
            case "extra":
                cells.append(draw(plain_id))
            case "missing":
                del cells[draw(st.integers(min_value=0, max_value=4))]
            case "formula":  # neutralised by crmkit's writers: read back without the quote
                cells[0] = "'=" + ext
        lines.append(",".join(cells))
        if defect in ("quote", "extra", "missing"):
            bad.append(n + 2)
        else:
            good.add(("=" + ext) if defect == "formula" else ext)
    return lines, good, bad


@SETTINGS
@given(data=order_lines_with_broken_rows(), atomic=st.booleans())
def test_every_line_is_stored_present_or_rejected_whole(
    crm_with_customers, tmp_path_factory, data, atomic
):
    crm = crm_with_customers
    lines, good, bad = data
    run = f"~{next(_counter)}"
    lines = [line.replace("-", run + "-", 1) for line in lines]
    good = {g.replace("-", run + "-", 1) for g in good}
    folder = tmp_path_factory.mktemp("q")
    path = folder / "orders.csv"
    text = "external_id,customer,occurred_at,amount,status\n" + "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    rejects = folder / "rejects.csv"

    if atomic:
        result = import_file(crm, "orders", path)
        assert result.read == len(lines) and result.rejected == len(bad)
        assert [p.line for p in result.problems] == bad
        assert result.committed == (not bad) and result.stored == (0 if bad else len(good))
        return
    result = import_file(crm, "orders", path, skip_invalid=True, rejects=rejects)
    assert result.read == len(lines) == result.stored + result.already_present + result.rejected
    assert (result.stored, result.rejected) == (len(good), len(bad))
    assert set(stored_orders(crm, good)) == good
    with rejects.open(encoding="utf-8", newline="") as handle:
        rejected = list(csv.reader(handle))[1:]
    assert [int(r[0]) for r in rejected] == bad
    # each rejected row keeps its whole original line, cell by cell
    assert [",".join(r[2:]) for r in rejected] == [lines[n - 2] for n in bad]
    again = import_file(crm, "orders", path, skip_invalid=True)
    assert (again.stored, again.already_present, again.rejected) == (0, len(good), len(bad))
