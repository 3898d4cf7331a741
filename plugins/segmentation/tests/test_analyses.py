"""ABC, value pyramid, value matrix and market breakdowns on both backends."""

import datetime as dt
import random
from decimal import Decimal

import pytest
import sqlalchemy as sa
from crmkit_segmentation.abc import abc_classes
from crmkit_segmentation.breakdown import market_breakdown
from crmkit_segmentation.matrix import value_matrix
from crmkit_segmentation.pyramid import value_pyramid
from hypothesis import given
from hypothesis import strategies as st

from crmkit.plugin import ValidationError, customers

T0 = dt.datetime(2024, 1, 10, 12, tzinfo=dt.UTC)
AS_OF = dt.date(2024, 6, 30)


def _seed(crm, specs):
    """specs: [(profile dict, [(datetime, amount, cost), ...])] → customer ids in order."""
    profiles = [{"external_id": f"x{i}", **p} for i, (p, _) in enumerate(specs)]
    crm.customers.add_many(profiles)
    with crm.engine.connect() as conn:
        by_ext = dict(conn.execute(sa.select(customers.c.external_id, customers.c.id)).all())
    ids = [by_ext[p["external_id"]] for p in profiles]
    orders = [
        dict(
            customer_id=cid,
            occurred_at=when,
            amount=Decimal(amount),
            cost=None if cost is None else Decimal(cost),
            currency="EUR",
            status="paid",
        )
        for cid, (_, buys) in zip(ids, specs, strict=True)
        for when, amount, cost in buys
    ]
    crm.orders.add_many(orders)
    return ids


def _values(crm, amounts, region=None):
    specs = [
        ({"name": f"C{i}", "external_id": f"c{i}", "region": region}, [(T0, a, None)])
        for i, a in enumerate(amounts)
    ]
    return _seed(crm, specs)


def test_abc_boundaries_exact_80_ties_and_crossing(make_crm):
    crm = make_crm(plugins=["segmentation"])
    # 50 + 30 = exactly 80%: both A; the next is B. 10 + 5 + 5 (tied) are B up to 100%.
    ids = _values(crm, ["50", "30", "10", "5", "5"])
    rows = abc_classes(crm, AS_OF)
    assert [r["customer_id"] for r in rows] == ids
    assert [r["class"] for r in rows] == ["A", "A", "B", "B", "B"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 4]
    assert rows[1]["cumulative_share"] == Decimal("0.800000")
    assert rows[3]["cumulative_share"] == rows[4]["cumulative_share"] == Decimal("1.000000")
    assert [r["relationship"] for r in rows[:3]] == ["proactive", "proactive", "accountable"]
    assert rows[0]["value"] == Decimal("50.00") and rows[0]["external_id"] == "c0"
    # configurable limits: A up to 50%, B up to 90%; the tie at 90..100 shares C
    rows = abc_classes(
        crm, AS_OF, classes=[("A", Decimal("0.5")), ("B", Decimal("0.9")), ("C", None)]
    )
    assert [r["class"] for r in rows] == ["A", "B", "B", "C", "C"]


def test_abc_crossing_customer_and_ties_at_the_line(make_crm):
    crm = make_crm(plugins=["segmentation"])
    # 90 alone crosses 80% → A; a tie straddling the 95% line stays together
    _values(crm, ["90", "4", "3", "3", "0.5", "0"])
    rows = abc_classes(crm, AS_OF)
    classes = [r["class"] for r in rows]
    # ahead of 4: 90/100.5 < .95 → B; ahead of the 3s: 94/100.5 = .935 → B (both); 0.5 → C
    assert classes == ["A", "B", "B", "B", "C", "C"]
    assert rows[-1]["share"] == Decimal("0.000000")


def test_pyramid_boundaries_ties_and_tiers(make_crm):
    crm = make_crm(plugins=["segmentation"])
    amounts = [str(200 - i) for i in range(200)]  # 200 distinct values
    amounts[5] = amounts[4]  # a tie across the 1%..5% boundary? (ranks 5 and 5)
    _values(crm, amounts)
    rows = value_pyramid(crm, AS_OF)
    tiers = [r["tier"] for r in rows]
    # 1% of 200 = 2 VIP, next 4% = 8 major, next 15% = 30 ordinary, then small
    assert tiers[:2] == ["vip", "vip"]
    assert tiers[2:10] == ["major"] * 8
    assert tiers[10:40] == ["ordinary"] * 30
    assert set(tiers[40:]) == {"small"}
    assert rows[4]["rank"] == rows[5]["rank"] == 5
    assert rows[0]["relationship"] == "partnership" and rows[-1]["relationship"] == "basic"
    # 0.5% of 200 = 1 customer
    rows = value_pyramid(
        crm,
        AS_OF,
        tiers=[("gold", Decimal("0.005")), ("rest", None)],
        relationships={"gold": "partnership", "rest": "reactive"},
    )
    assert [r["tier"] for r in rows].count("gold") == 1


def test_pyramid_tie_at_the_top_joins_higher_tier(make_crm):
    crm = make_crm(plugins=["segmentation"])
    _values(crm, ["100", "100", "100"] + ["1"] * 97)
    rows = value_pyramid(crm, AS_OF)
    assert [r["tier"] for r in rows[:3]] == ["vip"] * 3
    assert [r["tier"] for r in rows[3:5]] == ["major", "major"]  # ties: rank 4 for all the 1s
    assert {r["tier"] for r in rows[3:]} == {"major"}


def _reference_abc(values, limits):
    """Straightforward Python: sort, running sum of positive values, tie groups together."""
    total = sum(v for v in values.values() if v > 0)
    ordered = sorted(values, key=lambda c: -values[c])
    out, ahead, i = {}, Decimal(0), 0
    while i < len(ordered):
        group = [c for c in ordered[i:] if values[c] == values[ordered[i]]]
        for c in group:
            if values[c] <= 0:
                out[c] = limits[-1][0]
            else:
                out[c] = next(label for label, upper in limits if ahead < upper * total)
        ahead += sum(max(values[c], 0) for c in group)
        i += len(group)
    return out


def _reference_pyramid(values, shares):
    ordered = sorted(values.values(), reverse=True)
    n = len(ordered)
    bounds, running = [], Decimal(0)
    for label, part in shares:
        running += part
        bounds.append((label, running))
    out = {}
    for c, v in values.items():
        ahead = sum(1 for x in ordered if x > v)
        out[c] = next(label for label, upper in bounds if ahead < upper * n)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_agrees_with_python_on_seeded_data(make_crm, seed):
    rng = random.Random(seed)
    crm = make_crm(plugins=["segmentation"])
    specs = []
    for i in range(rng.randint(40, 90)):
        buys = [
            (
                T0 + dt.timedelta(days=rng.randint(0, 200)),
                # coarse amounts make ties; some costs above the amount make negative margins
                f"{rng.choice([1, 2, 5, 10, 20, 50, 100, 333.33])}",
                f"{rng.choice([0, 1, 3, 15, 60])}",
            )
            for _ in range(rng.randint(1, 4))
        ]
        specs.append(({"name": f"C{i}"}, buys))
    ids = _seed(crm, specs)
    cutoff = T0 + dt.timedelta(days=150)
    as_of = cutoff.date() - dt.timedelta(days=1)
    for measure in ("revenue", "margin"):
        values = {}
        for cid, (_, buys) in zip(ids, specs, strict=True):
            kept = [
                Decimal(a) - (Decimal(c) if measure == "margin" else 0)
                for when, a, c in buys
                if when < cutoff
            ]
            if kept:
                values[cid] = sum(kept)
        limits = [("A", Decimal("0.7")), ("B", Decimal("0.9")), ("C", Decimal(1))]
        rows = abc_classes(
            crm,
            as_of,
            measure=measure,
            classes=[("A", Decimal("0.7")), ("B", Decimal("0.9")), ("C", None)],
        )
        assert {r["customer_id"]: r["value"] for r in rows} == values
        assert {r["customer_id"]: r["class"] for r in rows} == _reference_abc(values, limits)
        shares = [("vip", Decimal("0.05")), ("major", Decimal("0.15")), ("small", Decimal("0.8"))]
        rows = value_pyramid(
            crm,
            as_of,
            measure=measure,
            tiers=shares,
            relationships={"vip": "partnership", "major": "proactive", "small": "basic"},
        )
        assert {r["customer_id"]: r["tier"] for r in rows} == _reference_pyramid(values, shares)


def test_as_of_scope_and_clv_measure(make_crm):
    crm = make_crm(plugins=["segmentation"])
    late = T0 + dt.timedelta(days=400)
    ids = _seed(
        crm,
        [
            ({"name": "N1", "region": "North"}, [(T0, "10", "4"), (late, "1000", "0")]),
            ({"name": "N2", "region": "North", "tier": "gold"}, [(T0, "20", "4")]),
            ({"name": "S1", "region": "South", "tier": "gold"}, [(T0, "500", "100")]),
            ({"name": "S2", "region": "South"}, [(late, "5", "1")]),
        ],
    )
    rows = abc_classes(crm, AS_OF, {"region": "North"})
    assert [(r["customer_id"], r["value"]) for r in rows] == [(ids[1], 20), (ids[0], 10)]
    assert [r["class"] for r in rows] == ["A", "A"]  # 66.7% is ahead of N1: still A
    # a custom attribute as scope, ANDed with a profile field
    gold = abc_classes(crm, AS_OF, {"attributes.tier": "gold"})
    assert [r["customer_id"] for r in gold] == [ids[2], ids[1]]
    assert [r["class"] for r in gold] == ["A", "C"]  # 500/520 = 96% is ahead of N2
    both = value_pyramid(crm, AS_OF, {"attributes.tier": "gold", "region": "North"})
    assert [r["customer_id"] for r in both] == [ids[1]]
    everyone = value_pyramid(crm, AS_OF)
    assert ids[3] not in {r["customer_id"] for r in everyone}  # only ordered after as-of
    later = value_pyramid(crm, (late + dt.timedelta(days=1)).date())
    assert later[0]["customer_id"] == ids[0] and later[0]["value"] == Decimal("1010.00")
    # historical CLV: margin compounded to as-of at 10% a year; one year = 1.1×
    one_year = (T0 + dt.timedelta(days=365.25)).date()
    clv = {r["customer_id"]: r["value"] for r in abc_classes(crm, one_year, measure="clv")}
    assert abs(clv[ids[1]] - Decimal("16") * Decimal("1.1")) < Decimal("0.05")
    flat = abc_classes(crm, one_year, measure="clv", discount_rate=Decimal(0))
    assert {r["customer_id"]: r["value"] for r in flat}[ids[2]] == Decimal("400.00")


def test_bad_input(make_crm):
    crm = make_crm(plugins=["segmentation"])
    _seed(
        crm,
        [
            ({"name": "A"}, [(T0, "10", None)]),
            ({"name": "B", "region": "Neg"}, [(T0, "0", "0")]),  # nothing positive
        ],
    )
    with pytest.raises(ValidationError, match="before the first order"):
        abc_classes(crm, dt.date(2023, 1, 1))
    with pytest.raises(ValidationError, match="unknown measure 'profit'"):
        value_pyramid(crm, AS_OF, measure="profit")
    with pytest.raises(ValidationError, match="1 order\\(s\\) up to as-of have no cost"):
        abc_classes(crm, AS_OF, measure="margin")
    with pytest.raises(ValidationError, match="no customer in scope \\(region=Mars\\)"):
        abc_classes(crm, AS_OF, {"region": "Mars"})
    with pytest.raises(ValidationError, match="unknown scope field"):
        abc_classes(crm, AS_OF, {"colour": "red"})
    with pytest.raises(ValidationError, match="cover 90.00%, not 100%"):
        abc_classes(crm, AS_OF, classes=[("A", Decimal("0.8")), ("B", Decimal("0.9"))])
    with pytest.raises(ValidationError, match="keep the running total increasing"):
        abc_classes(crm, AS_OF, classes=[("A", Decimal("0.8")), ("B", Decimal("0.7")), ("C", None)])
    gold = [("gold", Decimal("0.1")), ("small", None)]
    assert value_pyramid(crm, AS_OF, tiers=gold)[0]["relationship"] is None  # no guess
    with pytest.raises(ValidationError, match="no relationship level for 'gold'"):
        value_pyramid(crm, AS_OF, tiers=gold, relationships={"small": "basic"})
    with pytest.raises(ValidationError, match="given for 'platinum', which is not a class"):
        value_pyramid(crm, AS_OF, relationships={"platinum": "basic"})
    with pytest.raises(ValidationError, match="level 'friendly' for 'vip' is unknown"):
        value_pyramid(crm, AS_OF, relationships={"vip": "friendly"})
    with pytest.raises(ValidationError, match="no customer has a positive revenue"):
        abc_classes(crm, AS_OF, {"region": "Neg"})


def test_matrix_quadrants_potential_sources_and_relationships(make_crm):
    crm = make_crm(plugins=["segmentation"])
    y23, y24 = dt.datetime(2023, 6, 1, tzinfo=dt.UTC), dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    old = dt.datetime(2022, 6, 1, tzinfo=dt.UTC)
    ids = _seed(
        crm,
        [
            ({"name": "grower"}, [(y23, "200", "100"), (y24, "1000", "400")]),
            ({"name": "steady"}, [(y23, "900", "100"), (y24, "900", "100")]),
            ({"name": "small, big wallet", "potential_value": 5000}, [(y24, "100", "50")]),
            ({"name": "shrinking"}, [(y23, "500", "100"), (y24, "50", "10")]),
            ({"name": "gone"}, [(old, "70", "10")]),
        ],
    )
    as_of = dt.date(2024, 12, 31)
    rows = value_matrix(crm, as_of)
    by = {r["customer_id"]: r for r in rows}
    assert [by[c]["current"] for c in ids] == [1000, 900, 100, 50, 0]
    assert [by[c]["previous"] for c in ids] == [200, 900, 0, 500, 0]
    assert [by[c]["potential"] for c in ids] == [800, 0, 4900, 0, 0]
    assert by[ids[2]]["potential_source"] == "attribute"
    assert by[ids[0]]["potential_source"] == "trend"
    # medians: current 100, potential 0; high means strictly above
    quadrants = [by[c]["quadrant"] for c in ids]
    assert quadrants == ["invest", "maintain", "develop", "harvest", "harvest"]
    levels = [by[c]["relationship"] for c in ids]
    assert levels == ["partnership", "proactive", "accountable", "basic", "basic"]
    rows = value_matrix(
        crm,
        as_of,
        measure="margin",
        current_split=Decimal("450"),
        relationships={"develop": "proactive", "harvest": "reactive"},
    )
    by = {r["customer_id"]: r for r in rows}
    assert [by[c]["current"] for c in ids] == [600, 800, 50, 40, 0]
    assert [by[c]["quadrant"] for c in ids] == [
        "invest",
        "maintain",
        "develop",
        "harvest",
        "harvest",
    ]
    assert by[ids[2]]["relationship"] == "proactive"
    assert by[ids[4]]["relationship"] == "reactive"
    # a 24-month window makes 2023 current too (and 2022 previous)
    wide = {r["customer_id"]: r for r in value_matrix(crm, as_of, months=24)}
    assert wide[ids[3]]["current"] == 550 and wide[ids[4]]["previous"] == 70


def test_matrix_bad_input(make_crm):
    crm = make_crm(plugins=["segmentation"])
    _seed(crm, [({"name": "x", "potential_value": "lots"}, [(T0, "10", "1")])])
    with pytest.raises(ValidationError, match="potential_value = 'lots', not a number"):
        value_matrix(crm, AS_OF)
    with pytest.raises(ValidationError, match="unknown measure 'clv'; use one of revenue, margin"):
        value_matrix(crm, AS_OF, measure="clv")
    with pytest.raises(ValidationError, match="before the first order"):
        value_matrix(crm, dt.date(2020, 1, 1))
    assert value_matrix(crm, AS_OF, potential_attribute="wallet")[0]["potential_source"] == "trend"


def test_breakdown_sums_age_bands_and_unknown_margin(make_crm):
    crm = make_crm(plugins=["segmentation"])
    born = dt.date.fromisoformat
    profiles = [
        {"name": "a", "industry": "retail", "region": "North", "birth_date": born("2000-12-31")},
        {"name": "b", "industry": "retail", "region": "South", "birth_date": born("1999-12-31")},
        {
            "name": "c",
            "industry": "banking",
            "occupation": "clerk",
            "birth_date": born("2007-01-01"),
        },
        {"name": "d", "industry": "banking", "region": "North", "birth_date": born("1950-02-28")},
        {"name": "e", "region": "South"},
        {"name": "f", "industry": "retail", "region": "North"},  # orders only after as-of
    ]
    late = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    buys = [
        [(T0, "100", "60"), (T0, "50", "20")],
        [(T0, "300", "100")],
        [(T0, "20", None)],
        [(T0, "1000", "900")],
        [(T0, "7.5", "2.5")],
        [(late, "999", "1")],
    ]
    _seed(crm, list(zip(profiles, buys, strict=True)))
    rows = market_breakdown(crm, dt.date(2024, 12, 31))
    assert {r["dimension"] for r in rows} == {"industry", "occupation", "age_band", "region"}
    for dimension in ("industry", "occupation", "age_band", "region"):
        mine = [r for r in rows if r["dimension"] == dimension]
        assert sum(r["customers"] for r in mine) == 5
        assert sum(r["orders"] for r in mine) == 6
        assert sum(r["revenue"] for r in mine) == Decimal("1477.50")
        assert sum(r["revenue_share"] for r in mine) == pytest.approx(
            Decimal(1), abs=Decimal("0.00001")
        )
    industry = [(r["group"], r["customers"], r["revenue"], r["margin"]) for r in rows[:3]]
    assert industry == [
        ("banking", 2, Decimal("1020.00"), None),  # c's order has no cost
        ("retail", 2, Decimal("450.00"), Decimal("270.00")),
        ("(unknown)", 1, Decimal("7.50"), Decimal("5.00")),
    ]
    ages = {r["group"]: r["customers"] for r in rows if r["dimension"] == "age_band"}
    # on 2024-12-31: a is 24, b 25, c 17, d 74, e unknown
    assert ages == {"under 18": 1, "18-24": 1, "25-34": 1, "65+": 1, "(unknown)": 1}
    order = [r["group"] for r in rows if r["dimension"] == "age_band"]
    assert order == ["under 18", "18-24", "25-34", "65+", "(unknown)"]
    # custom bands, a scope and a window of months
    rows = market_breakdown(
        crm, dt.date(2024, 12, 31), {"region": "North"}, ["age_band"], age_bands=[30, 60]
    )
    assert {r["group"]: r["revenue"] for r in rows} == {"under 30": 150, "60+": 1000}
    assert market_breakdown(crm, dt.date(2025, 3, 31), None, ["region"], months=2)[0] == {
        "dimension": "region",
        "group": "North",
        "customers": 1,
        "orders": 1,
        "revenue": Decimal("999.00"),
        "margin": Decimal("998.00"),
        "customer_share": Decimal("1.000000"),
        "revenue_share": Decimal("1.000000"),
    }
    with pytest.raises(ValidationError, match="unknown breakdown dimension\\(s\\) colour"):
        market_breakdown(crm, dt.date(2024, 12, 31), None, ["colour"])
    with pytest.raises(ValidationError, match="age bands"):
        market_breakdown(crm, dt.date(2024, 12, 31), None, ["age_band"], age_bands=[30, 20])


@given(st.integers(-(10**15), 10**15))
def test_money_matches_money_scale(units):
    from crmkit_segmentation.analyses import money

    from crmkit.plugin import money_scale

    expected = money_scale(Decimal(units) / 10_000)
    assert money(units) == expected and str(money(units)) == str(expected)


@given(st.integers(0, 10**15), st.integers(1, 10**15))
def test_share_rounds_half_up_to_six_places(part, total):
    from decimal import ROUND_HALF_UP

    from crmkit_segmentation.analyses import share

    exact = (Decimal(part) / Decimal(total)).quantize(Decimal("0.000001"), ROUND_HALF_UP)
    assert share(part, total) == exact


@given(st.lists(st.integers(1, 40), min_size=1, max_size=5))
def test_band_shares_accumulate_to_one(percents):
    from crmkit_segmentation.analyses import cumulative_bands, parse_bands

    text = ",".join(f"t{i}={p}" for i, p in enumerate(percents)) + ",rest"
    bands = parse_bands(text, "--tiers")
    if sum(percents) >= 100:
        with pytest.raises(ValidationError):
            cumulative_bands(bands, cumulative=False, option="--tiers")
        return
    out = cumulative_bands(bands, cumulative=False, option="--tiers")
    assert [label for label, _ in out] == [f"t{i}" for i in range(len(percents))] + ["rest"]
    running = 0
    for (_, upper), p in zip(out, percents, strict=False):
        running += p
        assert upper * 100 == running
    assert out[-1][1] == 1


def test_default_relationship_maps_cover_every_named_class():
    from crmkit_segmentation.analyses import RELATIONSHIP_LEVELS, relationship_map
    from crmkit_segmentation.matrix import QUADRANTS
    from crmkit_segmentation.rfm import DEFAULT_SEGMENT_MAP

    rfm_names = [name for name, _, _ in DEFAULT_SEGMENT_MAP]
    for scheme, labels in (
        ("abc", ["A", "B", "C"]),
        ("pyramid", ["vip", "major", "ordinary", "small"]),
        ("matrix", list(QUADRANTS)),
        ("rfm", rfm_names),
    ):
        levels = relationship_map(scheme, labels)
        assert set(levels) == set(labels) and set(levels.values()) <= set(RELATIONSHIP_LEVELS)
    rfm = relationship_map("rfm", rfm_names, {"new": "proactive"})
    assert (rfm["champions"], rfm["lost"], rfm["new"]) == ("partnership", "basic", "proactive")
