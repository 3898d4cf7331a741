"""Catching up with what the core did while loyalty was off (issue 14, point 7).

A CRM opened without the plugin refunds and takes orders loyalty never hears of; when
a CRM with the plugin writes again, the core asks it to catch up (``crmkit_catch_up``),
and ``crmkit plugins catch-up loyalty`` / ``crmkit loyalty catch-up`` do it on demand.
Whatever runs it, and however often, each refund is reversed exactly once and each
missed paid order earns once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmkit_loyalty import loyalty
from crmkit_loyalty import tables as t
from crmkit_loyalty.testing import assert_consistent, pay, program
from sqlalchemy import func, select

SPEND_ONLY = {"earn": [{"type": "spend", "rate": 1}], "expiry_months": 0}


def _reversals(crm: Any, order_id: int) -> list[int]:
    with crm.reading() as connection:
        return list(
            connection.scalars(
                select(t.ledger.c.points).where(
                    t.ledger.c.order_id == order_id, t.ledger.c.kind == "reverse"
                )
            )
        )


def _earned(crm: Any, order_id: int) -> int:
    with crm.reading() as connection:
        return int(
            connection.scalar(
                select(func.coalesce(func.sum(t.ledger.c.points), 0)).where(
                    t.ledger.c.order_id == order_id, t.ledger.c.kind == "earn"
                )
            )
        )


def test_a_refund_made_while_loyalty_was_off_is_reversed_once_when_it_is_back(
    make_crm: Any, cli_runner: Any
) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(**SPEND_ONLY))
    alice = crm.customers.add(name="Alice Li")
    service.enrol(alice.id)
    now = dt.datetime.now(dt.UTC)
    refunded = pay(crm, alice.id, "120", now)
    pay(crm, alice.id, "50", now + dt.timedelta(minutes=1))
    assert service.balance(alice.id) == 170

    off = make_crm(plugins=[])  # the same database, loyalty not loaded
    off.orders.set_status(refunded.id, "refunded")
    missed = off.orders.add(
        customer_id=alice.id, amount="30", occurred_at=now + dt.timedelta(minutes=2)
    )

    back = make_crm(plugins=["loyalty"])
    again = loyalty(back)
    assert again.balance(alice.id) == 170  # nothing has written yet
    back.customers.add(name="Bob")  # the first write: the core has loyalty catch up first
    assert again.balance(alice.id) == 170 - 120 + 30
    assert _reversals(back, refunded.id) == [-120]
    assert _earned(back, missed.id) == 30

    # on demand, through the core's command and the plugin's own: nothing more
    result = cli_runner(["plugins", "catch-up", "loyalty"], plugins=["loyalty"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "nothing needed reconciling" in result.output
    result = cli_runner(["loyalty", "catch-up"], plugins=["loyalty"])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.strip() == "loyalty: nothing to catch up"
    assert again.balance(alice.id) == 80
    assert _reversals(back, refunded.id) == [-120]
    assert _earned(back, missed.id) == 30
    assert_consistent(again)


def test_loyalty_catch_up_reconciles_on_demand(make_crm: Any, cli_runner: Any) -> None:
    """The plugin's own command does the same work (here before any automatic run)."""
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(**SPEND_ONLY, auto_enrol=True))
    alice = crm.customers.add(name="Alice Li")
    now = dt.datetime.now(dt.UTC)
    first = pay(crm, alice.id, "200", now)  # makes her a member
    off = make_crm(plugins=[])
    off.orders.set_status(first.id, "cancelled")
    newcomer = off.customers.add(name="Newcomer")
    joined = off.orders.add(
        customer_id=newcomer.id, amount="40", occurred_at=now + dt.timedelta(minutes=1)
    )
    small = off.orders.add(
        customer_id=newcomer.id, amount="0.50", occurred_at=now + dt.timedelta(minutes=2)
    )
    # the hook itself, called as the core calls it
    with crm.transaction() as ctx:
        said = crm.pm.hook.crmkit_catch_up(ctx=ctx, since=now)
    assert said == [
        "loyalty: reversed the points of 1 refunded or cancelled orders; earned on 1 paid orders"
    ]
    assert service.balance(alice.id) == 0
    assert service.balance(newcomer.id) == 40  # enrolled by the missed order, as of it
    assert service.member(newcomer.id).enrolled_at == joined.occurred_at
    assert _earned(crm, small.id) == 0  # earns nothing: left alone
    result = cli_runner(["loyalty", "catch-up"], plugins=["loyalty"])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.strip() == "loyalty: nothing to catch up"
    assert (service.balance(alice.id), service.balance(newcomer.id)) == (0, 40)
    assert_consistent(service)


def test_orders_of_a_disabled_program_are_not_caught_up(make_crm: Any) -> None:
    crm = make_crm(plugins=["loyalty"])
    service = loyalty(crm)
    service.load_program(program(**SPEND_ONLY))
    alice = crm.customers.add(name="Alice Li")
    service.enrol(alice.id)
    service.set_enabled("club", False)
    now = dt.datetime.now(dt.UTC)
    pay(crm, alice.id, "75", now)  # the program does not earn now
    service.set_enabled("club", True)
    assert service.catch_up() is None
    assert service.balance(alice.id) == 0
