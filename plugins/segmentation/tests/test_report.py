"""The HTML report (opened in headless Chromium), emit_report's formats, the 360 section."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from crmkit_segmentation import snapshots as snaps
from crmkit_segmentation.output import Chart, render_report

from crmkit.testing import artifacts_dir, chromium, generate_demo_data, run_cli


def seed(crm) -> list[int]:
    """Six customers; customer i buys i+1 times, 10.00 each, the last on day 10+i."""
    ids = [crm.customers.add(name=f"Customer <{i}>").id for i in range(6)]
    crm.orders.add_many(
        {
            "customer_id": cid,
            "occurred_at": dt.datetime(2024, 1, 10 + i - k, tzinfo=dt.UTC),
            "amount": "10.00",
            "cost": "6.00",
        }
        for i, cid in enumerate(ids)
        for k in range(i + 1)
    )
    return ids


def run(database_url: str, *args: str) -> str:
    res = run_cli(["segment", *args], database=database_url, plugins=["segmentation"])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.browser
def test_html_report_in_chromium(make_crm, database_url, tmp_path) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    seed(crm)
    html = run(database_url, "rfm", "--as-of", "2024-02-01", "--format", "html")
    rows = json.loads(run(database_url, "rfm", "--as-of", "2024-02-01", "--format", "json"))
    page = tmp_path / "rfm.html"
    page.write_text(html, encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    counts: dict[str, int] = {}
    money: dict[str, int] = {}
    for r in rows:
        counts[r["segment"]] = counts.get(r["segment"], 0) + 1
        money[r["segment"]] = money.get(r["segment"], 0) + int(float(r["monetary"]))
    assert counts and sum(counts.values()) == 6
    for segment, n in counts.items():  # one bar per segment in each chart, with its figure
        label = segment.replace("'", "&#39;")
        assert f'data-label="{label}" data-value="{n}"' in dom
        assert re.search(rf'data-label="{label}" data-value="{money[segment]}(\.0+)?"', dom)
    assert dom.count("<svg") == 2 and dom.count('class="bar"') == 2 * len(counts)
    table = dom.split('id="rows"')[1]
    assert table.count("<tr>") == 7  # header and six customers
    body = dom.split("<body>")[1].replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http" not in body and "<script" not in body and "<link" not in dom
    shot = artifacts_dir() / "segmentation_report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,1200", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 1000


def test_render_formats_escape_and_extras() -> None:
    rows = [
        {"customer_id": 1, "segment": "<b>top</b>", "monetary": "5.50"},
        {"customer_id": 2, "segment": "<b>top</b>", "monetary": "4.50"},
        {"customer_id": 3, "segment": "low", "monetary": "1.00"},
    ]
    report = {"fit": {"r": 0.25, "converged": True}, "rows": rows}
    html = render_report(report, "html", title="T & <x>")
    assert "<title>T &amp; &lt;x&gt;</title>" in html and "<b>top</b>" not in html
    assert 'data-label="&lt;b&gt;top&lt;/b&gt;" data-value="2"' in html
    assert 'data-label="&lt;b&gt;top&lt;/b&gt;" data-value="10.00"' in html  # Decimal sum
    assert "<th>r</th><td>0.25</td>" in html
    assert json.loads(render_report(report, "json"))["fit"] == {"r": 0.25, "converged": True}
    assert render_report(report, "csv").splitlines() == [
        "customer_id,segment,monetary",
        "1,<b>top</b>,5.50",
        "2,<b>top</b>,4.50",
        "3,low,1.00",
    ]
    bars = render_report(rows, "html", chart=Chart("given", (("x", 3), ("y", 1))))
    assert bars.count("<svg") == 1 and 'data-label="y" data-value="1"' in bars
    assert render_report(rows, "html", chart=False).count("<svg") == 0
    assert "(no rows)" in render_report([], "html")


def test_diff_html_and_customer_360(make_crm, database_url) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    ids = seed(crm)
    a = snaps.take_snapshot(crm, "rfm", dt.date(2024, 1, 12))
    crm.orders.add_many(  # the smallest customer buys ten times and overtakes customer 3
        {"customer_id": ids[0], "occurred_at": dt.datetime(2024, 1, 20, tzinfo=dt.UTC),
         "amount": "10.00"}
        for _ in range(10)
    )  # fmt: skip
    b = snaps.take_snapshot(crm, "rfm", dt.date(2024, 2, 1))
    html = run(database_url, "diff", str(a.id), str(b.id), "--format", "html")
    report = snaps.movement(crm, a.id, b.id)
    for move in report["moves"]:
        assert f'data-value="{move["customers"]}"' in html
    assert {(m["from"], m["to"], m["customers"]) for m in report["moves"]} == {
        ("need attention", "champions", 1),
        ("champions", "need attention", 1),
    }
    assert html.count('class="bar-row"') == 2 and "need attention → champions" in html
    view = crm.customers.view(ids[5])
    section = next(s for s in view.sections if s.name == "segmentation")
    assert section.title == "Segments and value"
    assert [(s["scheme"], s["segment"], s["as_of"]) for s in section.data["segments"]] == [
        ("rfm", "champions", "2024-02-01")
    ]
    assert section.data["historical"] == {
        "orders": "6",
        "revenue": "60.00",
        "margin": "24.00",
        "uncosted": "0",
    }
    page = crm.templates.get_template(section.template).render(**section.data)
    assert "<td>champions</td>" in page and "60.00" in page
    fresh = crm.customers.add(name="No orders")
    assert not [s for s in crm.customers.view(fresh.id).sections if s.name == "segmentation"]


def test_clv_html_report(make_crm, database_url) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {
        "demo_snapshot_schemes": []}})  # fmt: skip
    generate_demo_data(crm, customers=200, seed=7, today=dt.date(2026, 11, 23))
    html = run(database_url, "clv", "--as-of", "2026-11-22", "--format", "html")
    scored = len(json.loads(run(database_url, "clv", "--as-of", "2026-11-22", "--format",
                                "json"))["customers"])  # fmt: skip
    first_chart = html.split("<h2>customers by P(alive)</h2>")[1].split("</svg>")[0]
    counts = re.findall(r'data-label="[0-9.-]+" data-value="(\d+)"', first_chart)
    assert len(counts) == 4 and sum(map(int, counts)) == scored > 0  # every customer in a band
    assert html.count("<svg") == 2 and "<th>alpha</th>" in html
    assert html.split('id="rows"')[1].count("<tr>") == scored + 1
