"""Set-based earning (the import's fast path) writes exactly what order-by-order earning writes.

Each test imports the same random order history twice in one database: for the
"A" customers with set-based earning on, for their mirror "B" customers with it
off, then compares every member, ledger row and tier change.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.setbased import batch_filter
from crmkit_loyalty.testing import assert_consistent, at
from sqlalchemy import event, select, update

import crmkit
import crmkit.plugin as ck

CUSTOMERS = 14

SPEND_CLUB: dict[str, Any] = {
    "name": "spend-club",
    "title": "Spend club",
    "point_value": "0.01",
    "expiry_months": 1,  # month ends clamp: 31 January + 1 month is 28 February
    "reversal_policy": "clawback",
    "qualification": {"measure": "spend", "window_months": 2},
    "tiers": [
        {"name": "member", "threshold": 0},
        {"name": "silver", "threshold": 400, "earn_multiplier": "1.25"},
        {"name": "gold", "threshold": 1200, "earn_multiplier": "1.5"},
    ],
    "earn": [
        {"type": "spend", "rate": 1, "per": "1.00", "min_spend": "5.00",
         "category_multipliers": {"fresh": 2}, "channel_multipliers": {"web": "1.1"}},
        {"type": "campaign", "name": "paris-december", "starts": "2025-12-01",
         "ends": "2025-12-24", "multiplier": 2, "channels": ["web", "store"],
         "timezone": "Europe/Paris"},
        {"type": "nth_order", "name": "third", "n": 3, "points": 40, "repeat": True},
        {"type": "signup", "points": 10},
        {"type": "referral", "points": 200, "referee_points": 50},
    ],
}  # fmt: skip

#: 12-month spend tiers most customers reach late: early batches skip the windows their
#: spend bound rules out (crmkit_loyalty.bounds), later ones read them
BOUND_CLUB: dict[str, Any] = {
    **SPEND_CLUB,
    "name": "bound-club",
    "qualification": {"measure": "spend", "window_months": 12},
    "tiers": [
        {"name": "member", "threshold": 0},
        {"name": "silver", "threshold": 1000, "earn_multiplier": "1.25"},
        {"name": "gold", "threshold": 4000, "earn_multiplier": "1.5"},
    ],
}

POINTS_CLUB: dict[str, Any] = {
    "name": "points-club",
    "title": "Points club",
    "point_value": "0.01",
    "auto_enrol": True,
    "qualification": {"measure": "points", "window_months": 12},
    "tiers": [
        {"name": "blue", "threshold": 0},
        {"name": "red", "threshold": 300, "earn_multiplier": "2"},
    ],
    "earn": [
        {"type": "spend", "rate": "2.5", "per": 10, "rounding": "nearest"},
        {"type": "spend", "name": "round-up", "rate": "0.1", "rounding": "up",
         "channel_multipliers": {"phone": "0.5"}},
        {"type": "campaign", "name": "summer", "starts": "2025-07-01", "ends": "2025-08-31",
         "multiplier": "1.5"},
        {"type": "campaign", "name": "books-only", "starts": "2025-01-01", "ends": "2026-12-31",
         "multiplier": 3, "categories": ["books"]},
        {"type": "nth_order", "name": "second", "n": 2, "points": 25},
    ],
}  # fmt: skip

#: rate / per = 1/3 is not a finite decimal: the whole program earns order by order
THIRDS: dict[str, Any] = {
    "name": "thirds",
    "title": "Thirds",
    "point_value": "0.01",
    "expiry_months": 12,
    "qualification": {"measure": "orders", "window_months": 6},
    "tiers": [{"name": "one", "threshold": 0}, {"name": "two", "threshold": 5}],
    "earn": [{"type": "spend", "rate": 1, "per": 3, "rounding": "up"}],
}


def _history(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """Orders in random time order, many at month ends and around the campaigns' edges."""
    rows = []
    for n in range(count):
        day = rng.choice([1, 2, 15, 28, 29, 30, 31])
        month = rng.randint(1, 12)
        year = rng.choice([2025, 2025, 2026])
        while True:
            try:
                when = at(year, month, day, rng.choice([0, 12, 22, 23]), rng.randint(0, 59))
                break
            except ValueError:
                day -= 1
        if rng.random() < 0.15:  # the night the Paris campaign starts or ends (UTC+1)
            when = at(2025, rng.choice([11, 12]), rng.choice([24, 30]), 23, rng.randint(0, 59))
        cents = rng.choice([0, 499, 500, 501, rng.randint(100, 90000)])
        amount = f"{cents // 100}.{cents % 100:02d}"
        if rng.random() < 0.1:
            amount += f"{rng.randint(0, 99):02d}"  # four decimals
        rows.append(
            {
                "customer": rng.randrange(CUSTOMERS),
                "occurred_at": when,
                "amount": amount,
                "channel": rng.choice(["web", "store", "phone", None]),
                "status": rng.choice(["paid"] * 8 + ["refunded"]),
                "n": n,
            }
        )
    return rows


def _import_twice(
    make_crm: Any, definition: dict[str, Any], seed: int, via: str = "add_many"
) -> tuple[Any, Any, dict]:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(definition)
    crm.customers.add_many(
        {"external_id": f"{side}{i}", "name": f"{side}{i}"}
        for side in "AB"
        for i in range(CUSTOMERS)
    )
    ids = {c.external_id: c.id for c in crm.customers.iterate()}
    for side in "AB":
        for i in range(CUSTOMERS - 3):  # the last three join through auto_enrol (or never)
            referred = ids[f"{side}0"] if i in (4, 5) else None
            service.enrol(ids[f"{side}{i}"], referred_by=referred, at=at(2024, 12, 1))
    # claw-backs still due: these members earn order by order on the set-based path
    with crm.transaction() as ctx:
        for side in "AB":
            ctx.connection.execute(
                update(t.members)
                .where(t.members.c.customer_id == ids[f"{side}1"])
                .values(clawback_due=120)
            )
            # a tier the program no longer has: the first batch moves it into the ladder
            ctx.connection.execute(
                update(t.members)
                .where(t.members.c.customer_id == ids[f"{side}2"])
                .values(tier="retired")
            )
    history = _history(random.Random(seed), 260)
    statements: list[str] = []
    event.listen(crm.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for side, fast in (("A", True), ("B", False)):
        service.set_based = fast
        if fast and via == "add_rows":  # the importer's path: crmkit.StoredOrders batches
            rows = [
                (
                    f"{side}-{o['n']}",
                    ids[f"{side}{o['customer']}"],
                    o["occurred_at"],
                    Decimal(o["amount"]),
                    None,
                    "EUR",
                    o["status"],
                    o["channel"],
                )
                for o in history
            ]
            for start in range(0, len(rows), 37):
                crm.orders.add_rows(rows[start : start + 37])
        else:
            crm.orders.add_many(
                (
                    {
                        "external_id": f"{side}-{o['n']}",
                        "customer_id": ids[f"{side}{o['customer']}"],
                        "occurred_at": o["occurred_at"],
                        "amount": o["amount"],
                        "channel": o["channel"],
                        "status": o["status"],
                    }
                    for o in history
                ),
                batch_size=37,
            )
        if fast:
            set_based = sum(
                "INSERT INTO loyalty_ledger" in s and "loyalty_tmp" in s for s in statements
            )
    service.set_based = True
    return crm, service, {"ids": ids, "set_based": set_based}


def _ledger(crm: Any, customer_id: int) -> list[tuple[Any, ...]]:
    """A member's ledger with order ids replaced by the order's number in the history."""
    with crm.reading() as connection:
        rows = connection.execute(
            select(t.ledger, ck.orders.c.external_id)
            .join(t.members, t.members.c.id == t.ledger.c.member_id)
            .outerjoin(ck.orders, ck.orders.c.id == t.ledger.c.order_id)
            .where(t.members.c.customer_id == customer_id)
        ).all()
    out = []
    for r in rows:
        number = r.external_id.split("-")[1] if r.external_id else None
        key = r.idem_key
        if key and r.order_id is not None:
            key = key.replace(f":{r.order_id}:", ":#:")
        if key and not key.startswith("order:"):
            key = key.split(":")[0]  # signup:<member id> ...
        out.append((number, r.kind, int(r.points), r.occurred_at, r.expires_at, r.rule, key))
    return sorted(out, key=repr)


@pytest.mark.parametrize(
    ("definition", "seed", "fast", "via"),
    [
        (SPEND_CLUB, 1, True, "add_many"),
        (SPEND_CLUB, 2, True, "add_many"),
        (POINTS_CLUB, 3, True, "add_many"),
        (THIRDS, 4, False, "add_many"),
        (SPEND_CLUB, 5, True, "add_rows"),
        (POINTS_CLUB, 6, True, "add_rows"),
        (BOUND_CLUB, 7, True, "add_many"),
        (BOUND_CLUB, 8, True, "add_rows"),
    ],
)
def test_set_based_earning_equals_order_by_order(
    make_crm: Any, definition: dict[str, Any], seed: int, fast: bool, via: str
) -> None:
    crm, service, info = _import_twice(make_crm, definition, seed, via)
    ids = info["ids"]
    assert (info["set_based"] > 0) == fast
    earned = 0
    for i in range(CUSTOMERS):
        a, b = ids[f"A{i}"], ids[f"B{i}"]
        enrolled = [m.program for m in service.memberships(a)]
        assert enrolled == [m.program for m in service.memberships(b)], i
        if not enrolled:
            continue
        ma, mb = service.member(a), service.member(b)
        assert (ma.balance, ma.orders_count, ma.tier, ma.clawback_due) == (
            mb.balance,
            mb.orders_count,
            mb.tier,
            mb.clawback_due,
        ), i
        assert _ledger(crm, a) == _ledger(crm, b), i
        assert service.tier_history(a) == service.tier_history(b), i
        earned += ma.balance
    assert earned > 1000  # the history earned something worth comparing
    assert service.tier_history(ids["A2"])[0]["from_tier"] == "retired"
    assert_consistent(service)


def test_set_based_import_is_idempotent_and_fires_one_event_per_batch(make_crm: Any) -> None:
    class Listener:
        calls: list[list[Any]] = []

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_after_points_earned(self, ctx: Any, entries: Any) -> None:
            self.calls.append(list(entries))

    listener = Listener()
    crm = make_crm(plugins=["loyalty", listener])
    service = loyalty(crm)
    service.load_program({**SPEND_CLUB, "earn": SPEND_CLUB["earn"][:3]})
    customers = [crm.customers.add(name=f"C{i}").id for i in range(5)]
    service.enrol_many(customers, at=at(2024, 12, 1))
    orders = [
        {
            "external_id": f"O{n}",
            "customer_id": customers[n % 5],
            "occurred_at": at(2025, 3, 1) + dt.timedelta(hours=n),
            "amount": "20.00",
        }
        for n in range(30)
    ]
    crm.orders.add_many(orders, batch_size=10)
    assert len(listener.calls) == 3 and all(listener.calls)  # one event per batch
    entries = [e for call in listener.calls for e in call]
    assert {e.rule for e in entries} == {"spend", "third"}
    assert sum(e.points for e in entries) == sum(service.member(c).balance for c in customers)
    assert all(e.customer_id in customers and e.id is not None for e in entries)
    before = {c: service.member(c).balance for c in customers}
    result = crm.orders.add_many(orders, batch_size=10)  # the same orders again
    assert result.stored == 0
    assert {c: service.member(c).balance for c in customers} == before
    assert len(listener.calls) == 3
    assert_consistent(service)


def test_sql_add_months_equals_python(make_crm: Any) -> None:
    """Month ends clamp (31 January + 1 month is 28 or 29 February) in SQL as in Python,
    days up to the 28th never do, and the time of day is kept."""
    from crmkit_loyalty.program import add_months
    from crmkit_loyalty.setbased import add_months as sql_add_months

    crm = make_crm(plugins=["loyalty"])
    customer = crm.customers.add(name="C")
    moments = [
        at(year, month, day, 13, 5, 7)
        for year in (2024, 2025)
        for month in (1, 2, 3, 12)
        for day in (1, 28, 29, 30, 31)
        if day <= (29 if month == 2 and year == 2024 else 28 if month == 2 else 31)
    ]
    ids = [
        crm.orders.add(customer_id=customer.id, amount="1", occurred_at=when).id for when in moments
    ]
    o = ck.orders.c
    for months in (1, -1, 12, -12, 13, 24, -25):
        with crm.reading() as connection:
            dialect = connection.dialect.name
            found = dict(
                connection.execute(
                    select(o.id, sql_add_months(o.occurred_at, months, dialect)).where(
                        o.id.in_(ids)
                    )
                ).all()
            )
        assert [found[i] for i in ids] == [add_months(w, months) for w in moments], months


def test_batch_filter_selects_exactly_the_batch(make_crm: Any) -> None:
    """Consecutive ids become ranges (other writers may take ids in between on PostgreSQL)."""
    crm = make_crm(plugins=["loyalty"])
    customer = crm.customers.add(name="C")
    ids = [
        o.id
        for o in (
            crm.orders.add(customer_id=customer.id, amount="1", occurred_at=at(2025, 1, n))
            for n in range(1, 29)
        )
    ]
    for chosen in (ids[:10], ids[3:5] + ids[7:12] + [ids[20]], ids[::2], [ids[5]]):
        with crm.reading() as connection:
            found = connection.scalars(
                select(ck.orders.c.id).where(batch_filter(ck.orders.c.id, chosen))
            ).all()
        assert sorted(found) == sorted(chosen)


def test_an_import_batch_earns_without_building_its_order_entities(
    make_crm: Any, monkeypatch: Any
) -> None:
    # every way to an entity of a Sequence goes through __getitem__ or __iter__ (len and
    # ids do not): count the reads of any batch's entities
    read: list[str] = []
    for name in ("__getitem__", "__iter__"):
        real = getattr(ck.StoredOrders, name)
        monkeypatch.setattr(
            ck.StoredOrders, name, lambda *a, _r=real, _n=name: read.append(_n) or _r(*a)
        )
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(SPEND_CLUB)
    customers = [crm.customers.add(name=f"C{i}").id for i in range(3)]
    service.enrol_many(customers, at=at(2024, 12, 1))
    rows = [
        (f"O{n}", customers[n % 3], at(2025, 3, 1, n), Decimal("20.00"), None, "EUR", "paid", "web")
        for n in range(12)
    ]
    crm.orders.add_rows(rows)
    assert read == []  # earned in SQL from the stored rows
    assert list(ck.StoredOrders([1], list)) == [] and read == ["__iter__"]  # the spy works
    assert sum(service.member(c).balance for c in customers) > 0
    assert_consistent(service)


class _TierListener:
    """Receives the tier changes as records: the set-based path builds them."""

    def __init__(self) -> None:
        self.changes: list[Any] = []

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_loyalty_after_tiers_changed(self, ctx: Any, changes: Any) -> None:
        self.changes += changes


@pytest.mark.parametrize(("definition", "seed"), [(SPEND_CLUB, 11), (BOUND_CLUB, 12)])
def test_upgrades_written_in_sql_equal_the_records_a_listener_gets(
    make_crm: Any, definition: dict[str, Any], seed: int
) -> None:
    """With no one to receive them, an import's upgrades go to the database in SQL
    (setbased.write_upgrades); with a listener, as records (tiers.apply_tier_changes).
    The "A" customers import without a listener, their mirror "B" customers with one:
    the same tier history (times and measures too) and the same members."""
    listener = _TierListener()
    quiet = make_crm(plugins=["loyalty"])
    heard = make_crm(plugins=["loyalty", listener])
    loyalty(quiet).load_program(definition)
    quiet.customers.add_many(
        {"external_id": f"{side}{i}", "name": f"{side}{i}"} for side in "AB" for i in range(6)
    )
    ids = {c.external_id: c.id for c in quiet.customers.iterate()}
    loyalty(quiet).enrol_many(sorted(ids.values()), at=at(2024, 12, 1))
    history = [o for o in _history(random.Random(seed), 200) if o["customer"] < 6]
    statements: list[str] = []
    event.listen(quiet.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for side, crm in (("A", quiet), ("B", heard)):
        rows = [
            (f"{side}-{o['n']}", ids[f"{side}{o['customer']}"], o["occurred_at"],
             Decimal(o["amount"]), None, "EUR", o["status"], o["channel"])
            for o in history
        ]  # fmt: skip
        for start in range(0, len(rows), 23):
            crm.orders.add_rows(rows[start : start + 23])
    assert any("INSERT INTO loyalty_tier_changes" in s and "loyalty_tmp" in s for s in statements)
    service = loyalty(heard)
    moved = 0
    for i in range(6):
        a, b = ids[f"A{i}"], ids[f"B{i}"]
        assert service.tier_history(a) == service.tier_history(b), i
        ma, mb = service.member(a), service.member(b)
        assert (ma.tier, ma.tier_since, ma.balance) == (mb.tier, mb.tier_since, mb.balance), i
        moved += len(service.tier_history(b))
    assert moved and len(listener.changes) == moved  # upgrades happened, each heard once
    assert {c.customer_id for c in listener.changes} <= {ids[f"B{i}"] for i in range(6)}
    assert_consistent(service)
