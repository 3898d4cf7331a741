"""Merging two customers' memberships (``crmkit customer merge KEEP OTHER``).

For each program the merged customer belongs to, their membership joins the kept
customer's: the ledger rows move to the kept customer's member (or the member row
itself moves when the kept customer was not a member), the balance becomes the sum of
the joined ledger, order counts and claw-backs add up, the tier is recomputed by the
program's rules and the tier history moves along.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, delete, exists, func, select, type_coerce, update

import crmkit.plugin as ck
from crmkit.plugin import to_decimal
from crmkit_loyalty import bounds
from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.program import Program, add_months
from crmkit_loyalty.records import TierChange
from crmkit_loyalty.tiers import apply_tier_changes

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


def merge(
    lc: LoyaltyContext, ctx: HookContext, kept_id: int, merged_id: int
) -> dict[str, int] | None:
    connection = ctx.connection
    m = t.members
    rows = connection.execute(
        select(m).where(m.c.customer_id.in_([kept_id, merged_id])).with_for_update()
    ).all()
    # who the merged customer referred was referred by the kept one (never by themselves)
    connection.execute(
        update(m)
        .where(m.c.referred_by == merged_id, m.c.customer_id != kept_id)
        .values(referred_by=kept_id)
    )
    connection.execute(
        update(m)
        .where(m.c.referred_by == merged_id, m.c.customer_id == kept_id)
        .values(referred_by=None)
    )
    theirs = {r.program_id: r for r in rows if r.customer_id == merged_id}
    if not theirs:
        # the merged customer's orders are the kept one's now: so is their spend
        bounds.refresh_customers(connection, [kept_id])
        return None
    ours = {r.program_id: r for r in rows if r.customer_id == kept_id}
    programs = dict(lc.programs(connection, enabled_only=False))
    entries = points = 0
    changes: list[TierChange] = []
    for program_id, old in sorted(theirs.items()):
        count, total = connection.execute(
            select(func.count(), func.coalesce(func.sum(t.ledger.c.points), 0)).where(
                t.ledger.c.member_id == old.id
            )
        ).one()
        entries += int(count)
        points += int(total)
        new = ours.get(program_id)
        if new is None:
            connection.execute(
                update(m)
                .where(m.c.id == old.id)
                .values(customer_id=kept_id, referred_by=_referrer(old, old, kept_id, merged_id))
            )
            target, tiers = old.id, [old.tier]
        else:
            _join(connection, old, new, _referrer(new, old, kept_id, merged_id))
            target, tiers = new.id, [new.tier, old.tier]
        change = _tier_after_merge(
            connection, programs[program_id], target, kept_id, tiers, ctx.now
        )
        if change is not None:
            changes.append(change)
    bounds.refresh_customers(connection, [kept_id])  # with the moved orders and members
    apply_tier_changes(lc, ctx, changes)
    summary = {"programs": len(theirs), "entries": entries, "points": points}
    # part of the core's merge: one entry naming what moved to the kept customer
    audit_batch(
        ctx, "loyalty.merge", "customer", kept_id, customer_id=kept_id,
        counts={"merged_customer": merged_id, **summary},
    )  # fmt: skip
    return summary


def _referrer(new: Any, old: Any, kept_id: int, merged_id: int) -> int | None:
    """Who referred the joined member: the kept member's referrer, else the merged one's,
    never one of the two records merged."""
    for referrer in (new.referred_by, old.referred_by):
        if referrer is not None and referrer not in (kept_id, merged_id):
            return int(referrer)
    return None


def _join(connection: Any, old: Any, new: Any, referred_by: int | None) -> None:
    """Move ``old``'s ledger and tier history to ``new``, add up its counters, delete it."""
    ledger, m = t.ledger, t.members
    # the one row pair that can collide on (order, kind, member, rule): a referral between
    # the two records (one referred the other); the moved row's rule names where it came from
    twin = ledger.alias("twin")
    clash = exists(
        select(twin.c.id).where(
            twin.c.member_id == new.id,
            twin.c.order_id == ledger.c.order_id,
            twin.c.kind == ledger.c.kind,
            twin.c.rule == ledger.c.rule,
        )
    )
    connection.execute(
        update(ledger)
        .where(ledger.c.member_id == old.id, ledger.c.order_id.is_not(None), clash)
        .values(
            rule=type_coerce(func.substr(ledger.c.rule, 1, 70), String)
            + f" (customer {old.customer_id})"
        )
    )
    connection.execute(update(ledger).where(ledger.c.member_id == old.id).values(member_id=new.id))
    connection.execute(
        update(t.tier_changes).where(t.tier_changes.c.member_id == old.id).values(member_id=new.id)
    )
    total = select(func.coalesce(func.sum(ledger.c.points), 0)).where(ledger.c.member_id == new.id)
    connection.execute(
        update(m)
        .where(m.c.id == new.id)
        .values(
            balance=total.scalar_subquery(),
            clawback_due=int(new.clawback_due) + int(old.clawback_due),
            orders_count=new.orders_count + old.orders_count,
            enrolled_at=min(new.enrolled_at, old.enrolled_at),
            referred_by=referred_by,
        )
    )
    connection.execute(delete(m).where(m.c.id == old.id))  # its ledger moved: nothing cascades


def _tier_after_merge(
    connection: Any,
    prog: Program,
    member_id: int,
    customer_id: int,
    tiers: list[str | None],
    now: dt.datetime,
) -> TierChange | None:
    """The joined member keeps the higher of the two tiers (tiers fall only at the review)
    and moves up if the joined measure over the window ending now meets a higher one."""
    if not prog.tiers:
        return None
    current = connection.scalar(select(t.members.c.tier).where(t.members.c.id == member_id))
    measure = _measure(connection, prog, member_id, customer_id, now)
    best = max([*tiers, prog.tier_for(measure)], key=prog.rank)
    if best == current or prog.rank(best) < 0:
        return None
    return TierChange(member_id, customer_id, prog.name, current, best, now, "merge", measure)


def _measure(
    connection: Any, prog: Program, member_id: int, customer_id: int, now: dt.datetime
) -> Decimal:
    start = add_months(now, -prog.window_months)
    if prog.measure == "points":
        ledger = t.ledger.c
        query = select(func.sum(ledger.points)).where(
            ledger.member_id == member_id,
            ledger.kind.in_(("earn", "reverse")),
            ledger.occurred_at > start,
            ledger.occurred_at <= now,
        )
    else:
        o = ck.orders.c
        value = func.sum(o.amount) if prog.measure == "spend" else func.count()
        query = select(value).where(
            and_(o.customer_id == customer_id, o.status == "paid"),
            o.occurred_at > start,
            o.occurred_at <= now,
        )
    return to_decimal(connection.scalar(query) or 0)
