"""The two example programs shipped in crmkit_loyalty/examples, stored and run on both backends."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty.plugin import EXAMPLES
from crmkit_loyalty.testing import assert_consistent, at, pay

from crmkit.plugin import NotFound, OrderLine, ValidationError


def flight(route: str, cabin: str, fare: str) -> list[OrderLine]:
    return [OrderLine(product=route, category=cabin, quantity=1, price=fare)]


def test_airline_miles_turn_into_a_free_flight(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program_file(EXAMPLES / "airline_miles.toml")
    kim = crm.customers.add(name="Kim Park")
    # auto_enrol: the first flight makes her a member (sign-up 500 + first-flight 2000)
    pay(crm, kim.id, "800", at(2026, 3, 10), lines=flight("ICN-FRA", "economy", "800"))
    assert service.member(kim.id).tier == "blue"
    assert service.balance(kim.id) == 500 + 800 * 5 + 2000
    # business on the web: x2 cabin, x1.1 channel
    pay(crm, kim.id, "1500", at(2026, 4, 2), lines=flight("FRA-JFK", "business", "1500"),
        channel="web")  # fmt: skip
    assert service.balance(kim.id) == 6500 + 16500
    # summer campaign doubles business again; 25,000 status miles in 12 months: silver
    pay(crm, kim.id, "300", at(2026, 7, 20), lines=flight("JFK-BOS", "business", "300"))
    assert service.balance(kim.id) == 23000 + 6000
    assert service.member(kim.id).tier == "silver"
    # silver earns x1.25 from the next flight on
    pay(crm, kim.id, "400", at(2026, 9, 1), lines=flight("FRA-LIS", "economy", "400"))
    assert service.balance(kim.id) == 29000 + 2500
    entry = service.redeem(kim.id, "domestic-ticket", at=at(2026, 9, 5))
    assert (entry.points, entry.reward_code) == (-25000, "domestic-ticket")
    assert service.balance(kim.id) == 6500
    with pytest.raises(ValidationError, match="has 6500 points"):
        service.redeem(kim.id, "domestic-ticket")
    # miles live 36 months
    assert service.expire("2029-03-09") == []
    assert service.balance(kim.id) == 6500
    (liability,) = [r for r in service.liability() if r["tier"] == "silver"]
    assert liability["value"] == Decimal("78.00")  # 6500 miles x 0.012
    assert_consistent(service)


def test_retail_club_member_discount_vouchers_and_clawback(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program_file(EXAMPLES / "retail_club.toml")
    lea = crm.customers.add(name="Lea Roux")
    pay(crm, lea.id, "40", at(2026, 2, 1))
    with pytest.raises(NotFound, match="not a member"):  # no auto_enrol: joins explicitly
        service.balance(lea.id)
    service.enrol(lea.id, at=at(2026, 2, 2))  # sign-up bonus 50
    assert service.member_price(lea.id, "100")["price"] == Decimal("100.00")  # base tier
    # double points on fresh food, half on fuel, rounded down
    lines = [
        OrderLine(product="salad", category="fresh", quantity=2, price="12.50"),
        OrderLine(product="diesel", category="fuel", quantity=1, price="61.99"),
        OrderLine(product="soap", category="home", quantity=1, price="3.01"),
    ]
    pay(crm, lea.id, "90", at(2026, 2, 3), lines=lines)
    assert service.balance(lea.id) == 50 + int(25 * 2 + Decimal("61.99") / 2 + Decimal("3.01"))
    big = pay(crm, lea.id, "480", at(2026, 2, 10))  # 610 spent in 12 months: silver at once
    assert service.member(lea.id).tier == "silver"
    price = service.member_price(lea.id, "59.99")
    assert (price["tier"], price["discount"], price["discount_amount"], price["price"]) == (
        "silver", Decimal("0.03"), Decimal("1.80"), Decimal("58.19"),
    )  # fmt: skip
    balance = service.balance(lea.id)
    assert balance == 50 + 84 + 480
    service.redeem(lea.id, "voucher-5", at=at(2026, 2, 11))
    # the 480 order is refunded after its points were spent: the rest is clawed back later
    crm.orders.set_status(big.id, "refunded")
    member = service.member(lea.id)
    assert (member.balance, member.clawback_due) == (0, 480 - (balance - 500))
    pay(crm, lea.id, "400", at(2026, 3, 1))  # silver x1.25: 500 points, all clawed back
    assert service.member(lea.id).balance == 500 - member.clawback_due
    assert service.member(lea.id).clawback_due == 0
    assert_consistent(service)


def test_price_command(make_crm: Any, cli_runner: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program_file(EXAMPLES / "retail_club.toml")
    max_ = crm.customers.add(name="Max")
    service.enrol(max_.id)
    pay(crm, max_.id, "2500", at(2026, 5, 1))  # gold: 5%

    def run(*args: str) -> Any:
        return cli_runner(["loyalty", *args], plugins=["loyalty"])

    r = run("price", str(max_.id), "120.00")
    assert r.exit_code == 0, r.output
    assert "member price 114.00 (gold: 5% off 120.00)" in r.output
    r = run("price", str(max_.id), "12,5o")
    assert r.exit_code != 0 and r.output.strip().splitlines()[-1].startswith("error: amount")
    with pytest.raises(ValidationError, match="amount must be 0 or more"):
        service.member_price(max_.id, "-3")
