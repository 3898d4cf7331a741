"""Industry packs: each built-in pack on seeded data, a pack added by a test plugin, errors."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from crmkit_segmentation import snapshots as snaps
from crmkit_segmentation.packs import all_packs, run_pack

import crmkit
from crmkit.plugin import ConfigError, ValidationError


def at(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 12, tzinfo=dt.UTC)


def by_customer(rows: list[dict]) -> dict[int, dict]:
    return {r["customer_id"]: r for r in rows}


def test_retail_names_the_rfm_grid(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    ids = [crm.customers.add(name=n).id for n in "ABCD"]
    # frequency 4,1,3,2 and last purchase day 30,1,5,20: halves as in test_snapshots
    crm.orders.add_many(
        {"customer_id": cid, "occurred_at": at(2024, 1, d), "amount": "10"}
        for cid, days in zip(ids, ([27, 28, 29, 30], [1], [3, 4, 5], [19, 20]), strict=True)
        for d in days
    )
    rows = by_customer(run_pack(crm, "retail", dt.date(2024, 1, 31)))
    assert [rows[c]["segment"] for c in ids] == [
        "best customers",
        "average shoppers",
        "loyal regulars",
        "rising regulars",
    ]


def test_travel_tiers_from_lines_and_attributes(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    add = crm.customers.add
    flyer, sleeper, counted, member, lapsed = (
        add(name="Flyer").id,
        add(name="Sleeper").id,
        add(name="Counted", attributes={"nights": 70}).id,
        add(name="Member").id,
        add(name="Lapsed").id,
    )
    trips: list[dict] = []

    def line(product: str, quantity: int, category: str) -> crmkit.OrderLine:
        return crmkit.OrderLine(product, quantity, Decimal("0.01"), category=category)

    def trip(cid: int, when: dt.datetime, *lines: crmkit.OrderLine) -> None:
        # the lines add up to the amount (the core refuses an order whose lines do not)
        amount = sum((x.quantity * x.price for x in lines), Decimal(0)) or Decimal(100)
        trips.append({"customer_id": cid, "occurred_at": when, "amount": amount, "lines": lines})

    # two flights in one order and one more: 3 lines, 2 trips, 60,000 miles -> gold by miles
    trip(flyer, at(2024, 5, 1), line("PEK-LHR", 25000, category="flight"),
         line("LHR-PEK", 25000, category="Flight"))  # fmt: skip
    trip(flyer, at(2024, 6, 1), line("PEK-SHA", 10000, category="air"))
    trip(flyer, at(2022, 6, 1), line("old", 900000, category="flight"))  # outside the year
    trip(sleeper, at(2024, 7, 1), line("Room", 12, category="hotel"))  # 12 nights -> silver
    trip(counted, at(2024, 8, 1))  # nights kept by the booking system: 70 -> platinum
    trip(member, at(2024, 9, 1), line("Taxi", 1, category="ground"))
    trip(lapsed, at(2023, 1, 1), line("Room", 80, category="hotel"))  # before the window
    crm.orders.add_many(trips)
    rows = by_customer(run_pack(crm, "travel", dt.date(2024, 12, 31)))
    assert {c: rows[c]["segment"] for c in rows} == {
        flyer: "gold",
        sleeper: "silver",
        counted: "platinum",
        member: "member",
        lapsed: "lapsed",
    }
    assert (rows[flyer]["trips"], rows[flyer]["miles"]) == (2, Decimal("60000"))
    assert rows[sleeper]["nights"] == Decimal("12") and rows[counted]["nights"] == 70
    assert rows[lapsed]["trips"] == 0
    crm.customers.update(member, attributes={"miles": "a lot"})
    with pytest.raises(ValidationError, match=f"customer {member} has miles='a lot'"):
        run_pack(crm, "travel", dt.date(2024, 12, 31))


def test_b2b_abc_with_trend(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    names = ("grow", "steady", "new", "shrink", "gone", "old")
    c = {n: crm.customers.add(name=n, type="organisation").id for n in names}
    plan = {  # this year (2024) and last year (2023) revenue
        "grow": ("800", "400"),
        "steady": ("150", "150"),
        "new": ("100", None),
        "shrink": ("50", "100"),
        "gone": (None, "300"),
    }
    crm.orders.add_many(
        [
            {"customer_id": c[name], "occurred_at": at(year, 6, 1), "amount": amount}
            for name, (this, last) in plan.items()
            for year, amount in ((2024, this), (2023, last))
            if amount
        ]
        + [{"customer_id": c["old"], "occurred_at": at(2021, 6, 1), "amount": "5000"}]
    )
    rows = by_customer(run_pack(crm, "b2b", dt.date(2024, 12, 31)))
    # revenue this year 800+150+100+50 = 1100; share ahead: 0, 73 %, 86 %, 95.5 %
    assert {n: rows[c[n]]["segment"] for n in names} == {
        "grow": "A growing",
        "steady": "A stable",
        "new": "B new",
        "shrink": "C declining",
        "gone": "lapsed",
        "old": "dormant",
    }
    assert rows[c["grow"]]["growth"] == Decimal("1") and rows[c["shrink"]]["growth"] == Decimal(
        "-0.5"
    )
    assert rows[c["grow"]]["this_year"] == Decimal("800")


def test_finance_assets_and_products(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    add = crm.customers.add
    rich = add(name="Rich", attributes={"assets_held": "2500000", "products_held": 4}).id
    comfy = add(name="Comfy", attributes={"assets_held": "150000", "products_held": "2"}).id
    busy = add(name="Busy", attributes={"products_held": "loan, card, mortgage"}).id
    add(name="No bank data")
    rows = by_customer(run_pack(crm, "finance", dt.date.today()))
    assert {c: (r["segment"], r["products"]) for c, r in rows.items()} == {
        rich: ("private cross-sold", 4),
        comfy: ("affluent under-served", 2),
        busy: ("mass cross-sold", 3),
    }
    with pytest.raises(ValidationError, match="no customer up to 2000-01-01"):
        run_pack(crm, "finance", dt.date(2000, 1, 1))  # nobody existed yet


class EducationPack:
    """A test plugin contributing its own pack, as dicts (no import of the segmentation code)."""

    @staticmethod
    def classify(crm, as_of, scope):
        return [
            {"customer_id": c.id, "segment": "student" if c.occupation == "student" else "staff"}
            for c in crm.customers.list(limit=None)
        ]

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_register_packs(self):
        return {
            "name": "education",
            "title": "Education",
            "description": "students and staff",
            "classify": self.classify,
            "labels": ["student", "staff"],
        }


class Clash:
    def __init__(self, name: str) -> None:
        self.name = name

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_register_packs(self):
        return [{"name": self.name, "classify": lambda crm, as_of, scope: []}]


def test_plugin_pack_through_cli_and_snapshot(make_crm, cli_runner) -> None:
    crm = make_crm(plugins=["segmentation", EducationPack()])
    ann = crm.customers.add(name="Ann", occupation="student")
    bob = crm.customers.add(name="Bob", occupation="teacher")
    assert list(all_packs(crm)) == ["b2b", "education", "finance", "retail", "travel"]
    snap = snaps.take_snapshot(crm, "education", dt.date(2024, 1, 1))
    assert snaps.current_segments(crm, [ann.id, bob.id]) == {
        ann.id: {"education": "student"},
        bob.id: {"education": "staff"},
    }
    assert snap.params["pack"] == "education"

    # the CLI only sees packs of enabled plugins: the test plugin is absent there
    def segment(*args):
        return cli_runner(["segment", *args], plugins=["segmentation"])

    res = segment("pack", "education", "--as-of", "2024-01-01")
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert res.output == (
        "error: segmentation: unknown pack 'education'; known packs: b2b, finance, retail, travel\n"
    )
    crm.orders.add(customer_id=ann.id, occurred_at=at(2024, 6, 1), amount="10")
    res = segment("pack", "retail", "--as-of", "2024-12-31", "--format", "json")
    assert res.exit_code == 0, res.output
    assert [(r["customer_id"], r["segment"]) for r in json.loads(res.output)] == [
        (ann.id, "lost")  # one customer: every score is the lowest
    ]
    res = segment("pack", "retail", "--as-of", "2024-12-31", "--snapshot")
    assert res.exit_code == 0 and "lost" in res.output
    saved = snaps.latest_snapshot(crm, "retail")
    assert (saved.customers, saved.params) == (1, {"scope": {}, "pack": "retail"})
    res = segment("packs", "--format", "csv")
    assert res.output.splitlines()[0] == "pack,title,description" and "travel," in res.output


class OldNamePack:
    """A plugin written for API 1.1: it implements the pack hook under its old name."""

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_packs(self):
        return {"name": "legacy", "classify": lambda crm, as_of, scope: []}


def test_pack_hook_under_its_old_name_still_works_with_a_warning(make_crm) -> None:
    with pytest.warns(DeprecationWarning, match="crmkit_segmentation_packs, which is now"):
        crm = make_crm(plugins=["segmentation", OldNamePack()])
    assert "legacy" in all_packs(crm)
    assert snaps.take_snapshot(crm, "legacy", dt.date(2024, 1, 1)).customers == 0


def test_duplicate_or_reserved_pack_name_is_refused(make_crm) -> None:
    crm = make_crm(plugins=["segmentation", Clash("retail")])
    with pytest.raises(ConfigError, match="two plugins declare the pack 'retail'"):
        all_packs(crm)
    crm = make_crm(plugins=["segmentation", Clash("pyramid")])
    with pytest.raises(ConfigError, match="may not be called 'pyramid'"):
        all_packs(crm)
