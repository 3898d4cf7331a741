"""Earning points: on paid orders (set-based or order by order), on stored orders,
and birthday bonuses.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import func, null, select

import crmkit.plugin as ck
from crmkit.plugin import Order, StoredOrders, to_decimal
from crmkit_loyalty import setbased
from crmkit_loyalty import tables as t
from crmkit_loyalty.ledger import CHUNK, end_of_day, post
from crmkit_loyalty.membership import enrol_rows
from crmkit_loyalty.program import Program
from crmkit_loyalty.records import LedgerEntry, TierChange, entry_from_row
from crmkit_loyalty.rules import FixedBonusRule, MemberView
from crmkit_loyalty.tiers import apply_tier_changes, upgrades

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


def earn_orders(
    lc: LoyaltyContext,
    ctx: HookContext,
    orders: Sequence[Order],
    *,
    replay: bool = False,
    set_based: bool = True,
) -> None:
    """``set_based=False``: earn order by order only (see :func:`earn_program`)."""
    # the paid orders, filtered once and only when read: an import's batch (StoredOrders)
    # is in the database with no lines, UTC times and at most 4 decimals, and the
    # set-based path reads it there without building its entities
    paid = functools.cache(lambda: _paid(orders))
    imported = False
    batch: list[int] | None = None
    if not replay and isinstance(orders, StoredOrders):
        imported, batch = True, list(orders.ids)
    elif not paid():
        return
    elif not replay:  # new orders (the event path) may earn set-based: all are in the table
        batch = [o.id for o in orders if o.id is not None]
    if not set_based:
        batch = None  # no batch: no set-based path
    for program_id, prog in lc.programs(ctx.connection):
        earn_program(lc, ctx, program_id, prog, paid, replay=replay, batch=batch, imported=imported)


def _paid(orders: Iterable[Order]) -> list[Order]:
    return [o for o in orders if o.status == "paid" and o.id is not None]


def earn_program(
    lc: LoyaltyContext,
    ctx: HookContext,
    program_id: int,
    prog: Program,
    paid: Callable[[], list[Order]],
    *,
    replay: bool,
    batch: list[int] | None = None,
    imported: bool = False,
) -> None:
    """Earn on the orders ``paid()`` gives in one program: one points-earned event, then
    tier upgrades.

    ``batch`` (the ids of all the event's new orders) allows the set-based path
    when SQL computes this program's rules exactly (``crmkit_loyalty.setbased``);
    ``imported``: the batch is an import's StoredOrders (see :func:`earn_orders`).
    """
    plan = prog._view("setbased", lambda: (setbased.plan(prog),))[0]
    if (
        batch
        and plan is not None
        and (
            setbased.batch_fits(ctx.connection, plan, batch)
            if imported
            else setbased.orders_fit(plan, paid())
        )
    ):
        entries, changes = earn_set_based(lc, ctx, program_id, prog, plan, paid, batch)
    elif paid():
        entries, changes = earn_rows(lc, ctx, program_id, prog, paid(), replay=replay)
    else:
        return
    lc.fire(
        ctx, "crmkit_loyalty_after_points_earned", entries=[e for e in entries if e.kind == "earn"]
    )
    apply_tier_changes(lc, ctx, changes)


def earn_set_based(
    lc: LoyaltyContext,
    ctx: HookContext,
    program_id: int,
    prog: Program,
    plan: setbased.Plan,
    paid: Callable[[], list[Order]],
    batch: list[int],
) -> tuple[list[LedgerEntry], list[TierChange]]:
    """Earn in SQL; members needing sequential handling go through :func:`earn_rows`."""
    connection = ctx.connection
    o, m = ck.orders.c, t.members.c
    in_batch = setbased.batch_filter(o.id, batch)
    if prog.auto_enrol:
        member = select(m.id).where(m.program_id == program_id, m.customer_id == o.customer_id)
        first = dict(
            connection.execute(
                select(o.customer_id, func.min(o.occurred_at))
                .where(in_batch, o.status == "paid", ~member.exists())
                .group_by(o.customer_id)
            ).all()
        )
        if first:
            enrol_rows(lc, ctx, program_id, prog, sorted(first), {}, first)
    if not setbased.fill(connection, program_id, prog, plan, in_batch):
        return [], []
    # members with points to claw back, or a referral bonus on this first order, earn
    # order by order (before the set-based rows, so those are the rows after `before`)
    slow = setbased.take_sequential(connection, plan)
    entries: list[LedgerEntry] = []
    changes: list[TierChange] = []
    if slow:
        slow_orders = [order for order in paid() if order.customer_id in slow]
        entries, changes = earn_rows(lc, ctx, program_id, prog, slow_orders, replay=False)
    before = connection.scalar(select(func.max(t.ledger.c.id))) or 0
    setbased.write_ledger(connection, program_id, plan, ctx.now)
    if lc.listened("crmkit_loyalty_after_points_earned"):
        ledger_batch = setbased.batch_filter(t.ledger.c.order_id, batch)
        for row in setbased.new_entries(connection, program_id, before, ledger_batch):
            entries.append(entry_from_row(row, prog.name))
    if prog.tiers:
        for member_id, customer_id, tier, end, total in setbased.upgrade_candidates(
            connection, prog, plan
        ):
            measure = to_decimal(total or 0)
            new = prog.tier_for(measure)
            if prog.rank(new) > prog.rank(tier):
                changes.append(
                    TierChange(
                        member_id, customer_id, prog.name, tier, new, end, "upgrade", measure
                    )
                )
    return entries, changes  # the scratch rows stay until the next batch empties them


def earn_rows(
    lc: LoyaltyContext,
    ctx: HookContext,
    program_id: int,
    prog: Program,
    paid: list[Order],
    *,
    replay: bool,
) -> tuple[list[LedgerEntry], list[TierChange]]:
    """Earn order by order in Python (any rule type, order lines, claw-backs, referrals)."""
    rows = _locked_members(lc, ctx, program_id, prog, paid)
    if not rows:
        return [], []
    if replay:
        paid = _not_earned_yet(ctx.connection, program_id, paid, rows)
    walk = _walk_orders(prog, paid, rows)
    customers = {r.id: cid for cid, r in rows.items()}
    referral = prog.fixed("referral")
    if referral and walk.first_orders:
        walk.ledger += _referral_rows(
            ctx.connection, program_id, prog, referral, walk.first_orders, customers
        )
    extra = {rows[cid].id: st for cid, st in walk.state.items() if cid in walk.last_time}
    listened = lc.listened("crmkit_loyalty_after_points_earned")
    entries = post(ctx, program_id, prog, walk.ledger, customers, extra, entries=listened)
    changes = upgrades(ctx, program_id, prog, rows, walk.last_time) if prog.tiers else []
    return entries, changes


def _locked_members(
    lc: LoyaltyContext, ctx: HookContext, program_id: int, prog: Program, paid: list[Order]
) -> dict[int, Any]:
    """customer id -> member row (locked) of the customers of ``paid`` in the program;
    with ``auto_enrol`` the others are enrolled first, as of their first order."""
    connection = ctx.connection
    customer_ids = sorted({o.customer_id for o in paid})
    m = t.members.c
    columns = (m.id, m.customer_id, m.tier, m.orders_count, m.clawback_due, m.referred_by)
    # enrolled_at is read (and converted) only for plugin rule types that may use it
    enrolled = m.enrolled_at if prog.has_plugin_rules else null().label("enrolled_at")
    query = (
        select(*columns, enrolled)
        .where(t.members.c.program_id == program_id, t.members.c.customer_id.in_(customer_ids))
        .with_for_update()
    )
    rows = {r.customer_id: r for r in connection.execute(query)}
    if prog.auto_enrol:
        first_order = _first_order_times(paid, rows)
        if first_order:
            enrol_rows(lc, ctx, program_id, prog, sorted(first_order), {}, first_order)
            rows = {r.customer_id: r for r in connection.execute(query)}
    return rows


def _first_order_times(paid: list[Order], members: Mapping[int, Any]) -> dict[int, dt.datetime]:
    """customer id -> the time of their first order in ``paid``, for customers not members."""
    first_order: dict[int, dt.datetime] = {}
    for o in paid:
        if o.customer_id not in members:
            seen = first_order.get(o.customer_id)
            if seen is None or o.occurred_at < seen:
                first_order[o.customer_id] = o.occurred_at
    return first_order


def _not_earned_yet(
    connection: Any, program_id: int, paid: list[Order], rows: Mapping[int, Any]
) -> list[Order]:
    """The orders of ``paid`` that have not earned in the program yet (a replay)."""
    done = set(
        connection.scalars(
            select(t.ledger.c.order_id).where(
                t.ledger.c.program_id == program_id,
                t.ledger.c.kind == "earn",
                t.ledger.c.order_id.in_([o.id for o in paid]),
                t.ledger.c.member_id.in_([r.id for r in rows.values()]),
            )
        )
    )
    return [o for o in paid if o.id not in done]


@attrs.define
class _Walk:
    """What walking the paid orders in time order found."""

    #: the ledger rows to post: each order's earn rows, then its claw-back row if any
    ledger: list[dict[str, Any]]
    #: customer id -> the member's ``orders_count`` and ``clawback_due`` after the walk
    state: dict[int, dict[str, int]]
    #: (member row, order): referred members' first earning order
    first_orders: list[tuple[Any, Order]]
    #: customer id -> the time of the member's last order walked
    last_time: dict[int, dt.datetime]


def _walk_orders(prog: Program, paid: list[Order], rows: Mapping[int, Any]) -> _Walk:
    """Each member's orders through the program's rules, in time order (order counts and
    claw-backs carry from one order to the next)."""
    state = {
        cid: {"orders_count": r.orders_count, "clawback_due": int(r.clawback_due)}
        for cid, r in rows.items()
    }
    walk = _Walk([], state, [], {})
    append, last_time = walk.ledger.append, walk.last_time
    order_points, expires_at = prog.order_points, prog.expires_at
    for order in sorted(paid, key=lambda o: (o.occurred_at, o.id)):
        cid = order.customer_id
        row = rows.get(cid)
        if row is None:
            continue
        st = state[cid]
        count = st["orders_count"]
        view = MemberView(row.id, cid, row.tier, count, row.enrolled_at)
        earned = order_points(order, view)
        st["orders_count"] = count + 1
        if count == 0 and row.referred_by is not None:
            walk.first_orders.append((row, order))
        when = order.occurred_at
        last_time[cid] = when
        expires = expires_at(when)
        total = 0
        for rule, points in earned:
            total += points
            append(
                {
                    "member_id": row.id,
                    "kind": "earn",
                    "points": points,
                    "occurred_at": when,
                    "expires_at": expires,
                    "order_id": order.id,
                    "rule": rule,  # (order, kind, member, rule) is unique: earned once
                }
            )
        if st["clawback_due"] and total:
            take = min(total, st["clawback_due"])
            st["clawback_due"] -= take
            append(
                {
                    "member_id": row.id,
                    "kind": "reverse",
                    "points": -take,
                    "occurred_at": order.occurred_at,
                    "expires_at": expires,
                    "order_id": order.id,
                    "rule": "clawback",
                    "reason": "claw back of points spent before their order was refunded",
                }
            )
    return walk


def _referral_rows(
    connection: Any,
    program_id: int,
    prog: Program,
    referral: FixedBonusRule,
    first_orders: list[tuple[Any, Order]],
    customers: dict[int, int],
) -> list[dict[str, Any]]:
    """The referral bonuses referred members' first orders earn: the referrer's (adding
    them to ``customers``, member id -> customer id) and the referred member's."""
    referrers = {
        r.customer_id: r
        for r in connection.execute(
            select(t.members).where(
                t.members.c.program_id == program_id,
                t.members.c.customer_id.in_({row.referred_by for row, _ in first_orders}),
            )
        )
    }
    out: list[dict[str, Any]] = []
    for row, order in first_orders:
        referrer = referrers.get(row.referred_by)
        expires = prog.expires_at(order.occurred_at)
        if referrer is not None and referral.points:
            customers[referrer.id] = referrer.customer_id
            out.append(
                {
                    "member_id": referrer.id,
                    "kind": "earn",
                    "points": referral.points,
                    "occurred_at": order.occurred_at,
                    "expires_at": expires,
                    "order_id": order.id,
                    "rule": referral.name,
                    "reason": f"referred customer {row.customer_id} paid a first order",
                    "idem_key": f"referral:{row.id}",
                }
            )
        if referral.referee_points:
            out.append(
                {
                    "member_id": row.id,
                    "kind": "earn",
                    "points": referral.referee_points,
                    "occurred_at": order.occurred_at,
                    "expires_at": expires,
                    "order_id": order.id,
                    "rule": referral.name,
                    "reason": f"referred by customer {row.referred_by}",
                    "idem_key": f"referred:{row.id}",
                }
            )
    return out


def earn_existing(
    lc: LoyaltyContext, *, program: str | None = None, customer_ids: Iterable[int] | None = None
) -> int:
    ids = None if customer_ids is None else sorted(set(customer_ids))
    with lc.crm.reading() as connection:
        program_id, prog = lc.resolve(connection, program)
        query = select(ck.orders.c.id).where(ck.orders.c.status == "paid")
        if ids is not None:
            query = query.where(ck.orders.c.customer_id.in_(ids))
        order_ids = list(connection.scalars(query.order_by(ck.orders.c.id)))
    for start in range(0, len(order_ids), CHUNK):
        chunk = order_ids[start : start + CHUNK]
        with lc.crm.transaction() as ctx:  # read in the transaction, once
            paid = functools.cache(functools.partial(lc.crm.orders.get_many, chunk))
            earn_program(lc, ctx, program_id, prog, paid, replay=True)
    return len(order_ids)


def award_birthdays(
    lc: LoyaltyContext, as_of: dt.date | str, *, program: str | None = None
) -> list[LedgerEntry]:
    day = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(as_of)
    when = end_of_day(day)
    with lc.crm.transaction(now=when) as ctx:
        program_id, prog = lc.resolve(ctx.connection, program)
        rule = prog.fixed("birthday")
        if rule is None or not rule.points:
            return []
        rows = ctx.connection.execute(
            select(t.members.c.id, t.members.c.customer_id, ck.customers.c.birth_date)
            .join(ck.customers, ck.customers.c.id == t.members.c.customer_id)
            .where(t.members.c.program_id == program_id, ck.customers.c.birth_date.is_not(None))
        ).all()
        due = [r for r in rows if r.birth_date.month == day.month]
        keys = {f"birthday:{r.id}:{day.year}": r for r in due}
        done = set(
            ctx.connection.scalars(
                select(t.ledger.c.idem_key).where(
                    t.ledger.c.program_id == program_id, t.ledger.c.idem_key.in_(list(keys))
                )
            )
        ) if keys else set()  # fmt: skip
        out = [
            {
                "member_id": r.id,
                "kind": "earn",
                "points": rule.points,
                "occurred_at": when,
                "expires_at": prog.expires_at(when),
                "rule": rule.name,
                "idem_key": key,
            }
            for key, r in keys.items()
            if key not in done
        ]
        entries = post(ctx, program_id, prog, out, {r.id: r.customer_id for r in due})
        lc.fire(ctx, "crmkit_loyalty_after_points_earned", entries=entries)
        return entries
