"""Issue 14, the importer's side: nothing lost, nothing half-stored, on SQLite and PostgreSQL.

* an import is one transaction: a failure in its last batch (the database's or a
  plugin's) leaves nothing stored, and the message says so;
* validation refuses what the database would refuse (NUL characters, lengths,
  money ranges), read from the table definitions;
* money has one format; negative amounts only for refunds;
* rows read = stored + already present + rejected for every file (unbalanced
  quotes, wrong column counts), the rejects file keeps the whole row;
* dates that overflow UTC and local times that do not exist (or exist twice) are
  rejected per row; invalid UTF-8 is reported on its line;
* interactions carry an external id: re-importing an interactions file stores
  nothing new;
* order lines must add up to the amount.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import zoneinfo
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from crmkit import Conflict, ValidationError
from crmkit.core import tables as t
from crmkit.core.entities import OrderLine
from crmkit.errors import CrmError
from crmkit.plugin import hookimpl
from crmkit.transfer import export_file, import_file

HEADER = "external_id,customer,occurred_at,amount\n"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def order_count(crm) -> int:
    with crm.reading() as connection:
        return connection.scalar(select(func.count()).select_from(t.orders))


def orders_file(path: Path, count: int, customer: str = "C1", last_customer: str | None = None):
    lines = [f"O{n},{customer},2025-01-02,{n}.50\n" for n in range(1, count + 1)]
    if last_customer:
        lines[-1] = f"O{count},{last_customer},2025-01-02,1\n"
    return write(path, HEADER + "".join(lines))


# -- 1. one transaction ----------------------------------------------------------------


class DeletesTheLastCustomer:
    """At the second stored batch, deletes the customer only the last batch refers to: the
    last batch then fails in the database (foreign key)."""

    def __init__(self) -> None:
        self.batches = 0

    @hookimpl
    def crmkit_after_orders_created(self, ctx, orders):
        self.batches += 1
        if self.batches == 2:
            ctx.connection.execute(delete(t.customers).where(t.customers.c.external_id == "LAST"))


def test_a_database_failure_in_the_last_batch_stores_nothing(make_crm, tmp_path):
    plugin = DeletesTheLastCustomer()
    crm = make_crm(plugins=[plugin])
    crm.customers.add_many(
        [{"external_id": "C1", "name": "A"}, {"external_id": "LAST", "name": "B"}]
    )
    path = orders_file(tmp_path / "o.csv", 25, last_customer="LAST")
    with pytest.raises(CrmError) as caught:
        import_file(crm, "orders", path, batch_size=10)
    message = str(caught.value)
    assert "batch 3" in message and "lines 22-26" in message, message
    assert "nothing of this import was stored" in message, message
    assert order_count(crm) == 0
    assert crm.customers.get_by_external_id("LAST").name == "B"  # the plugin's delete too


class RaisesInBatch:
    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.seen = 0

    @hookimpl
    def crmkit_after_orders_created(self, ctx, orders):
        self.seen += 1
        if self.seen == self.batch:
            raise RuntimeError("points table is full")


def test_a_plugin_raising_in_the_last_batch_stores_nothing_and_says_so(make_crm, tmp_path):
    crm = make_crm(plugins=[RaisesInBatch(3)])
    crm.customers.add(name="A", external_id="C1")
    path = orders_file(tmp_path / "o.csv", 25)
    with pytest.raises(CrmError) as caught:
        import_file(crm, "orders", path, batch_size=10)
    message = str(caught.value)
    assert "points table is full" in message
    assert "nothing of this import was stored" in message
    assert "nothing of this change was stored" not in message  # one statement, not two
    assert order_count(crm) == 0


def test_a_plugin_raising_through_the_cli_is_one_line_saying_nothing_was_stored(
    database_url, tmp_path
):
    import crmkit
    from crmkit.testing import run_cli

    crmkit.open(database_url, plugins=[], upgrade=True).close()
    with crmkit.open(database_url, plugins=[]) as crm:
        crm.customers.add(name="A", external_id="C1")
    path = orders_file(tmp_path / "o.csv", 25)
    result = run_cli(
        ["import", "orders", str(path), "--batch-size", "10"],
        database=database_url,
        plugins=[RaisesInBatch(3)],
    )
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nothing of this import was stored" in line, line
    with crmkit.open(database_url, plugins=[]) as crm:
        assert order_count(crm) == 0


@pytest.mark.parametrize(
    ("kind", "header", "row", "where"),
    [
        ("orders", HEADER, "O1\x00x,C1,2025-01-02,1", "external_id: contains a NUL character"),
        ("orders", HEADER + "", "O1,C\x001,2025-01-02,1", "customer: contains a NUL character"),
        (
            "orders",
            "external_id,customer,occurred_at,amount,channel\n",
            "O1,C1,2025-01-02,1,we\x00b",
            "channel: contains a NUL character",
        ),
        ("orders", HEADER, "O" + "9" * 100 + ",C1,2025-01-02,1", "external_id: is 101 characters"),
        (
            "orders",
            HEADER,
            "O1,C1,2025-01-02,123456789012345",
            "amount: 123456789012345 is too large",
        ),
        ("customers", "external_id,name\n", "K1,T\x009", "name: contains a NUL character"),
        ("customers", "external_id,name\n", "K1," + "n" * 301, "name: is 301 characters long"),
        ("customers", "external_id,name,phone\n", "K1,Ann," + "1" * 51, "phone: is 51 characters"),
        ("customers", "external_id,name,city\n", "K1,Ann,Pa\x00ris", "city: contains a NUL"),
        (
            "interactions",
            "customer,channel,occurred_at,body\n",
            "C1,email,2025-01-02,hi\x00there",
            "body: contains a NUL character",
        ),
        (
            "interactions",
            "customer,channel,occurred_at,staff\n",
            "C1,email,2025-01-02," + "s" * 101,
            "staff: is 101 characters long",
        ),
    ],
)
def test_what_the_database_refuses_is_refused_in_validation_with_its_line(
    make_crm, tmp_path, kind, header, row, where
):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    good = {
        "orders": "O0,C1,2025-01-01,1",
        "customers": "K0,Zed" + ("," if header.count(",") == 2 else ""),
        "interactions": "C1,email,2025-01-01,",
    }[kind]
    if kind == "orders" and "channel" in header:
        good += ",web"
    path = write(tmp_path / "f.csv", header + good + "\n" + row + "\n")
    result = import_file(crm, kind, path)
    assert not result.committed
    assert len(result.problems) == 1
    assert result.problem_lines()[0].startswith(f"{path}:3: {where}"), result.problem_lines()
    assert crm.customers.count() == 1 and order_count(crm) == 0
    assert crm.interactions.list(limit=None) == []
    # with --skip-invalid the good row goes in and the bad one is rejected
    skipped = import_file(crm, kind, path, skip_invalid=True)
    assert (skipped.stored, skipped.rejected) == (1, 1)


# -- 2. money ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ['"1,50"', '"1,5"', '"1,234.50"', "1 234", "1_000", "١٢"])
def test_ambiguous_amounts_are_refused_with_their_line(make_crm, tmp_path, amount):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(tmp_path / "o.csv", HEADER + f"O1,C1,2025-01-02,{amount}\n")
    result = import_file(crm, "orders", path)
    assert not result.committed
    [problem] = result.problem_lines()
    assert problem.startswith(f"{path}:2: amount: ") and "dot" in problem, problem
    assert order_count(crm) == 0


def test_decimal_comma_reads_a_comma_as_the_decimal_separator(make_crm, tmp_path):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(
        tmp_path / "o.csv",
        "external_id;customer;occurred_at;amount;cost\nO1;C1;2025-01-02;1,50;0,5\n"
        "O2;C1;2025-01-02;12;\nO3;C1;2025-01-02;1.50;\n",
    )
    result = import_file(crm, "orders", path, decimal_comma=True, skip_invalid=True)
    assert (result.stored, result.rejected) == (2, 1)
    assert "amount" in result.problem_lines()[0] and ":4:" in result.problem_lines()[0]
    assert crm.orders.get_by_external_id("O1").amount == Decimal("1.50")
    assert crm.orders.get_by_external_id("O1").cost == Decimal("0.50")


def test_negative_amounts_and_costs_only_for_refunds(make_crm, tmp_path):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(
        tmp_path / "o.csv",
        "external_id,customer,occurred_at,amount,cost,status\n"
        "O1,C1,2025-01-02,-5,,paid\n"
        "O2,C1,2025-01-02,5,-1,\n"
        "O3,C1,2025-01-02,-5,-2,refunded\n"
        "O4,C1,2025-01-02,-0,,paid\n",
    )
    result = import_file(crm, "orders", path, skip_invalid=True)
    assert (result.stored, result.rejected) == (2, 2), result.problem_lines()
    lines = result.problem_lines()
    assert lines[0].startswith(f"{path}:2: amount: -5 is negative") and "refunded" in lines[0]
    assert lines[1].startswith(f"{path}:3: cost: -1 is negative")
    assert crm.orders.get_by_external_id("O3").amount == Decimal("-5.00")
    customer = crm.customers.get_by_external_id("C1").id
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValidationError, match="negative"):
        crm.orders.add(customer_id=customer, occurred_at=now, amount=Decimal("-1"))
    refund = crm.orders.add(
        customer_id=customer, occurred_at=now, amount=Decimal("-1"), status="refunded"
    )
    with pytest.raises(ValidationError, match="negative"):
        crm.orders.set_status(refund.id, "paid")


def test_order_add_refuses_a_comma_amount(crm, cli_runner):
    crm.customers.add(name="A", external_id="C1")
    result = cli_runner(
        ["order", "add", "C1", "--amount", "1,50", "--occurred-at", "2026-01-01"], plugins=[]
    )
    assert result.exit_code == 1
    assert "1,50" in result.stderr and "dot" in result.stderr
    listed = cli_runner(["order", "list", "--format", "json"], plugins=[])
    assert json.loads(listed.output) == []


# -- order lines ---------------------------------------------------------------------


def test_order_lines_must_add_up_to_the_amount(crm):
    customer = crm.customers.add(name="A").id
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    lines = [OrderLine(product="tea", quantity=Decimal(2), price=Decimal("3.50"))]
    with pytest.raises(ValidationError, match=r"lines add up to 7\.00.*amount is 8"):
        crm.orders.add(customer_id=customer, occurred_at=now, amount=Decimal("8"), lines=lines)
    with pytest.raises(ValidationError, match="lines add up"):
        crm.orders.add_many(
            [{"customer_id": customer, "occurred_at": now, "amount": "1", "lines": lines}]
        )
    assert order_count(crm) == 0
    stored = crm.orders.add(customer_id=customer, occurred_at=now, amount=Decimal("7"), lines=lines)
    assert crm.orders.get(stored.id).lines[0].price == Decimal("3.50")


# -- 3. every row accounted for -------------------------------------------------------


def test_an_unbalanced_quote_loses_no_row(make_crm, tmp_path):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(
        tmp_path / "o.csv",
        HEADER
        + "O1,C1,2025-01-02,1\n"
        + 'O2,C1,"2025-01-02,2\n'
        + "O3,C1,2025-01-02,3\n"
        + "O4,C1,2025-01-02,4,extra\n"
        + "O5,C1,2025-01-02,5\n",
    )
    rejects = tmp_path / "rejects.csv"
    result = import_file(crm, "orders", path, skip_invalid=True, rejects=rejects)
    assert (result.read, result.stored, result.rejected) == (5, 3, 2), result.problem_lines()
    assert sorted(o.external_id for o in crm.orders.list(limit=None)) == ["O1", "O3", "O5"]
    lines = result.problem_lines()
    assert lines[0].startswith(f"{path}:3: ") and "quote" in lines[0], lines
    assert lines[1] == f"{path}:5: has 5 fields, the header has 4"
    with rejects.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    # the whole original rows, cell by cell
    assert rows[1][0] == "3" and rows[1][2:] == ["O2", "C1", '"2025-01-02', "2"]
    assert rows[2] == [
        "5",
        "has 5 fields, the header has 4",
        "O4",
        "C1",
        "2025-01-02",
        "4",
        "extra",
    ]
    assert rows[1][2:] and ",".join(rows[1][2:]) == 'O2,C1,"2025-01-02,2'


def test_a_quoted_field_over_several_lines_is_still_one_row(make_crm, tmp_path):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(
        tmp_path / "i.csv",
        "customer,channel,occurred_at,body\n"
        'C1,email,2025-01-02,"line 1\nline 2, ""quoted"""\n'
        "C1,phone,2025-01-03,\n",
    )
    result = import_file(crm, "interactions", path)
    assert (result.read, result.stored) == (2, 2)
    bodies = sorted(i.body for i in crm.interactions.list(limit=None))
    assert bodies == ["", 'line 1\nline 2, "quoted"']


def test_jsonl_rejects_keep_the_unreadable_line(make_crm, tmp_path):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(
        tmp_path / "o.jsonl",
        '{"external_id": "O1", "customer": "C1", "occurred_at": "2025-01-02", "amount": 1}\n'
        '{"external_id": "O2", "customer": "C1", broken\n',
    )
    rejects = tmp_path / "bad.jsonl"
    result = import_file(crm, "orders", path, skip_invalid=True, rejects=rejects)
    assert (result.read, result.stored, result.rejected) == (2, 1, 1)
    [entry] = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert entry["line"] == 2 and entry["text"] == '{"external_id": "O2", "customer": "C1", broken'


# -- 4. dates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "zone", "reason"),
    [
        ("9999-12-31T23:59:59-12:00", "UTC", "is out of range in UTC"),
        ("0001-01-01", "Asia/Shanghai", "is out of range in UTC"),
        ("0001-01-01T00:30", "Asia/Shanghai", "is out of range in UTC"),
        ("2026-03-29T02:30", "Europe/Berlin", "does not exist in Europe/Berlin"),
        ("2026-10-25T02:30", "Europe/Berlin", "happens twice in Europe/Berlin"),
    ],
)
def test_impossible_times_are_rejected_per_row(make_crm, tmp_path, moment, zone, reason):
    crm = make_crm(timezone=zone)
    crm.customers.add(name="A", external_id="C1")
    for kind, text in (
        ("orders", HEADER + f"O1,C1,{moment},1\nO2,C1,2025-06-01T12:00,2\n"),
        ("interactions", f"customer,channel,occurred_at\nC1,email,{moment}\nC1,email,2025-06-01\n"),
    ):
        path = write(tmp_path / f"{kind}.csv", text)
        result = import_file(crm, kind, path)
        assert not result.committed
        [problem] = result.problem_lines()
        assert problem.startswith(f"{path}:2: occurred_at: ") and reason in problem, problem
        skipped = import_file(crm, kind, path, skip_invalid=True)
        assert (skipped.read, skipped.stored, skipped.rejected) == (2, 1, 1)
    stored = crm.orders.get_by_external_id("O2").occurred_at
    assert stored == dt.datetime(2025, 6, 1, 12, tzinfo=zoneinfo.ZoneInfo(zone))


def test_a_time_with_an_offset_in_a_dst_gap_is_fine(make_crm, tmp_path):
    crm = make_crm(timezone="Europe/Berlin")
    crm.customers.add(name="A", external_id="C1")
    path = write(tmp_path / "o.csv", HEADER + "O1,C1,2026-03-29T02:30+01:00,1\n")
    assert import_file(crm, "orders", path).stored == 1


# -- 5. invalid UTF-8 ------------------------------------------------------------------


@pytest.mark.parametrize("rows", [3, 55_001])
def test_invalid_utf8_is_reported_on_its_line(make_crm, tmp_path, rows):
    crm = make_crm()
    body = "".join(f"O{n},C1,2025-01-02,{n}\n" for n in range(1, rows))
    path = tmp_path / "o.csv"
    path.write_bytes(HEADER.encode() + body.encode() + b"O\xff,C1,2025-01-02,1\n")
    with pytest.raises(ValidationError) as caught:
        import_file(crm, "orders", path)
    assert str(caught.value).startswith(f"{path}:{rows + 1}: the file is not valid utf-8")


def test_invalid_utf8_in_a_jsonl_file_is_reported_on_its_line(make_crm, tmp_path):
    crm = make_crm()
    path = tmp_path / "o.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 3 + b'{"a": "\xff"}\n')
    with pytest.raises(ValidationError, match=rf"^{path}:4: the file is not valid utf-8"):
        import_file(crm, "orders", path)


# -- 10. interactions are idempotent ----------------------------------------------------


def test_interactions_log_takes_an_external_id(crm):
    customer = crm.customers.add(name="A").id
    logged = crm.interactions.log(customer, "email", subject="Hi", external_id="MAIL-1")
    assert crm.interactions.get(logged.id).external_id == "MAIL-1"
    with pytest.raises(Conflict, match="MAIL-1"):
        crm.interactions.log(customer, "email", subject="Hi again", external_id="MAIL-1")
    # bulk: the ones already stored are skipped
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    stored = crm.interactions.log_many(
        [
            {"customer_id": customer, "channel": "chat", "occurred_at": now, "external_id": x}
            for x in ("MAIL-1", "CHAT-2")
        ]
    )
    assert stored == 1
    assert len(crm.interactions.list(limit=None)) == 2


@pytest.mark.parametrize("with_ids", [True, False])
def test_reimporting_an_interactions_file_stores_nothing_new(make_crm, tmp_path, with_ids):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    header = (
        "external_id,customer,channel,occurred_at,subject\n"
        if with_ids
        else ("customer,channel,occurred_at,subject\n")
    )
    rows = [
        "C1,phone,2025-01-02T10:00,Call",
        "C1,phone,2025-01-02T10:00,Call",  # the same call logged twice is two calls
        "C1,email,2025-01-03,Quote",
    ]
    if with_ids:
        rows = [f"I{n},{row}" for n, row in enumerate(rows)]
    path = write(tmp_path / "i.csv", header + "\n".join(rows) + "\n")
    first = import_file(crm, "interactions", path)
    assert (first.read, first.stored, first.already_present) == (3, 3, 0)
    again = import_file(crm, "interactions", path)
    assert (again.read, again.stored, again.already_present) == (3, 0, 3)
    assert len(crm.interactions.list(limit=None)) == 3
    keys = {i.external_id for i in crm.interactions.list(limit=None)}
    assert None not in keys and len(keys) == 3
    # the export writes them, so a re-import of the export stores nothing new either
    exported = tmp_path / "export.csv"
    export_file(crm, "interactions", exported)
    assert "external_id" in exported.read_text(encoding="utf-8").splitlines()[0]
    from_export = import_file(crm, "interactions", exported)
    assert (from_export.stored, from_export.already_present) == (0, 3)


def test_a_repeated_interaction_external_id_in_a_file_is_refused(make_crm, tmp_path):
    crm = make_crm()
    crm.customers.add(name="A", external_id="C1")
    path = write(
        tmp_path / "i.csv",
        "external_id,customer,channel,occurred_at\nI1,C1,email,2025-01-02\nI1,C1,chat,2025-01-03\n",
    )
    result = import_file(crm, "interactions", path)
    assert result.problem_lines() == [f"{path}:3: external_id: 'I1' appears earlier in the file"]


# -- writes about erased or merged customers (crm.customers.require_writable) ------------


def _merge_by_hand(crm, merged: int, kept: int) -> None:
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(t.customers).where(t.customers.c.id == merged).values(merged_into=kept)
        )


def test_orders_and_interactions_for_a_merged_customer_are_refused(make_crm, tmp_path):
    crm = make_crm()
    kept = crm.customers.add(name="Li Na", external_id="C1").id
    merged = crm.customers.add(name="Li Na (2)", external_id="C2").id
    gone = crm.customers.add(name="Gone", external_id="C3").id
    _merge_by_hand(crm, merged, kept)
    crm.customers.erase(gone)
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(Conflict, match=f"merged into customer {kept}"):
        crm.orders.add(customer_id=merged, occurred_at=now, amount=Decimal(1))
    with pytest.raises(Conflict, match="was erased"):
        crm.interactions.log(gone, "email", subject="hello")
    with pytest.raises(Conflict, match="was erased"):
        crm.orders.add_rows([("X1", gone, now, Decimal(1), None, "EUR", "paid", None)])
    path = write(tmp_path / "o.csv", HEADER + "O1,C1,2025-01-02,1\nO2,C2,2025-01-02,2\n")
    result = import_file(crm, "orders", path, skip_invalid=True)
    assert (result.stored, result.rejected) == (1, 1)
    assert result.problem_lines() == [
        f"{path}:3: customer: customer {merged} was merged into customer {kept}; "
        f"write to customer {kept} instead"
    ]
    interactions = write(tmp_path / "i.csv", "customer,channel,occurred_at\nC2,email,2025-01-02\n")
    assert import_file(crm, "interactions", interactions).rejected == 1
    assert crm.interactions.list(limit=None) == []


def test_a_customer_merged_between_the_passes_stores_nothing(make_crm, tmp_path, monkeypatch):
    from crmkit.transfer import importer

    crm = make_crm()
    kept = crm.customers.add(name="A", external_id="C1").id
    other = crm.customers.add(name="B", external_id="C2").id
    validate = importer.validate

    def validate_then_merge(*args, **kwargs):
        found = validate(*args, **kwargs)
        _merge_by_hand(crm, other, kept)  # another session merges meanwhile
        return found

    monkeypatch.setattr(importer, "validate", validate_then_merge)
    path = write(tmp_path / "o.csv", HEADER + "O1,C1,2025-01-02,1\nO2,C2,2025-01-02,2\n")
    with pytest.raises(Conflict, match="nothing of this import was stored"):
        import_file(crm, "orders", path)
    assert order_count(crm) == 0
