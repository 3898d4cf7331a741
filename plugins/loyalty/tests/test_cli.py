"""The ``crmkit loyalty`` commands, errors as one line, and the HTML statement in Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty.plugin import EXAMPLES
from crmkit_loyalty.testing import at, pay

from crmkit.testing import artifacts_dir, chromium, run_cli


def run(url: str, *args: str) -> Any:
    return run_cli(["loyalty", *args], database=url, plugins=["loyalty"])


@pytest.fixture
def shop(make_crm: Any, database_url: str) -> Any:
    crm = make_crm(plugins=["loyalty"])
    ann = crm.customers.add(name="Ann <b>Lee</b>")
    ben = crm.customers.add(name="Ben")
    r = run(database_url, "programs", "load", str(EXAMPLES / "retail_club.toml"))
    assert r.exit_code == 0, r.output
    assert "program 'retail-club' loaded (enabled): 3 tiers, 6 earn rules, 3 rewards" in r.output
    return crm, database_url, ann, ben


def test_cli_walkthrough(shop: Any) -> None:
    crm, url, ann, ben = shop
    assert (
        "enrolled in 'retail-club' (tier member, balance 50)"
        in run(url, "enrol", str(ann.id)).output
    )
    r = run(url, "enrol", str(ben.id), "--referred-by", str(ann.id))
    assert r.exit_code == 0, r.output
    pay(crm, ann.id, "620.00", at(2026, 3, 1))  # silver at once (500 spent)
    pay(crm, ben.id, "10.00", at(2026, 3, 2))  # ben's first order: referral bonuses
    r = run(url, "balance", str(ann.id), "--format", "json")
    row = json.loads(r.output)[0]
    assert (row["tier"], row["balance"]) == ("silver", 50 + 620 + 200)
    r = run(url, "redeem", str(ann.id), "voucher-5", "--staff", "till-3")
    assert r.exit_code == 0 and "redeemed 'voucher-5' for 500 points; balance 370" in r.output
    r = run(url, "adjust", str(ann.id), "30", "--reason", "damaged parcel", "--staff", "sam")
    assert r.exit_code == 0 and "balance 400" in r.output
    r = run(url, "statement", str(ann.id))
    assert r.exit_code == 0
    assert "tier silver, balance 400" in r.output and "by sam; damaged parcel" in r.output
    r = run(url, "statement", str(ann.id), "--format", "json")
    statement = json.loads(r.output)
    assert [e["points"] for e in statement["entries"]] == [50, 620, 200, -500, 30]
    assert statement["entries"][-1]["balance"] == 400
    r = run(url, "members", "--format", "json")
    assert [(m["name"], m["tier"]) for m in json.loads(r.output)] == [
        ("Ann <b>Lee</b>", "silver"), ("Ben", "member"),
    ]  # fmt: skip
    r = run(url, "members", "--tier", "member", "--format", "json")
    assert [m["name"] for m in json.loads(r.output)] == ["Ben"]
    r = run(url, "liability", "--format", "json")
    rows = {x["tier"]: x for x in json.loads(r.output)}
    assert rows["silver"]["points"] == 400 and rows["silver"]["value"] == "4.00"
    r = run(url, "rewards")
    assert "coffee-machine" in r.output and "unlimited" in r.output
    r = run(url, "review-tiers", "--as-of", "2027-06-30", "--format", "json")
    assert [(c["customer_id"], c["from"], c["to"]) for c in json.loads(r.output)] == [
        (ann.id, "silver", "member")
    ]
    r = run(url, "expire", "--as-of", "2028-12-31")
    assert "2 members lost" in r.output
    assert run(url, "expire", "--as-of", "2028-12-31").output.startswith("0 members lost")
    r = run(url, "what-if", str(EXAMPLES / "airline_miles.toml"), "--format", "json")
    report = json.loads(r.output)
    assert report["orders"] == 2 and report["points_by_rule"]["first-flight"] == 4000
    r = run(url, "what-if", str(EXAMPLES / "airline_miles.toml"))
    assert "cost % of spend" in r.output
    r = run(url, "programs", "list", "--format", "json")
    assert json.loads(r.output)[0]["members"] == 2
    assert run(url, "birthdays", "--as-of", "2026-05-01").exit_code == 0
    assert run(url, "earn").output.startswith("2 paid orders checked")
    assert run(url, "programs", "disable", "retail-club").exit_code == 0
    assert "no loyalty program is enabled" in run(url, "balance", str(ann.id)).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["redeem", "{ann}", "voucher-20"],
            "has 50 points in 'retail-club'; 1 x 'voucher-20' costs 1800",
        ),
        (["redeem", "{ann}", "pony"], "reward 'pony' is not in the catalogue of 'retail-club'"),
        (["redeem", "{ben}", "voucher-5"], "is not a member of loyalty program 'retail-club'"),
        (["balance", "424242"], "customer 424242 not found"),
        (["adjust", "{ann}", "5", "--reason", " ", "--staff", "sam"], "needs a reason"),
        (["expire", "--as-of", "soon"], "'soon' is not a date"),
        (["balance", "{ann}", "--program", "nope"], "loyalty program 'nope' not found"),
    ],
)
def test_errors_are_one_line_and_change_nothing(shop: Any, args: list[str], message: str) -> None:
    crm, url, ann, ben = shop
    loyalty(crm).enrol(ann.id)
    before = loyalty(crm).statement(ann.id)
    r = run(url, *[a.format(ann=ann.id, ben=ben.id) for a in args])
    assert r.exit_code != 0
    assert message in r.output, r.output
    assert loyalty(crm).statement(ann.id) == before


def test_adjust_requires_a_reason_option(shop: Any) -> None:
    crm, url, ann, _ = shop
    r = run(url, "adjust", str(ann.id), "5", "--staff", "sam")
    assert r.exit_code == 2 and "Missing option '--reason'" in r.output


def test_adjust_takes_points_away_with_a_negative_number(shop: Any) -> None:
    crm, url, ann, _ = shop
    loyalty(crm).enrol(ann.id)  # 50 sign-up points
    r = run(url, "adjust", str(ann.id), "-20", "--reason", "duplicate bonus", "--staff", "sam")
    assert r.exit_code == 0, r.output
    assert "adjusted customer" in r.output and "by -20 points; balance 30" in r.output
    r = run(url, "adjust", str(ann.id), "-31", "--reason", "too much", "--staff", "sam")
    assert r.exit_code == 1 and "would make the balance negative" in r.output
    assert loyalty(crm).balance(ann.id) == 30


def test_invalid_program_file_names_the_field_and_file(shop: Any, tmp_path: Path) -> None:
    crm, url, *_ = shop
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[tiers]]\nname = "x"\nthreshold = 10\n', encoding="utf-8")
    r = run(url, "programs", "load", str(bad))
    assert r.exit_code == 1
    assert f"error: {bad}: tiers[0].threshold the first (base) tier needs threshold = 0" in r.output
    assert [p["name"] for p in loyalty(crm).programs()] == ["retail-club"]


@pytest.mark.browser
def test_html_statement_in_chromium(shop: Any, tmp_path: Path) -> None:
    crm, url, ann, _ = shop
    run(url, "enrol", str(ann.id))
    pay(crm, ann.id, "120.00", at(2026, 3, 1))
    page = tmp_path / "statement.html"
    r = run(url, "statement", str(ann.id), "--format", "html", "--output", str(page))
    assert r.exit_code == 0, r.output
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert '<strong id="balance">170</strong>' in dom
    assert '<strong id="value">1.70</strong>' in dom
    assert "Ann &lt;b&gt;Lee&lt;/b&gt;" in dom  # escaped, never markup
    assert dom.count('<td class="points">+') == 2
    shot = artifacts_dir() / f"loyalty_statement_{crm.engine.dialect.name}.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,700", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 1000
