"""Program definitions: examples load, bad files name the field and file, pure earning."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from crmkit_loyalty.plugin import EXAMPLES
from crmkit_loyalty.program import MemberView, add_months, load_program_file, parse_program
from crmkit_loyalty.testing import PROGRAM, at, program
from hypothesis import given
from hypothesis import strategies as st

from crmkit.plugin import Order, OrderLine, ValidationError


def member(tier: str | None = "bronze", orders: int = 0) -> MemberView:
    return MemberView(id=1, customer_id=1, tier=tier, orders_count=orders)


def order(amount: str, when: dt.datetime = at(2026, 5, 1), **more) -> Order:
    return Order(customer_id=1, occurred_at=when, amount=amount, **more)


def test_both_examples_load() -> None:
    sky = load_program_file(EXAMPLES / "airline_miles.toml")
    club = load_program_file(EXAMPLES / "retail_club.toml")
    assert sky.name == "sky-miles" and [t.name for t in sky.tiers] == [
        "blue", "silver", "gold", "platinum",
    ]  # fmt: skip
    assert sky.auto_enrol and sky.reversal_policy == "negative" and sky.measure == "points"
    assert club.name == "retail-club" and len(club.tiers) == 3 and len(club.rewards) == 3
    assert club.reversal_policy == "clawback" and club.measure == "spend"
    assert club.tier("gold").discount == Decimal("0.05")
    assert {r.code for r in club.rewards} == {"voucher-5", "voucher-20", "coffee-machine"}
    # the stored JSON form parses back to the same program
    assert parse_program(club.data, source="db").rules == club.rules


def test_airline_example_earns_premium_cabins_and_summer_campaign() -> None:
    sky = load_program_file(EXAMPLES / "airline_miles.toml")
    lines = [OrderLine(product="LHR-JFK", category="business", quantity=1, price="1000")]
    # 1000 x 5 miles x 2 (business) x 2 (summer campaign on business) + first-flight 2000
    earned = sky.order_points(order("1000", at(2026, 7, 15), lines=lines), member("blue"))
    assert earned == [("spend", 20000), ("first-flight", 2000)]
    # outside the campaign, second flight, gold (x1.5): 1000 x 5 x 2 x 1.5
    earned = sky.order_points(order("1000", at(2026, 9, 1), lines=lines), member("gold", 1))
    assert earned == [("spend", 15000)]


def test_spend_rule_rate_rounding_minimum_and_multipliers() -> None:
    club = parse_program(program())
    assert club.order_points(order("9.99"), member()) == []  # below min_spend
    assert club.order_points(order("10.99"), member()) == [("spend", 10)]  # rounded down
    assert club.order_points(order("10.99"), member("silver")) == [("spend", 16)]  # x1.5
    assert club.order_points(order("100", channel="web"), member()) == [("spend", 200)]
    lines = [
        OrderLine(product="novel", category="books", quantity=2, price="10"),
        OrderLine(product="pen", category="office", quantity=1, price="30"),
    ]
    # lines are scaled to the paid amount (50 of 50 here): 20 x 3 + 30
    assert club.order_points(order("50", lines=lines), member()) == [("spend", 90)]
    # 10% discount on the order: lines scaled to 45 -> 18 x 3 + 27
    assert club.order_points(order("45", lines=lines), member()) == [("spend", 81)]
    # the 3rd order gets the nth_order bonus
    assert club.order_points(order("20"), member(orders=2)) == [("spend", 20), ("nth_order", 100)]
    nearest = parse_program(program(earn=[{"type": "spend", "rate": "0.5", "rounding": "nearest"}]))
    assert nearest.order_points(order("15"), member()) == [("spend", 8)]
    up = parse_program(program(earn=[{"type": "spend", "rate": 1, "per": "3", "rounding": "up"}]))
    assert up.order_points(order("10"), member()) == [("spend", 4)]


def test_campaign_window_and_repeat_nth() -> None:
    club = parse_program(
        program(
            earn=[
                {"type": "spend", "rate": 1},
                {"type": "campaign", "starts": "2026-12-01", "ends": "2026-12-24", "multiplier": 3,
                 "channels": ["web"]},
                {"type": "nth_order", "n": 2, "points": 7, "repeat": True},
            ]
        )
    )  # fmt: skip
    assert club.order_points(order("10", at(2026, 12, 24, 23), channel="web"), member()) == [
        ("spend", 30)
    ]
    assert club.order_points(order("10", at(2026, 12, 25), channel="web"), member()) == [
        ("spend", 10)
    ]
    assert club.order_points(order("10", at(2026, 12, 5)), member()) == [("spend", 10)]
    assert [p for _, p in club.order_points(order("10"), member(orders=3))] == [10, 7]
    assert [p for _, p in club.order_points(order("10"), member(orders=4))] == [10]


BAD = [
    ({"name": ""}, "name"),
    ({"rate": 1}, "rate"),
    ({"point_value": "abc"}, "point_value"),
    ({"reversal_policy": "forgive"}, "reversal_policy"),
    ({"qualification": {"measure": "visits"}}, "qualification.measure"),
    ({"qualification": {"window": 12}}, "qualification.window"),
    ({"tiers": [{"name": "a", "threshold": 5}]}, "tiers[0].threshold"),
    ({"tiers": [{"name": "a", "threshold": 0}, {"name": "b", "threshold": 0}]}, "tiers[1].threshold"),
    ({"tiers": [{"name": "a", "threshold": 0, "discount": "1.5"}]}, "tiers[0].discount"),
    ({"earn": [{"type": "spend"}]}, "earn[0].rate"),
    ({"earn": [{"type": "spend", "rate": "-1"}]}, "earn[0].rate"),
    ({"earn": [{"type": "spend", "rate": 1, "rounding": "sideways"}]}, "earn[0].rounding"),
    ({"earn": [{"type": "teleport"}]}, "earn[0].type"),
    ({"earn": [{"type": "campaign", "starts": "2026-02-01", "ends": "2026-01-01",
                "multiplier": 2}]}, "earn[0].ends"),
    ({"earn": [{"type": "nth_order", "n": 0, "points": 5}]}, "earn[0].n"),
    ({"earn": [{"type": "spend", "rate": 1}, {"type": "spend", "rate": 2}]}, "earn[1].name"),
    ({"earn": [{"type": "spend", "rate": 1, "name": "friends"},
               {"type": "referral", "points": 5, "name": "friends"}]}, "earn[1].name"),
    ({"rewards": [{"code": "x", "points": 0}]}, "rewards[0].points"),
    ({"rewards": [{"code": "x"}]}, "rewards[0].points"),
    ({"rewards": [{"code": "x", "points": 5}, {"code": "x", "points": 6}]}, "rewards[1].code"),
    ({"rewards": [{"code": "x", "points": 5, "valid_from": "tomorrow"}]}, "rewards[0].valid_from"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), BAD)
def test_invalid_definitions_name_the_field_and_the_source(change, field) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_program({**PROGRAM, **change}, source="club.toml")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"club.toml: {field} ")


def test_multipliers_may_share_a_name_awarding_rules_may_not() -> None:
    campaign = {"type": "campaign", "starts": "2026-01-01", "ends": "2026-01-31", "multiplier": 2}
    earn = [{"type": "spend", "rate": 1}, campaign, campaign]  # both named "campaign"
    assert len(parse_program({**PROGRAM, "earn": earn}).rules) == 3
    with pytest.raises(ValidationError, match="'spend' is already the name of earn\\[0\\]"):
        parse_program({**PROGRAM, "earn": [*earn, {"type": "spend", "rate": 3}]})


def test_invalid_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[[earn]]\ntype = "spend"\nrate = "lots"\n', encoding="utf-8")
    with pytest.raises(ValidationError, match=r"broken\.toml: earn\[0\]\.rate must be a decimal"):
        load_program_file(path)
    path.write_text("name = \n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"broken\.toml: not valid TOML"):
        load_program_file(path)
    with pytest.raises(ValidationError, match="cannot read"):
        load_program_file(tmp_path / "missing.toml")


@given(
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1)),
    st.integers(min_value=0, max_value=240),
)
def test_add_months_lands_in_the_right_month_and_never_goes_back(moment, months) -> None:
    moment = moment.replace(tzinfo=dt.UTC)
    later = add_months(moment, months)
    assert (later.year * 12 + later.month) - (moment.year * 12 + moment.month) == months
    assert later >= moment
    assert later.day == moment.day or later.day < moment.day  # clamped to the month's end
    assert later.time() == moment.time()
    assert add_months(later, -months) <= moment


@given(st.decimals(min_value=0, max_value=100000, places=2), st.sampled_from(["bronze", "gold"]))
def test_points_never_exceed_rate_times_multipliers(amount, tier) -> None:
    club = parse_program(program())
    earned = dict(club.order_points(order(str(amount)), member(tier)))
    limit = amount * (2 if tier == "gold" else 1)
    assert 0 <= earned.get("spend", 0) <= limit
    assert earned.get("spend", 0) > limit - 1 or amount < 10
