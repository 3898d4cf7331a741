"""Hooks for other plugins, the customer 360 section, demo data, personal data, schema."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import attrs
import pytest
from crmkit_loyalty import hookspecs, loyalty
from crmkit_loyalty import plugin as loyalty_plugin
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, at, pay, program
from sqlalchemy import inspect

import crmkit
from crmkit.plugin import PluginError


@attrs.frozen
class WeekendBonus:
    """A third-party earn rule: fixed points for orders placed on Saturday or Sunday."""

    points: int
    name: str = "weekend"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeekendBonus:
        if not isinstance(data.get("points"), int):
            raise ValueError("weekend needs points = <whole number>")
        return cls(points=data["points"])

    def bonus(self, order: Any, member: Any) -> int:
        return self.points if order.occurred_at.weekday() >= 5 else 0


class Listener:
    """A test plugin: adds an earn-rule type and records the loyalty events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_register_earn_rule_types(self) -> dict[str, Any]:
        return {"weekend": WeekendBonus.from_dict}

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_after_points_earned(self, ctx: Any, entries: Any) -> None:
        self.events.append(("earned", list(entries)))

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_after_points_redeemed(self, ctx: Any, entries: Any) -> None:
        self.events.append(("redeemed", list(entries)))

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_after_points_expired(self, ctx: Any, entries: Any) -> None:
        self.events.append(("expired", list(entries)))

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_after_tiers_changed(self, ctx: Any, changes: Any) -> None:
        self.events.append(("tier", list(changes)))


def test_a_plugin_adds_an_earn_rule_type_and_hears_every_event(make_crm) -> None:
    listener = Listener()
    crm = make_crm(plugins=["loyalty", listener])
    service = loyalty(crm)
    earn = [{"type": "spend", "rate": 1}, {"type": "weekend", "points": 30}]
    service.load_program(program(earn=earn))
    eve = crm.customers.add(name="Eve")
    service.enrol(eve.id)
    pay(crm, eve.id, "900", at(2025, 3, 1))  # a Saturday
    pay(crm, eve.id, "200", at(2025, 3, 3))  # a Monday; 1130 points -> silver
    assert service.balance(eve.id) == 900 + 30 + 200
    service.redeem(eve.id, "mug")
    service.expire("2026-12-31")
    kinds = [k for k, _ in listener.events]
    assert kinds == ["earned", "earned", "tier", "redeemed", "expired"]
    earned = listener.events[0][1]
    assert [(e.rule, e.points) for e in earned] == [("spend", 900), ("weekend", 30)]
    (change,) = listener.events[2][1]
    assert (change.customer_id, change.from_tier, change.to_tier, change.reason) == (
        eve.id, "bronze", "silver", "upgrade",
    )  # fmt: skip
    assert listener.events[3][1][0].reward_code == "mug"
    assert -listener.events[4][1][0].points == 1030


class OldStyle:
    """A plugin written against API 1.1: the events under their old names."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_points_earned(self, ctx: Any, entries: Any) -> None:
        self.events.append(("earned", list(entries)))

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_tier_changed(self, ctx: Any, changes: Any) -> None:
        self.events.append(("tier", list(changes)))


def test_a_plugin_implementing_the_old_names_still_hears_the_events(make_crm) -> None:
    old = OldStyle()
    with pytest.warns(DeprecationWarning) as warned:
        crm = make_crm(plugins=["loyalty", old])
    said = " ".join(str(w.message) for w in warned)
    assert "crmkit_loyalty_points_earned, which is now crmkit_loyalty_after_points_earned" in said
    assert "crmkit_loyalty_tier_changed, which is now crmkit_loyalty_after_tiers_changed" in said
    service = loyalty(crm)
    service.load_program(program())
    eve = crm.customers.add(name="Eve")
    service.enrol(eve.id)
    pay(crm, eve.id, "1200", at(2025, 3, 3))  # 1200 points: silver
    assert [k for k, _ in old.events] == ["earned", "tier"]
    assert [e.points for e in old.events[0][1]] == [1200]
    assert old.events[1][1][0].to_tier == "silver"


def test_hookspecs_module_maps_every_old_name_onto_its_new_hook() -> None:
    assert loyalty_plugin.crmkit_register_hookspecs() is hookspecs
    assert hookspecs.RENAMED_HOOKS == {
        "crmkit_loyalty_points_earned": "crmkit_loyalty_after_points_earned",
        "crmkit_loyalty_points_redeemed": "crmkit_loyalty_after_points_redeemed",
        "crmkit_loyalty_points_expired": "crmkit_loyalty_after_points_expired",
        "crmkit_loyalty_tier_changed": "crmkit_loyalty_after_tiers_changed",
    }
    for old, new in hookspecs.RENAMED_HOOKS.items():
        assert hasattr(hookspecs, new) and not hasattr(hookspecs, old)


def test_after_commit_lists_the_events_under_their_keys(make_crm) -> None:
    class AfterCommit:
        seen: list[dict[str, list[Any]]] = []

        @crmkit.hookimpl
        def crmkit_after_commit(self, crm: Any, changes: Any) -> None:
            self.seen.append({k: list(v) for k, v in changes.other.items()})

    listener = AfterCommit()
    crm = make_crm(plugins=["loyalty", listener])
    service = loyalty(crm)
    service.load_program(program())
    eve = crm.customers.add(name="Eve")
    service.enrol(eve.id)
    listener.seen.clear()
    pay(crm, eve.id, "1200", at(2025, 3, 3))
    service.redeem(eve.id, "mug")
    service.expire("2026-12-31")
    earned, redeemed, expired = listener.seen
    assert set(earned) == {"points_earned", "tier_changed"}
    assert earned["points_earned"][0].points == 1200
    assert earned["tier_changed"][0].to_tier == "silver"
    assert redeemed["points_redeemed"][0].reward_code == "mug"
    assert -expired["points_expired"][0].points == 1100


def test_unknown_rule_type_without_the_plugin(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    earn = [{"type": "weekend", "points": 30}]
    with pytest.raises(crmkit.ValidationError, match=r"earn\[0\]\.type 'weekend' is not a known"):
        loyalty(crm).load_program(program(earn=earn))


def test_a_listener_raising_rolls_the_order_back(make_crm) -> None:
    class Refuser:
        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_after_points_earned(self, ctx: Any, entries: Any) -> None:
            raise RuntimeError("ledger export down")

    crm = make_crm(plugins=["loyalty", Refuser()])
    service = loyalty(crm)
    service.load_program(program())
    c = crm.customers.add(name="Cy")
    service.enrol(c.id)
    with pytest.raises(PluginError, match="ledger export down"):
        pay(crm, c.id, "50", at(2025, 1, 1))
    assert crm.orders.list(customer_id=c.id) == []
    assert service.balance(c.id) == 0


def test_customer_360_section_shows_tier_balance_and_points_expiring_soon(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(expiry_months=1))
    c = crm.customers.add(name="Fay")
    service.enrol(c.id)
    now = dt.datetime.now(dt.UTC)
    pay(crm, c.id, "40", now - dt.timedelta(days=10))  # expires in about 20 days
    view = crm.customers.view(c.id)
    (section,) = [s for s in view.sections if s.name == "loyalty"]
    (membership,) = section.data["memberships"]
    assert (membership["tier"], membership["balance"], membership["expiring_soon"]) == (
        "bronze", 40, 40,
    )  # fmt: skip
    html = crm.templates.get_template(section.template).render(**section.data)
    assert '<td class="balance">40</td>' in html and "40 within 60 days" in html
    other = crm.customers.add(name="Not a member")
    assert not [s for s in crm.customers.view(other.id).sections if s.name == "loyalty"]


def test_demo_data_builds_a_program_and_earns_on_existing_orders(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    rng = random.Random(7)
    customers = [crm.customers.add(name=f"Demo {i}").id for i in range(20)]
    crm.orders.add_many(
        {"customer_id": rng.choice(customers), "amount": str(rng.randint(5, 400)),
         "occurred_at": at(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 300))}
        for _ in range(200)
    )  # fmt: skip
    line = loyalty_plugin.crmkit_generate_demo_data(crm=crm, rng=random.Random(1))
    assert "retail-club" in line and "3 tiers" in line and "14 members" in line
    service = loyalty(crm)
    assert len(service.members()) == 14
    assert sum(r["points"] for r in service.liability()) > 0
    assert len(service.rewards()) == 3
    assert_consistent(service)


def test_export_and_erase_personal_data(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program())
    ann = crm.customers.add(name="Ann")
    ben = crm.customers.add(name="Ben")
    service.enrol(ann.id)
    service.enrol(ben.id, referred_by=ann.id)
    pay(crm, ben.id, "60", at(2025, 1, 1))
    service.adjust(ben.id, 5, reason="called about Ann's birthday", staff="sam")
    exported = crm.customers.export(ben.id)["plugins"]["loyalty"]
    (membership,) = exported["memberships"]
    assert membership["balance"] == 65 and membership["referred_by"] == ann.id
    assert [e["points"] for e in membership["ledger"]] == [60, 5]
    crm.customers.erase(ben.id)
    member = service.member(ben.id)
    assert member.balance == 65 and member.referred_by is None  # figures stay
    assert "Ann" not in str(service.statement(ben.id))


def test_tables_match_the_migration(make_crm) -> None:
    crm = make_crm(plugins=["loyalty"])
    inspector = inspect(crm.engine)
    for table in (t.programs, t.rewards, t.members, t.ledger, t.tier_changes):
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        uniques = {u["name"] for u in inspector.get_unique_constraints(table.name)}
        expected = {c.name for c in table.constraints if c.__class__.__name__ == "UniqueConstraint"}
        assert expected <= uniques | {None}, (table.name, expected, uniques)
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name


def test_settings_are_validated(make_crm) -> None:
    with pytest.raises(crmkit.ConfigError, match="expiring_soon_days"):
        make_crm(plugins=["loyalty"], settings={"loyalty": {"expiring_soon_days": -1}})
    crm = make_crm(plugins=["loyalty"], settings={"loyalty": {"default_program": "b"}})
    service = loyalty(crm)
    service.load_program(program(name="a"))
    service.load_program(program(name="b"))
    c = crm.customers.add(name="Gus")
    assert service.enrol(c.id).program == "b"
    assert Decimal(service.program().point_value) == Decimal("0.01")
