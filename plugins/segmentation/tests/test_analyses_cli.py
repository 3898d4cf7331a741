"""CLI: segment abc|pyramid|matrix|clusters|breakdown (JSON, CSV, HTML, one-line errors)."""

import datetime as dt
import json
from decimal import Decimal

from crmkit.testing import run_cli


def _seed(crm):
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    orders = []
    for i in range(12):
        c = crm.customers.add(
            name=f"C{i}",
            external_id=f"c{i}",
            region="North" if i % 2 else "South",
            industry="retail" if i < 6 else "banking",
            birth_date=dt.date(1960 + 3 * i, 5, 1),
            staff=10 + i,
        )
        for k in range(1 + i % 4):
            orders.append(
                dict(
                    customer_id=c.id,
                    occurred_at=t0 + dt.timedelta(days=30 * k + i),
                    amount=Decimal(10 * (i + 1) ** 2),
                    cost=Decimal(4 * (i + 1) ** 2),
                    currency="EUR",
                    status="paid",
                )
            )
    crm.orders.add_many(orders)


def _run(database_url, *args):
    res = run_cli(["segment", *args], database=database_url, plugins=["segmentation"])
    return res.exit_code, res.output


def test_value_commands(make_crm, database_url):
    _seed(make_crm(plugins=["segmentation"]))
    as_of = ("--as-of", "2024-12-31")
    code, out = _run(database_url, "abc", *as_of, "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert len(rows) == 12 and rows[0]["external_id"] == "c11" and rows[0]["class"] == "A"
    assert rows[0]["value"] == "5760.00"  # 4 orders of 10 × 12²
    code, out = _run(
        database_url, "abc", *as_of, "--measure", "margin", "--classes", "A=50,B=90,C",
        "--relationship", "A=partnership", "--summary", "--format", "json",
    )  # fmt: skip
    assert code == 0, out
    summary = json.loads(out)
    assert [s["class"] for s in summary] == ["A", "B", "C"]
    assert sum(s["customers"] for s in summary) == 12
    assert summary[0]["relationship"] == "partnership"
    code, out = _run(
        database_url, "pyramid", *as_of, "--scope", "region=North", "--tiers",
        "top=20,rest", "--relationship", "top=partnership", "--relationship", "rest=basic",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == "customer_id,external_id,rank,value,share,tier,relationship"
    assert len(lines) == 7 and ",top,partnership" in lines[1] and ",top," in lines[2]
    assert ",rest,basic" in lines[3]  # ceil(20% of 6) = 2 at the top
    code, out = _run(database_url, "matrix", *as_of, "--summary", "--format", "json")
    assert code == 0, out
    assert [q["quadrant"] for q in json.loads(out)] == ["invest", "maintain", "develop", "harvest"]
    code, out = _run(database_url, "pyramid", *as_of, "--format", "html")
    assert code == 0 and out.lstrip().lower().startswith("<!doctype html") and "<svg" in out


def test_clusters_and_breakdown_commands(make_crm, database_url):
    _seed(make_crm(plugins=["segmentation"]))
    as_of = ("--as-of", "2024-12-31")
    code, out = _run(
        database_url, "clusters", *as_of, "--k", "3", "--attribute", "staff", "--format", "json"
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["k"] == 3 and report["features"][-1] == "staff"
    assert sum(p["customers"] for p in report["rows"]) == 12
    code, out = _run(database_url, "clusters", *as_of, "--members", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "customer_id,external_id,cluster"
    code, out = _run(
        database_url, "breakdown", *as_of, "--by", "industry", "--by", "age_band",
        "--age-bands", "40,60", "--format", "json",
    )  # fmt: skip
    assert code == 0, out
    rows = json.loads(out)
    industry = {r["group"]: r["customers"] for r in rows if r["dimension"] == "industry"}
    assert industry == {"retail": 6, "banking": 6}
    ages = [(r["group"], r["customers"]) for r in rows if r["dimension"] == "age_band"]
    # born 1960 + 3i: ages 64, 61, 58, ..., 40, 37, 34, 31 on 2024-12-31
    assert ages == [("under 40", 3), ("40-59", 7), ("60+", 2)]
    code, out = _run(database_url, "breakdown", *as_of, "--format", "html")
    assert code == 0 and "revenue by age_band" in out


def test_errors_are_one_line(make_crm, database_url):
    _seed(make_crm(plugins=["segmentation"]))
    cases = [
        (("abc", "--as-of", "2020-01-01"), "before the first order"),
        (("abc", "--as-of", "2024-12-31", "--classes", "A=80,B=90"), "not 100%"),
        (("pyramid", "--as-of", "2024-12-31", "--scope", "colour=red"), "unknown scope"),
        (("matrix", "--as-of", "2024-12-31", "--relationship", "invest=bff"), "'bff'"),
        (("clusters", "--as-of", "2024-12-31", "--k", "20"), "at least 21 customers"),
        (("breakdown", "--as-of", "2024-12-31", "--age-bands", "x"), "whole years"),
        (("abc", "--as-of", "2024-12-31", "--discount-rate", "ten"), "expected a number"),
    ]
    for args, message in cases:
        code, out = _run(database_url, *args)
        assert code == 1, (args, out)
        assert out.startswith("error: ") and message in out and out.count("\n") == 1, out


def test_abc_and_pyramid_default_to_the_configured_thresholds(make_crm, database_url, tmp_path):
    """Without --classes/--tiers/--measure the commands use the same settings as snapshots."""
    _seed(make_crm(plugins=["segmentation"]))
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'database = "{database_url}"\nplugins = ["segmentation"]\n[segmentation]\n'
        'abc_measure = "margin"\nabc_thresholds = { A = 0.5, B = 0.9 }\n'
        "pyramid_shares = { vip = 0.25, major = 0.25, ordinary = 0.25 }\n",
        encoding="utf-8",
    )
    as_of = ("--as-of", "2024-12-31", "--format", "json")

    def run(*args):
        res = run_cli(["--config", str(config), "segment", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    configured = run("abc", *as_of)
    explicit = run("abc", *as_of, "--measure", "margin", "--classes", "A=50,B=90,C")
    assert configured == explicit
    assert configured != run("abc", *as_of, "--measure", "revenue", "--classes", "A=80,B=95,C")
    tiers = [row["tier"] for row in run("pyramid", *as_of)]
    assert tiers.count("vip") == 3 and tiers.count("small") == 3  # a quarter of 12 each
