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


# -- orders checked column by column end as they end row by row --------------------------


@st.composite
def common_form_orders(draw):
    """(rows, stored before): orders mostly in the common form (UTC times to the second,
    canonical amounts), some repeating an id, naming a missing customer or a bad day."""
    count = draw(st.integers(min_value=1, max_value=20))
    numbers = st.integers(min_value=0, max_value=25)
    ids = sorted(draw(st.lists(numbers, min_size=count, max_size=count)))
    if draw(st.booleans()):
        ids = draw(st.permutations(ids))
    rows = []
    for n in ids:
        moment = draw(st.datetimes(min_value=dt.datetime(2020, 1, 1),
                                   max_value=dt.datetime(2030, 1, 1)))  # fmt: skip
        when = moment.isoformat(timespec="seconds") + "+00:00"
        rows.append(
            [
                f"O{n:03d}",
                draw(st.sampled_from([*KNOWN_CUSTOMERS * 4, "missing"])),
                draw(st.sampled_from([when] * 12 + ["2025-02-30T10:00:00+00:00", "2025-03-01"])),
                draw(st.sampled_from(["0", "12.50", "7.1"] * 4 + ["-3.00"])),
                draw(st.sampled_from(["", "paid", "refunded"])),
            ]
        )
    stored = draw(st.sets(st.sampled_from([f"O{n:03d}" for n in range(26)]), max_size=13))
    return rows, sorted(stored)


@settings(SETTINGS, max_examples=60)
@given(data=common_form_orders(), atomic=st.booleans(), batch=st.sampled_from([2, 3, 10_000]))
def test_orders_checked_column_by_column_end_as_row_by_row(
    crm_with_customers, tmp_path_factory, data, atomic, batch
):
    from crmkit.transfer import validate
    from crmkit.transfer.convert import Converter

    crm = crm_with_customers
    rows, stored = data
    folder = tmp_path_factory.mktemp("runs")
    outcomes = []
    for runs in (True, False):
        prefix = f"{next(_counter)}~"
        before = folder / f"before-{prefix}.csv"
        before.write_text(
            "external_id,customer,occurred_at,amount\n"
            + "".join(f"{prefix}{ext},K1,2021-06-01T00:00:00+00:00,1\n" for ext in stored),
            encoding="utf-8",
        )
        assert import_file(crm, "orders", before).committed
        path = folder / f"orders-{prefix}.csv"
        path.write_text(
            "external_id,customer,occurred_at,amount,status\n"
            + "".join(",".join([prefix + row[0], *row[1:]]) + "\n" for row in rows),
            encoding="utf-8",
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validate, "LOOKUP_BATCH", batch)
            if not runs:
                patch.setattr(Converter, "bind_runs", lambda self: None)
            result = import_file(crm, "orders", path, skip_invalid=not atomic)
        kept = stored_orders(crm, [prefix + row[0] for row in rows])
        outcomes.append(
            (
                (result.read, result.stored, result.already_present, result.rejected),
                result.committed,
                [(p.line, p.column, p.reason.replace(prefix, "")) for p in result.problems],
                {
                    ext.removeprefix(prefix): (o.customer_id, o.occurred_at, o.amount, o.status)
                    for ext, o in kept.items()
                },
            )
        )
    assert outcomes[0] == outcomes[1]
