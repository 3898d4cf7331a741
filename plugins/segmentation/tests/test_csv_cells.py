"""CSV formula injection: the campaign list and every CSV the plugin writes neutralise cells
a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from crmkit_segmentation import snapshots as snaps

from crmkit.plugin import restore_cell
from crmkit.testing import generate_demo_data

AS_OF = dt.date(2024, 3, 31)
NAME = '=HYPERLINK("http://x","y")'
EXTERNAL_ID = "@SUM(1+1)"


def seed(crm) -> list[int]:
    ids = [
        crm.customers.add(name=NAME, external_id=EXTERNAL_ID, email="=1+2@x.cn").id,
        crm.customers.add(name="-cmd|' /C calc'!A0", external_id="+SUM(1)").id,
        crm.customers.add(name="Plain", external_id="-12.50").id,
    ]
    crm.orders.add_many(
        {
            "customer_id": cid,
            "occurred_at": dt.datetime(2024, 1 + k, 5 + i, tzinfo=dt.UTC),
            "amount": Decimal(10 * (i + 1)),
        }
        for i, cid in enumerate(ids)
        for k in range(i + 1)
    )
    for cid in ids:
        crm.customers.set_consent(cid, "marketing", True)
    return ids


def cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_campaign_list_neutralises_formula_cells(make_crm, cli_runner, tmp_path) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    seed(crm)
    snap = snaps.take_snapshot(crm, "abc", AS_OF)
    rows, text = {}, ""
    for label in ("A", "B", "C"):
        out = tmp_path / f"{label}.csv"
        res = cli_runner(
            ["segment", "export", label, "--scheme", "abc", "--snapshot", str(snap.id),
             "--output", str(out)],
            plugins=["segmentation"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        text += out.read_text(encoding="utf-8")
        rows.update({r[1]: r for r in cells(out.read_text(encoding="utf-8"))[1:]})
    assert len(rows) == 3
    evil = rows["'" + EXTERNAL_ID]  # the external id is quoted too
    assert evil[2] == "'" + NAME and evil[3] == "'=1+2@x.cn"
    # nothing a spreadsheet would run is left, and the importers' restore_cell undoes it
    for row in rows.values():
        assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in row)
    assert rows["'+SUM(1)"][2] == "'-cmd|' /C calc'!A0"
    assert [restore_cell(c) for c in evil[1:4]] == [EXTERNAL_ID, NAME, "=1+2@x.cn"]
    assert "'-12.50" not in text and "-12.50" in rows  # a plain negative number stays a number


def test_analysis_and_clv_csv_neutralise_formula_cells(make_crm, cli_runner) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {
        "demo_snapshot_schemes": []}})  # fmt: skip
    generate_demo_data(crm, customers=150, seed=3, today=dt.date(2026, 11, 23))
    first = crm.customers.list(limit=2)
    crm.customers.update(first[0].id, external_id=EXTERNAL_ID, name=NAME)
    crm.customers.update(first[1].id, external_id="=HYPERLINK(1)")

    def csv_of(*args):
        res = cli_runner(["segment", *args, "--format", "csv"], plugins=["segmentation"])
        assert res.exit_code == 0, res.output
        return cells(res.stdout)

    as_of = ["--as-of", "2026-11-22"]
    for command in (["abc"], ["pyramid"], ["matrix"], ["clusters", "--members", "--k", "3"]):
        table = csv_of(*command, *as_of)
        column = table[0].index("external_id")
        ids = {row[column] for row in table[1:]}
        assert {"'" + EXTERNAL_ID, "'=HYPERLINK(1)"} <= ids, command
        assert EXTERNAL_ID not in ids and not any(i.startswith(("=", "@")) for i in ids)
    table = csv_of("clv", *as_of)
    column = table[0].index("customer")
    assert {"'" + EXTERNAL_ID, "'=HYPERLINK(1)"} <= {row[column] for row in table[1:]}
    assert all(row[table[0].index("clv")][0].isdigit() for row in table[1:])
