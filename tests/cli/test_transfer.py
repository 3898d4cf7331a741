"""``crmkit import`` / ``crmkit export`` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import pty
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli

ENV = {"CRMKIT_PLUGINS": ""}


def run(url: str, *args: str, config: Path | None = None):
    prefix = ["--config", str(config)] if config else []
    return CliRunner().invoke(cli, [*prefix, "--database", url, *args], obj=CliState(), env=ENV)


@pytest.fixture
def db(database_url: str) -> str:
    crmkit.open(database_url, plugins=[], upgrade=True).close()
    return database_url


def open_crm(url: str) -> crmkit.CRM:
    return crmkit.open(url, plugins=[])


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def add_customers(url: str, *external_ids: str) -> None:
    with open_crm(url) as crm:
        crm.customers.add_many({"external_id": e, "name": f"Customer {e}"} for e in external_ids)


ORDERS = (
    "external_id,customer,occurred_at,amount,cost,currency,status\n"
    "O1,C1,2025-01-02,12.50,8,EUR,paid\n"
    "O2,C2,2025-01-03T10:00:00+08:00,1000.0001,,EUR,refunded\n"
    "O3,C1,2025-01-04 09:30,7,,,\n"
)


def test_orders_import_stores_rows_and_second_import_stores_nothing(db, tmp_path):
    add_customers(db, "C1", "C2")
    path = write(tmp_path / "orders.csv", ORDERS)
    first = run(db, "import", "orders", str(path))
    assert first.exit_code == 0, first.output
    assert "read 3, stored 3, already present 0" in first.output
    assert "rejected 0" in first.output
    second = run(db, "import", "orders", str(path))
    assert second.exit_code == 0, second.output
    assert "read 3, stored 0, already present 3" in second.output
    with open_crm(db) as crm:
        c1 = crm.customers.get_by_external_id("C1")
        o1 = crm.orders.get_by_external_id("O1")
        o2 = crm.orders.get_by_external_id("O2")
        o3 = crm.orders.get_by_external_id("O3")
        assert o1.customer_id == c1.id
        assert o1.amount == Decimal("12.50") and o1.cost == Decimal("8.00")
        assert o1.occurred_at == dt.datetime(2025, 1, 2, tzinfo=dt.UTC)  # config zone is UTC
        assert o2.amount == Decimal("1000.0001") and o2.status == "refunded"
        assert o2.occurred_at == dt.datetime(2025, 1, 3, 2, 0, tzinfo=dt.UTC)
        assert o3.currency == crm.config.currency and o3.status == "paid"
        assert len(crm.orders.list(limit=None)) == 3


def test_atomic_import_lists_every_bad_row_and_stores_nothing(db, tmp_path):
    add_customers(db, "C1")
    path = write(
        tmp_path / "orders.csv",
        "external_id,customer,occurred_at,amount\n"
        "O1,C1,2025-01-02,10\n"
        "O2,C404,2025-01-02,10\n"
        "O3,C1,last tuesday,10\n"
        "O4,C1,2025-01-02,ten\n"
        "O1,C1,2025-01-02,10\n"
        "O6,C1,2025-01-02\n"
        "O7,C1,2025-01-02,10\n",
    )
    result = run(db, "import", "orders", str(path))
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[:5] == [
        f"{path}:3: customer: no customer has external_id 'C404'",
        f"{path}:4: occurred_at: 'last tuesday' is not an ISO date or datetime such as 2025-03-01T14:30",
        f"{path}:5: amount: 'ten' is not a decimal number such as 1234.50 (digits, a dot "
        "before the decimals, no thousands separators)",
        f"{path}:6: external_id: 'O1' appears earlier in the file",
        f"{path}:7: has 3 fields, the header has 4",
    ]
    assert errors[-1].startswith("error: 5 of 7 rows")
    assert "nothing was stored" in errors[-1]
    assert "Traceback" not in result.output
    with open_crm(db) as crm:
        assert crm.orders.list(limit=None) == []


def test_skip_invalid_writes_rejects_and_the_accounting_adds_up(db, tmp_path):
    add_customers(db, "C1")
    path = write(
        tmp_path / "orders.csv",
        "external_id,customer,occurred_at,amount\n"
        "O1,C1,2025-01-02,10\n"
        "O2,C404,2025-01-02,10\n"
        "O3,C1,2025-13-01,10\n"
        "O4,C1,2025-01-02,4.5\n",
    )
    rejects = tmp_path / "rejects.csv"
    result = run(db, "import", "orders", str(path), "--skip-invalid", "--rejects", str(rejects))
    assert result.exit_code == 0, result.output
    assert "read 4, stored 2, already present 0 (skipped, already stored), rejected 2" in (
        result.stdout
    )
    lines = rejects.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line,reason,external_id,customer,occurred_at,amount"
    assert lines[1] == "3,customer: no customer has external_id 'C404',O2,C404,2025-01-02,10"
    assert lines[2].startswith("4,occurred_at: '2025-13-01' is not an ISO date")
    # again, with one more valid row: old ones are already present, the bad ones rejected again
    with path.open("a", encoding="utf-8") as handle:
        handle.write("O5,C1,2025-02-01,1\n")
    again = run(db, "import", "orders", str(path), "--skip-invalid")
    assert "read 5, stored 1, already present 2 (skipped, already stored), rejected 2" in (
        again.stdout
    )
    with open_crm(db) as crm:
        stored = sorted(o.external_id for o in crm.orders.list(limit=None))
    assert stored == ["O1", "O4", "O5"]


def test_more_than_100_bad_rows_lists_100_then_a_count(db, tmp_path):
    add_customers(db, "C1")
    rows = "".join(f"O{n},C1,2025-01-02,x{n}\n" for n in range(150))
    path = write(tmp_path / "orders.csv", "external_id,customer,occurred_at,amount\n" + rows)
    result = run(db, "import", "orders", str(path))
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert sum(": amount: " in e for e in errors) == 100
    assert "... and 50 more bad rows" in errors


def test_customers_with_bom_semicolons_and_declared_attributes(db, tmp_path):
    config = write(
        tmp_path / "crmkit.toml",
        'timezone = "Asia/Shanghai"\nplugins = []\n'
        '[attributes.vip_level]\ntype = "choice"\nchoices = ["gold", "silver"]\n'
        '[attributes.employees]\ntype = "integer"\n',
    )
    path = tmp_path / "customers.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + (
            "external_id;name;email;province;city;birth_date;vip_level;employees;hobby\n"
            "C1;李伟;li@example.cn;浙江;杭州;1980-04-30;gold;12;围棋\n"
            '"C2";"Müller; Söhne";;Bavaria;Munich;;silver;;\n'
            "C3;Bad;x;;;;platinum;;\n"
            "C4;Bad too;;;;1980-02-30;;many;\n"
        ).encode()
    )
    result = run(db, "import", "customers", str(path), config=config)
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0] == (
        f"{path}:4: vip_level: attribute 'vip_level' is 'platinum'; use one of: gold, silver"
    )  # one problem per row: the first found
    assert errors[1] == f"{path}:5: employees: attribute 'employees' expects integer, got 'many'"
    assert len(errors) == 4
    ok = run(db, "import", "customers", str(path), "--skip-invalid", config=config)
    assert ok.exit_code == 0, ok.output
    assert "read 4, stored 2, already present 0 (skipped, already stored), rejected 2" in ok.stdout
    with open_crm(db) as crm:
        c1 = crm.customers.get_by_external_id("C1")
        c2 = crm.customers.get_by_external_id("C2")
    assert (c1.name, c1.province, c1.city) == ("李伟", "浙江", "杭州")
    assert c1.birth_date == dt.date(1980, 4, 30)
    assert c1.attributes == {"vip_level": "gold", "employees": 12, "hobby": "围棋"}
    assert c2.name == "Müller; Söhne" and c2.email is None
    assert c2.attributes == {"vip_level": "silver"}


def test_declared_attribute_is_validated(db, tmp_path):
    config = write(
        tmp_path / "crmkit.toml",
        'plugins = []\n[attributes.employees]\ntype = "integer"\n',
    )
    path = write(tmp_path / "c.csv", "external_id,name,employees\nC1,Acme,lots\n")
    result = run(db, "import", "customers", str(path), config=config)
    assert result.exit_code == 1
    assert f"{path}:2: employees: attribute 'employees' expects integer, got 'lots'" in (
        result.stderr
    )


def test_naive_times_are_in_the_configured_zone_and_jsonl_is_read(db, tmp_path):
    config = write(tmp_path / "crmkit.toml", 'timezone = "Asia/Shanghai"\nplugins = []\n')
    add_customers(db, "C1")
    path = write(
        tmp_path / "orders.ndjson",
        '{"external_id": "O1", "customer": "C1", "occurred_at": "2025-01-02", "amount": 10.5}\n'
        "\n"
        '{"external_id": "O2", "customer": "C1", "occurred_at": "2025-01-02T09:00", '
        '"amount": "3"}\n'
        '{"external_id": "O3", "customer": "C1", "occurred_at": "2025-01-02T09:00Z", '
        '"amount": 1}\n',
    )
    result = run(db, "import", "orders", str(path), config=config)
    assert result.exit_code == 0, result.output
    with open_crm(db) as crm:
        o1 = crm.orders.get_by_external_id("O1")
        o2 = crm.orders.get_by_external_id("O2")
        o3 = crm.orders.get_by_external_id("O3")
    assert o1.occurred_at == dt.datetime(2025, 1, 1, 16, 0, tzinfo=dt.UTC)
    assert o1.amount == Decimal("10.50")
    assert o2.occurred_at == dt.datetime(2025, 1, 2, 1, 0, tzinfo=dt.UTC)
    assert o3.occurred_at == dt.datetime(2025, 1, 2, 9, 0, tzinfo=dt.UTC)


def test_bad_json_lines_are_reported_with_their_line(db, tmp_path):
    add_customers(db, "C1")
    path = write(
        tmp_path / "orders.jsonl",
        '{"external_id": "O1", "customer": "C1", "occurred_at": "2025-01-02", "amount": 1}\n'
        "{not json\n"
        "[1, 2]\n"
        '{"external_id": "O4", "customer": "C1", "occurred_at": "2025-01-02"}\n'
        '{"external_id": "O5", "customer": "C1", "occurred_at": "2025-01-02", "amount": 1.5,'
        ' "colour": "red"}\n',
    )
    result = run(db, "import", "orders", str(path))
    assert result.exit_code == 1
    assert f"{path}:2: is not valid JSON" in result.stderr
    assert f"{path}:3: is not a JSON object" in result.stderr
    assert f"{path}:4: amount: is missing" in result.stderr
    assert f"{path}:5: colour: is not an order field" in result.stderr


def test_gbk_file_needs_the_encoding_option(db, tmp_path):
    path = write(
        tmp_path / "customers.csv",
        "external_id,name,city\nC1,张伟,北京\nC2,王芳,上海\n",
        encoding="gbk",
    )
    wrong = run(db, "import", "customers", str(path))
    assert wrong.exit_code == 1
    assert wrong.stderr.strip().splitlines()[-1].startswith(f"error: {path}")
    assert "--encoding" in wrong.stderr and "Traceback" not in wrong.output
    ok = run(db, "import", "customers", str(path), "--encoding", "gbk")
    assert ok.exit_code == 0, ok.output
    with open_crm(db) as crm:
        assert crm.customers.get_by_external_id("C2").city == "上海"


def test_interactions_import(db, tmp_path):
    add_customers(db, "C1")
    path = write(
        tmp_path / "i.tsv",
        "customer\tchannel\toccurred_at\tdirection\tsubject\tbody\n"
        "C1\temail\t2025-03-01T10:00:00+00:00\toutbound\tQuote\tDear Li, 报价如下\n"
        "C1\tpigeon\t2025-03-01\t\t\t\n",
    )
    result = run(db, "import", "interactions", str(path), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "read 2, stored 1" in result.stdout and "rejected 1" in result.stdout
    with open_crm(db) as crm:
        [item] = crm.interactions.list(limit=None)
    assert (item.channel, item.direction, item.body) == ("email", "outbound", "Dear Li, 报价如下")


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_export_import_export_round_trip(database_url, tmp_path, suffix):
    first_db = database_url
    crmkit.open(first_db, plugins=[], upgrade=True).close()
    with open_crm(first_db) as crm:
        crm.customers.add_many(
            [
                {
                    "external_id": "C1",
                    "name": "李伟",
                    "email": "li@example.cn",
                    "city": "杭州",
                    "birth_date": "1980-04-30",
                    "hobby": "围棋, chess",
                    "note": 'say "hi"',
                },
                {
                    "external_id": "C2",
                    "name": "Acme; Ltd",
                    "type": "organisation",
                    "kind": "enterprise",
                    "status": "prospect",
                    "phone": "+33 1 23",
                },
                {  # cells a spreadsheet would run as formulas
                    "external_id": "@SUM(1+1)",
                    "name": '=HYPERLINK("http://evil.example","click")',
                    "city": "-Paris",
                    "note": "'=already quoted",
                },
            ]  # fmt: skip
        )
        ids = crm.customers.ids_by_external_id(["C1", "C2", "@SUM(1+1)"])
        crm.orders.add(external_id="=1+2", customer_id=ids["@SUM(1+1)"], amount=Decimal("-3"),
                       status="refunded", channel="+web",
                       occurred_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))  # fmt: skip
        crm.interactions.log(ids["@SUM(1+1)"], "email", subject="=cmd|' /C calc'!A0",
                             body="\tindented", staff="@admin", external_id="-I1",
                             occurred_at=dt.datetime(2025, 2, 2, tzinfo=dt.UTC))  # fmt: skip
        crm.orders.add_many(
            {
                "external_id": f"O{n}",
                "customer_id": ids["C1" if n % 3 else "C2"],
                "occurred_at": dt.datetime(2025, 1, 1, 8, n, 5, 123000, tzinfo=dt.UTC),
                "amount": Decimal(n) + Decimal("0.0001") * n,
                "cost": None if n % 2 else Decimal("1.5"),
                "status": "refunded" if n == 4 else "paid",
            }
            for n in range(1, 8)
        )
        crm.interactions.log(ids["C2"], "chat", subject="Hi", body="line 1\nline 2, «ok»",
                             occurred_at=dt.datetime(2025, 2, 1, tzinfo=dt.UTC))  # fmt: skip
    second_db = f"sqlite:///{tmp_path / 'second.db'}"
    crmkit.open(second_db, plugins=[], upgrade=True).close()
    for kind in ("customers", "orders", "interactions"):
        exported = tmp_path / f"{kind}-1.{suffix}"
        result = run(first_db, "export", kind, "--output", str(exported))
        assert result.exit_code == 0, result.output
        imported = run(second_db, "import", kind, str(exported))
        assert imported.exit_code == 0, imported.output
        again = tmp_path / f"{kind}-2.{suffix}"
        assert run(second_db, "export", kind, "--output", str(again)).exit_code == 0
        assert exported.read_bytes() == again.read_bytes(), kind
    text = (tmp_path / f"orders-1.{suffix}").read_text(encoding="utf-8")
    assert "1.0001" in text and "2025-01-01T08:01:05.123000+00:00" in text
    if suffix == "csv":  # no cell starts a formula; plain negative numbers stay numbers
        for kind in ("customers", "orders", "interactions"):
            with (tmp_path / f"{kind}-1.csv").open(encoding="utf-8", newline="") as handle:
                cells = [c for row in csv.reader(handle) for c in row]
            assert not [c for c in cells if c[:1] in ("=", "@", "+", "\t") or
                        (c[:1] == "-" and c != "-3.00")], kind  # fmt: skip
        customers_text = (tmp_path / "customers-1.csv").read_text(encoding="utf-8")
        assert "'@SUM(1+1)" in customers_text and "''=already quoted" in customers_text
        assert ",-3.00," in text and "'=1+2" in text
    with open_crm(second_db) as crm:
        evil = crm.customers.get_by_external_id("@SUM(1+1)")
        assert evil.name == '=HYPERLINK("http://evil.example","click")'
        assert evil.city == "-Paris" and evil.attributes["note"] == "'=already quoted"
        order = crm.orders.get_by_external_id("=1+2")
        assert order.amount == Decimal("-3.00") and order.channel == "+web"
        [mail] = crm.interactions.list(customer_id=evil.id)
        assert (mail.subject, mail.body, mail.staff, mail.external_id) == (
            "=cmd|' /C calc'!A0",
            "\tindented",
            "@admin",
            "-I1",
        )
    if suffix == "jsonl":
        first = json.loads((tmp_path / "customers-1.jsonl").read_text().splitlines()[0])
        assert first["hobby"] == "围棋, chess" and first["name"] == "李伟"


def test_user_mistakes_are_one_line_without_traceback(db, tmp_path):
    cases = [
        (["import", "orders", str(tmp_path / "missing.csv")], "cannot read"),
        (["import", "orders", str(write(tmp_path / "e.csv", ""))], "is empty"),
        (
            ["import", "orders", str(write(tmp_path / "h.csv", "external_id,customer\n"))],
            "the header has no 'occurred_at' column",
        ),
        (
            [
                "import",
                "orders",
                str(write(tmp_path / "u.csv", "external_id,customer,occurred_at,amount,colour\n")),
            ],  # fmt: skip
            "column 'colour' is not an order field",
        ),
        (
            ["import", "orders", str(write(tmp_path / "x.csv", "a\n")), "--encoding", "klingon"],
            "encoding 'klingon' is not known",
        ),
        (["import", "orders", str(tmp_path / "x.csv"), "--rejects", "r.csv"], "--skip-invalid"),
    ]
    for args, message in cases:
        result = run(db, *args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
        assert message in lines[0], (args, lines)
    bad_url = CliRunner().invoke(
        cli, ["--database", "nosuch://x", "import", "orders", str(tmp_path / "x.csv")],
        obj=CliState(), env=ENV,
    )  # fmt: skip
    assert bad_url.exit_code == 1 and bad_url.stderr.startswith("error: ")
    assert len(bad_url.stderr.strip().splitlines()) == 1


def _console_script() -> list[str]:
    script = shutil.which("crmkit")
    return [script] if script else [sys.executable, "-c", "from crmkit.cli import main; main()"]


def test_console_script_imports_and_exports(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    env = {**os.environ, "CRMKIT_PLUGINS": ""}
    customers = write(tmp_path / "c.csv", "external_id,name\nC1,Ann\nC2,Bo\n")
    orders = write(
        tmp_path / "o.csv", "external_id,customer,occurred_at,amount\nO1,C2,2025-01-01,5\n"
    )
    crmkit.open(url, plugins=[], upgrade=True).close()
    for args in (["import", "customers", str(customers)], ["import", "orders", str(orders)]):
        done = subprocess.run([*_console_script(), "--database", url, *args], env=env,
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # no progress bar when stderr is not a terminal
    out = tmp_path / "orders.jsonl"
    done = subprocess.run([*_console_script(), "--database", url, "export", "orders", "-o",
                           str(out)], env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text())
    assert row == {"external_id": "O1", "customer": "C2", "occurred_at": "2025-01-01T00:00:00+00:00",
                   "amount": "5.00", "currency": "EUR", "status": "paid"}  # fmt: skip


def test_console_script_bad_file_exits_non_zero_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crmkit.open(url, plugins=[], upgrade=True).close()
    env = {**os.environ, "CRMKIT_PLUGINS": ""}
    bad = write(tmp_path / "o.csv", "external_id,customer,occurred_at,amount\nO1,C9,2025-01-01,5\n")
    done = subprocess.run([*_console_script(), "--database", url, "import", "orders", str(bad)],
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1
    assert "no customer has external_id 'C9'" in done.stderr
    assert "Traceback" not in done.stderr


def test_progress_bar_on_a_terminal_covers_both_passes(tmp_path):
    """stderr is a real pseudo-terminal here: click draws the bar for each pass."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crm = crmkit.open(url, plugins=[], upgrade=True)
    crm.customers.add(name="Ann", external_id="C1")
    crm.close()
    lines = "".join(f"O{n},C1,2025-01-01,{n}.50\n" for n in range(20_000))
    orders = write(tmp_path / "o.csv", "external_id,customer,occurred_at,amount\n" + lines)
    leader, follower = pty.openpty()
    env = {**os.environ, "CRMKIT_PLUGINS": "", "COLUMNS": "80"}
    done = subprocess.run([*_console_script(), "--database", url, "import", "orders",
                           str(orders)], env=env, stdout=subprocess.PIPE, stderr=follower,
                          text=True, timeout=120)  # fmt: skip
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed once everything was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert done.returncode == 0, drawn
    assert "stored 20000" in done.stdout
    bar = drawn.decode()
    assert "validating" in bar and "storing" in bar
    assert bar.count("100%") >= 2  # each pass reaches its end


def test_customer_list_csv_neutralises_formulas(db):
    with open_crm(db) as crm:
        crm.customers.add(name="=1+1", external_id="@x")
    result = run(db, "customer", "list", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(result.stdout.splitlines()))
    assert "'=1+1" in rows[1] and "'@x" in rows[1], rows
