"""Plugins catch up with core changes made while they were off (plugin_states)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import event, insert, select

import crmkit
from crmkit.core import catchup
from crmkit.core import tables as t

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
PREFIX = "refund-note-"


def note_refunds(connection, now, only=None) -> int:
    """Note every refunded order (of ``only``) that has no note yet, from the core's
    records: the reconciliation is idempotent, and the notes' unique external ids would
    refuse a second note of one refund."""
    query = select(t.orders.c.id, t.orders.c.customer_id).where(t.orders.c.status == "refunded")
    if only is not None:
        query = query.where(t.orders.c.id.in_(only))
    refunded = connection.execute(query).all()
    noted = set(
        connection.scalars(
            select(t.interactions.c.external_id).where(
                t.interactions.c.external_id.startswith(PREFIX)
            )
        )
    )
    rows = [
        {
            "customer_id": customer_id, "channel": "web", "direction": "outbound",
            "subject": "refund noted", "body": "", "occurred_at": now,
            "external_id": f"{PREFIX}{order_id}",
        }
        for order_id, customer_id in refunded
        if f"{PREFIX}{order_id}" not in noted
    ]  # fmt: skip
    if rows:
        connection.execute(insert(t.interactions), rows)
    return len(rows)


class RefundNotes:
    """A plugin that notes refunds as they happen, and reconciles the ones it missed."""

    CRMKIT_NAME = "refund_notes"
    CRMKIT_API = ">=1.2,<2"

    def __init__(self, fail: bool = False) -> None:
        self.since: list[dt.datetime | None] = []
        self.reconciled = 0
        self.heard = 0
        self.fail = fail

    @crmkit.hookimpl
    def crmkit_after_orders_updated(self, ctx, orders, previous):
        self.heard += note_refunds(ctx.connection, ctx.now, [o.id for o in orders])

    @crmkit.hookimpl
    def crmkit_catch_up(self, ctx, since):
        self.since.append(since)
        if self.fail:
            raise RuntimeError("ledger offline")
        found = note_refunds(ctx.connection, ctx.now)
        self.reconciled += found
        return f"noted {found} refunds" if found else None


class Other:
    """Another plugin, without a catch-up."""

    CRMKIT_NAME = "other"
    CRMKIT_API = ">=1.2,<2"

    @staticmethod
    @crmkit.hookimpl
    def crmkit_after_orders_created(orders):
        pass


def notes(crm) -> list[str]:
    with crm.reading() as connection:
        return sorted(
            connection.scalars(
                select(t.interactions.c.external_id).where(
                    t.interactions.c.external_id.startswith(PREFIX)
                )
            )
        )


def states(crm) -> dict[str, bool]:
    with crm.reading() as connection:
        rows = connection.execute(select(t.plugin_states.c.plugin, t.plugin_states.c.enabled))
        return {plugin: enabled for plugin, enabled in rows}


def order(crm, external_id: str):
    customer = crm.customers.add(name=f"Customer {external_id}")
    return crm.orders.add(
        customer_id=customer.id, amount="10.00", occurred_at=T0, external_id=external_id
    )


def test_a_refund_made_while_the_plugin_was_off_is_reconciled_exactly_once(make_crm) -> None:
    first = RefundNotes()
    crm = make_crm(plugins=[first])
    heard = order(crm, "O-1")
    crm.orders.set_status(heard.id, "refunded")
    assert first.heard == 1 and first.since == []  # a fresh database: nothing to catch up
    missed = order(crm, "O-2")
    crm.close()

    off = make_crm(plugins=[])
    off.orders.set_status(missed.id, "refunded")  # nobody notes it
    assert states(off) == {"crmkit": True, "refund_notes": False}
    off.close()

    back = RefundNotes()
    crm = make_crm(plugins=[back])
    assert notes(crm) == [f"{PREFIX}{heard.id}"]  # reads do not trigger the catch-up
    order(crm, "O-3")  # the first write: the plugin catches up before it
    assert notes(crm) == [f"{PREFIX}{heard.id}", f"{PREFIX}{missed.id}"]
    assert back.reconciled == 1 and len(back.since) == 1 and back.since[0] is not None
    assert crm._plugin_states.caught_up == {"refund_notes": "noted 1 refunds"}
    assert states(crm) == {"crmkit": True, "refund_notes": True}
    crm.close()

    again = RefundNotes()
    crm = make_crm(plugins=[again])
    order(crm, "O-4")
    assert again.since == []  # it was on for every write since: no catch-up
    # on demand: everything (since=None), idempotent
    assert catchup.catch_up(crm, "refund_notes") is None
    assert again.since == [None] and again.reconciled == 0
    assert len(notes(crm)) == 2


def test_the_check_costs_one_select_per_crm(make_crm) -> None:
    make_crm(plugins=[RefundNotes()]).customers.add(name="A")  # states recorded
    crm = make_crm(plugins=[RefundNotes()])
    statements: list[str] = []
    event.listen(
        crm.engine, "before_cursor_execute",
        lambda conn, cursor, statement, *args: statements.append(statement),
    )  # fmt: skip
    crm.customers.add(name="B")
    crm.customers.add(name="C")
    about_states = [s for s in statements if "plugin_states" in s]
    assert len(about_states) == 1 and about_states[0].lstrip().upper().startswith("SELECT")


def test_a_plugin_first_enabled_on_a_written_database_catches_up_with_everything(
    make_crm,
) -> None:
    crm = make_crm(plugins=[])
    refunded = order(crm, "O-1")
    crm.orders.set_status(refunded.id, "refunded")
    late = RefundNotes()
    crm = make_crm(plugins=[late, Other])
    crm.customers.add(name="B")
    assert late.since == [None] and late.reconciled == 1
    assert states(crm) == {"crmkit": True, "refund_notes": True, "other": True}


def test_a_failing_catch_up_warns_keeps_the_plugin_disabled_and_is_retried(
    make_crm, caplog
) -> None:
    crm = make_crm(plugins=[RefundNotes()])
    missed = order(crm, "O-1")
    make_crm(plugins=[]).orders.set_status(missed.id, "refunded")
    failing = RefundNotes(fail=True)
    crm = make_crm(plugins=[failing])
    with caplog.at_level(logging.WARNING, logger="crmkit.core.catchup"):
        added = crm.customers.add(name="B")  # the write itself goes on
    assert crm.customers.get(added.id).name == "B"
    assert [r.getMessage() for r in caplog.records] == [
        "plugin 'refund_notes' could not catch up with the changes made while it was off: "
        "plugin 'refund_notes' failed to catch up: RuntimeError: ledger offline; nothing of "
        "its catch-up was stored; it is retried the next time crmkit starts, or run 'crmkit "
        "plugins catch-up refund_notes'"
    ]
    assert states(crm)["refund_notes"] is False and notes(crm) == []
    retried = RefundNotes()
    make_crm(plugins=[retried]).customers.add(name="C")
    assert retried.reconciled == 1 and len(notes(crm)) == 1


def test_crms_with_different_plugin_sets_at_once_stay_correct(make_crm) -> None:
    """Long-running CRMs with and without the plugin interleave their writes: every
    refund ends up noted exactly once (live, or by a later catch-up)."""
    on = RefundNotes()
    with_plugin = make_crm(plugins=[on])
    orders = [order(with_plugin, f"O-{i}") for i in range(5)]
    without = make_crm(plugins=[])
    without.orders.set_status(orders[0].id, "refunded")  # missed: marks it disabled
    catching = RefundNotes()
    later = make_crm(plugins=[catching])
    later.customers.add(name="X")  # catches up O-0, marks it enabled again
    assert catching.reconciled == 1
    without.orders.set_status(orders[1].id, "refunded")  # missed again: disabled again
    assert states(without)["refund_notes"] is False
    with_plugin.orders.set_status(orders[2].id, "refunded")  # heard live
    assert on.heard == 1
    last = RefundNotes()
    make_crm(plugins=[last]).customers.add(name="Y")
    assert last.reconciled == 1  # O-1 only: O-0 and O-2 were noted already
    assert notes(with_plugin) == sorted(f"{PREFIX}{o.id}" for o in orders[:3])


def test_parallel_processes_with_different_plugin_sets(database_url, crmkit_backend) -> None:
    import multiprocessing

    crm = crmkit.open(database_url, plugins=[RefundNotes()], upgrade=True)
    ids = [order(crm, f"O-{i}").id for i in range(40)]
    crm.close()
    jobs = [(database_url, ids[i::4], i % 2 == 0) for i in range(4)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.starmap(_refund, jobs)
    final = RefundNotes()
    crm = crmkit.open(database_url, plugins=[final])
    crm.customers.add(name="last")
    assert notes(crm) == sorted(f"{PREFIX}{i}" for i in ids)
    again = catchup.catch_up(crm, "refund_notes")
    assert again is None and len(notes(crm)) == 40
    crm.close()


def _refund(url: str, order_ids: list[int], with_plugin: bool) -> None:
    crm = crmkit.open(url, plugins=[RefundNotes()] if with_plugin else [])
    for order_id in order_ids:
        crm.orders.set_status(order_id, "refunded")
    crm.close()


def test_catching_up_a_plugin_that_is_not_loaded_is_refused(make_crm) -> None:
    crm = make_crm(plugins=[Other])
    with pytest.raises(crmkit.PluginError, match="plugin 'loyalty' is not loaded"):
        catchup.catch_up(crm, "loyalty")
    assert catchup.catch_up(crm, "other") is None  # no catch-up hook: only recorded
    assert states(crm) == {"crmkit": True, "other": True}
