"""Catching up with what the core did while the plugin was off (``crmkit_catch_up``,
``crmkit loyalty catch-up``).

Loyalty works from the core's order events; a CRM opened without the plugin stores
orders, refunds, merges and erasures it never hears of. Catching up reconciles from the
core's records, never from the missed events, and is idempotent (the ledger's unique
keys): running it twice, or over changes already handled, writes nothing more.

1. **Refunds and cancellations**: every refunded or cancelled order whose points were
   earned and never reversed is reversed (the program's reversal policy applies).
2. **Paid orders that never earned**: a paid order earns in an enabled program when it
   has no ``earn`` row there, is dated on or after the program was last loaded or
   enabled (orders of a period it was disabled never earn) and, unless the program
   enrols automatically, on or after the customer enrolled; and when it earns points
   besides ``nth_order`` bonuses (an order earning nothing leaves no trace in the
   ledger, so catching up cannot tell whether it was counted for ``nth_order``: those
   are left alone). They earn order by order, in the order they were stored, with the
   member's current tier and order count. Orders dated earlier are left to ``crmkit
   loyalty earn``, which replays every stored paid order.
3. **Merges**: a member whose customer was merged into another joins that customer's
   membership (:mod:`crmkit_loyalty.merging`).
4. **Erasures**: an erased customer's personal loyalty data is erased
   (:mod:`crmkit_loyalty.privacy`).

``since`` (when the plugin was last seen enabled) is not needed: orders carry no time
they were stored, so every order is checked; each check is an index look-up.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, or_, select

import crmkit.plugin as ck
from crmkit_loyalty import bounds, merging, privacy
from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.earning import earn_program
from crmkit_loyalty.ledger import CHUNK
from crmkit_loyalty.program import Program
from crmkit_loyalty.reversal import reverse_ids
from crmkit_loyalty.rules import MemberView, NthOrderRule

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


def catch_up(lc: LoyaltyContext, ctx: HookContext, since: dt.datetime | None = None) -> str | None:
    del since  # every order is checked (see the module docstring)
    done = []
    merged = _merges(lc, ctx)
    if merged:
        done.append(f"joined {merged} memberships of merged customers")
    # orders stored, paid or moved by merges while the plugin was off: the spend bounds
    # below the spend are raised before anything earns
    bounds.raise_to_spend(ctx.connection)
    erased = _erasures(ctx)
    if erased:
        done.append(f"erased the loyalty data of {erased} erased customers")
    reversed_ = _reversals(lc, ctx)
    if reversed_:
        done.append(f"reversed the points of {reversed_} refunded or cancelled orders")
    earned = sum(
        _earnings(lc, ctx, program_id, prog) for program_id, prog in lc.programs(ctx.connection)
    )
    if earned:
        done.append(f"earned on {earned} paid orders")
    if done:
        audit_batch(
            ctx,
            "loyalty.catch_up",
            "plugin",
            "loyalty",
            counts={"merged": merged, "erased": erased, "reversed": reversed_, "earned": earned},
        )
    return "loyalty: " + "; ".join(done) if done else None


def _merges(lc: LoyaltyContext, ctx: HookContext) -> int:
    c, m = ck.customers.c, t.members.c
    pairs = ctx.connection.execute(
        select(c.id, c.merged_into)
        .where(c.merged_into.is_not(None), exists(select(m.id).where(m.customer_id == c.id)))
        .order_by(c.id)
    ).all()
    count = 0
    for customer_id, target in pairs:
        kept = _final(ctx.connection, target)
        summary = merging.merge(lc, ctx, kept, customer_id)
        count += summary["programs"] if summary else 0
    return count


def _final(connection: Any, customer_id: int) -> int:
    """The record a chain of merges ends at."""
    seen = {customer_id}
    while True:
        nxt = connection.scalar(
            select(ck.customers.c.merged_into).where(ck.customers.c.id == customer_id)
        )
        if nxt is None or nxt in seen:
            return customer_id
        seen.add(nxt)
        customer_id = nxt


def _erasures(ctx: HookContext) -> int:
    c, m = ck.customers.c, t.members.c
    erased = select(c.id).where(c.erased_at.is_not(None))
    # only those with something left to erase: a reason or a referral link
    pending = ctx.connection.scalars(
        select(c.id).where(
            c.id.in_(erased),
            or_(
                exists(select(m.id).where(or_(m.customer_id == c.id, m.referred_by == c.id),
                                          m.referred_by.is_not(None))),
                exists(
                    select(t.ledger.c.id)
                    .join(t.members, t.members.c.id == t.ledger.c.member_id)
                    .where(m.customer_id == c.id, t.ledger.c.reason.is_not(None),
                           t.ledger.c.reason != privacy.ERASED)
                ),
            ),
        )
    ).all()  # fmt: skip
    for customer_id in pending:
        privacy.erase(ctx.connection, customer_id)
    return len(pending)


def _reversals(lc: LoyaltyContext, ctx: HookContext) -> int:
    ledger, o = t.ledger, ck.orders.c
    undone = ledger.alias("undone")
    reversed_ = exists(
        select(undone.c.id).where(
            undone.c.order_id == ledger.c.order_id,
            undone.c.member_id == ledger.c.member_id,
            undone.c.kind == "reverse",
            undone.c.rule == "refund",
        )
    )
    ids = list(
        ctx.connection.scalars(
            select(ledger.c.order_id)
            .join(ck.orders, o.id == ledger.c.order_id)
            .where(ledger.c.kind == "earn", o.status.in_(("refunded", "cancelled")), ~reversed_)
            .distinct()
            .order_by(ledger.c.order_id)
        )
    )
    for start in range(0, len(ids), CHUNK):
        reverse_ids(lc, ctx, ids[start : start + CHUNK])
    return len(ids)


def _earnings(lc: LoyaltyContext, ctx: HookContext, program_id: int, prog: Program) -> int:
    connection = ctx.connection
    o, m, ledger = ck.orders.c, t.members.c, t.ledger.c
    enabled = connection.scalar(
        select(t.programs.c.updated_at).where(t.programs.c.id == program_id)
    )
    earned = exists(
        select(ledger.id).where(
            ledger.order_id == o.id, ledger.kind == "earn", ledger.program_id == program_id
        )
    )
    member = exists(
        select(m.id).where(
            m.program_id == program_id,
            m.customer_id == o.customer_id,
            m.enrolled_at <= o.occurred_at,
        )
    )
    gone = select(ck.customers.c.id).where(
        or_(ck.customers.c.erased_at.is_not(None), ck.customers.c.merged_into.is_not(None))
    )
    query = select(o.id).where(
        o.status == "paid", o.occurred_at >= enabled, ~earned, o.customer_id.not_in(gone)
    )
    if not prog.auto_enrol:
        query = query.where(member)
    ids = list(connection.scalars(query.order_by(o.id)))
    count = 0
    for start in range(0, len(ids), CHUNK):
        chunk = lc.crm.orders.get_many(ids[start : start + CHUNK])
        orders = _earning(connection, program_id, prog, chunk)
        if orders:
            earn_program(lc, ctx, program_id, prog, lambda orders=orders: orders, replay=True)
            count += len(orders)
    return count


def _earning(connection: Any, program_id: int, prog: Program, orders: list[Any]) -> list[Any]:
    """The orders that earn points other than ``nth_order`` bonuses at their member's
    current tier (a customer not yet a member of an auto-enrol program: the base tier)."""
    nth = {rule.name for rule in prog.rules if isinstance(rule, NthOrderRule)}
    m = t.members.c
    rows = {
        r.customer_id: r
        for r in connection.execute(
            select(m.id, m.customer_id, m.tier, m.orders_count, m.enrolled_at).where(
                m.program_id == program_id,
                m.customer_id.in_(sorted({order.customer_id for order in orders})),
            )
        )
    }
    found = []
    for order in orders:
        row = rows.get(order.customer_id)
        if row is None:
            view = MemberView(0, order.customer_id, prog.base_tier, 0, order.occurred_at)
        else:
            view = MemberView(
                row.id, order.customer_id, row.tier, row.orders_count, row.enrolled_at
            )
        if any(rule not in nth for rule, _ in prog.order_points(order, view)):
            found.append(order)
    return found
