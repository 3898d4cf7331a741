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
from sqlalchemy import func, null, or_, select

import crmkit.plugin as ck
from crmkit.plugin import Order, StoredOrders
from crmkit_loyalty import bounds, deferred, pending, setbased
from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.ledger import CHUNK, audit_since, end_of_day, mark, post
from crmkit_loyalty.membership import enrol_rows
from crmkit_loyalty.program import Program
from crmkit_loyalty.records import LedgerEntry, TierChange, entry_from_row
from crmkit_loyalty.rules import FixedBonusRule, MemberView
from crmkit_loyalty.tiers import Qualifying, apply_tier_changes

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
    chunked: bool = False,
) -> None:
    """``set_based=False``: earn order by order only (see :func:`earn_program`).
    ``chunked``: the batches an import kept, earning together (:mod:`crmkit_loyalty.deferred`)."""
    # the paid orders, filtered once and only when read: an import's batch (StoredOrders)
    # is in the database with no lines, UTC times and at most 4 decimals, and the
    # set-based path reads it there without building its entities
    paid = functools.cache(lambda: _paid(orders))
    imported = False
    batch: list[int] | None = None
    if not replay and isinstance(orders, StoredOrders):
        if set_based and not chunked:  # an import's batch: kept until a chunk is full
            if not deferred.keep(lc, ctx, orders):
                deferred.run(lc, ctx)
            return
        imported, batch = True, list(orders.ids)
    elif not paid():
        return
    elif not replay:  # new orders (the event path) may earn set-based: all are in the table
        batch = [o.id for o in orders if o.id is not None]
    if not set_based:
        batch = None  # no batch: no set-based path
    if not imported:
        # the batches an import keeps earn first (orders earn in the order they were
        # stored); only an import's batches leave counters pending: the rest reads them
        deferred.run(lc, ctx)
        pending.flush(ctx.connection)
    programs = lc.programs(ctx.connection)
    if not programs:
        return
    if not imported and not replay and len(paid()) == 1:
        # one new order: the one check for writes about a customer (erased or merged:
        # Conflict, the order is not stored); batches skip such customers' orders instead
        lc.crm.customers.require_writable(paid()[0].customer_id)
    before = mark(ctx.connection)
    for program_id, prog in programs:
        earn_program(lc, ctx, program_id, prog, paid, replay=replay, batch=batch, imported=imported)
    # part of the core's write (an order added, paid or imported): one entry per batch
    orders_seen = len(batch) if batch is not None else len(paid())
    audit_since(ctx, "loyalty.earn", "orders", None, before, orders=orders_seen)


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
        entries, changes = earn_set_based(lc, ctx, program_id, prog, plan, paid, batch, imported)
        unread = upgrades_unread(lc, prog)
    elif paid():
        entries, changes = earn_rows(lc, ctx, program_id, prog, paid(), replay=replay)
        unread = False
    else:
        return
    lc.fire(
        ctx, "crmkit_loyalty_after_points_earned", entries=[e for e in entries if e.kind == "earn"]
    )
    apply_tier_changes(lc, ctx, changes)
    if unread:
        setbased.write_upgrades(ctx.connection, prog, plan)


def upgrades_unread(lc: LoyaltyContext, prog: Program) -> bool:
    """Whether the set-based path's upgrades (spend or orders measure) go to the database
    in SQL (:func:`crmkit_loyalty.setbased.write_upgrades`): no one receives them, nor the
    points earned before them (no listener between the batch and its upgrades, which
    could read the members' tiers or earn on another batch in the scratch table)."""
    return (
        bool(prog.tiers)
        and prog.measure != "points"
        and not lc.listened("crmkit_loyalty_after_tiers_changed")
        and not lc.listened("crmkit_loyalty_after_points_earned")
    )


def earn_set_based(
    lc: LoyaltyContext,
    ctx: HookContext,
    program_id: int,
    prog: Program,
    plan: setbased.Plan,
    paid: Callable[[], list[Order]],
    batch: list[int],
    imported: bool = False,
) -> tuple[list[LedgerEntry], list[TierChange]]:
    """Earn in SQL; members needing sequential handling go through :func:`earn_rows`. An
    import's batch leaves its members' counters pending (:mod:`crmkit_loyalty.pending`)."""
    connection = ctx.connection
    o, m = ck.orders.c, t.members.c
    in_batch = setbased.batch_filter(o.id, batch)
    if prog.auto_enrol:
        # a customer's first paid order (the first stored) makes them a member, as of then
        member = select(m.id).where(m.program_id == program_id, m.customer_id == o.customer_id)
        firsts = (
            select(func.min(o.id))
            .where(in_batch, o.status == "paid", ~member.exists(),
                   o.customer_id.not_in(setbased.gone_customers()))
            .group_by(o.customer_id)
        )  # fmt: skip
        first = dict(
            connection.execute(select(o.customer_id, o.occurred_at).where(o.id.in_(firsts))).all()
        )
        if first:
            enrol_rows(lc, ctx, program_id, prog, sorted(first), {}, first)
    if not setbased.fill(connection, program_id, prog, plan, in_batch):
        return [], []
    # members with points to claw back, or a referral bonus on this first order, earn
    # order by order (before the set-based rows, so those are the rows after `before`);
    # then, with a points measure, those whose tier moves up within the batch
    entries: list[LedgerEntry] = []
    changes: list[TierChange] = []
    for step in ("sequential", "rising"):
        if step == "sequential":
            slow = setbased.take_sequential(connection, plan)
        elif prog.tiers and prog.measure == "points":
            slow = setbased.take(connection, plan, setbased.rising(connection, prog, plan))
        else:
            break
        if slow:
            slow_orders = [order for order in paid() if order.customer_id in slow]
            more, moved = earn_rows(lc, ctx, program_id, prog, slow_orders, replay=False)
            entries += more
            changes += moved
    before = connection.scalar(select(func.max(t.ledger.c.id))) or 0
    setbased.write_ledger(connection, program_id, plan, ctx.now, ctx if imported else None)
    if lc.listened("crmkit_loyalty_after_points_earned"):
        ledger_batch = setbased.batch_filter(t.ledger.c.order_id, batch)
        for row in setbased.new_entries(connection, program_id, before, ledger_batch):
            entries.append(entry_from_row(row, prog.name))
    if prog.tiers and prog.measure != "points" and not upgrades_unread(lc, prog):
        changes += setbased.upgrades(connection, prog, plan)
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
    connection = ctx.connection
    # these members' counters are read and set below: what an import's earlier batches
    # left pending for them is written first
    pending.flush(connection, {o.customer_id for o in paid})
    gone = _gone(connection, {o.customer_id for o in paid})
    if gone:
        paid = [o for o in paid if o.customer_id not in gone]
    rows = _locked_members(lc, ctx, program_id, prog, paid)
    if not rows:
        return [], []
    if replay:
        paid = _not_earned_yet(connection, program_id, paid, rows)
    paid = sorted((o for o in paid if o.customer_id in rows), key=lambda o: o.id)
    referral = prog.fixed("referral")
    referrers = _referrers(connection, program_id, rows) if referral else {}
    qualifying = Qualifying(connection, prog, rows, paid) if prog.tiers else None
    walk = _walk_orders(prog, paid, rows, referrers, qualifying)
    customers = {r.id: cid for cid, r in rows.items()}
    customers.update({r.id: r.customer_id for r in referrers.values()})
    extra = {rows[cid].id: walk.state[cid] for cid in walk.walked}
    listened = lc.listened("crmkit_loyalty_after_points_earned")
    entries = post(ctx, program_id, prog, walk.ledger, customers, extra, entries=listened)
    # these orders are paid now (new, taken out of a set-based batch, or paid later): the
    # members' spend bounds count them (replayed orders counted already write nothing)
    bounds.raise_members(connection, [rows[cid].id for cid in walk.walked])
    return entries, walk.changes


def _gone(connection: Any, customer_ids: set[int]) -> set[int]:
    """Which of these customers take no new points (erased, or merged into another): one
    query for the batch."""
    if not customer_ids:
        return set()
    c = ck.customers.c
    return set(
        connection.scalars(
            select(c.id).where(
                c.id.in_(sorted(customer_ids)),
                or_(c.erased_at.is_not(None), c.merged_into.is_not(None)),
            )
        )
    )


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
    """customer id -> the time of their first order in ``paid`` (the first stored: the
    lowest id), for customers not members."""
    first_order: dict[int, Order] = {}
    for o in paid:
        if o.customer_id not in members:
            seen = first_order.get(o.customer_id)
            if seen is None or o.id < seen.id:
                first_order[o.customer_id] = o
    return {cid: o.occurred_at for cid, o in first_order.items()}


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


def _referrers(connection: Any, program_id: int, rows: Mapping[int, Any]) -> dict[int, Any]:
    """customer id -> member row of the referrers of members yet to earn their first order."""
    wanted = {r.referred_by for r in rows.values() if r.orders_count == 0 and r.referred_by}
    if not wanted:
        return {}
    return {
        r.customer_id: r
        for r in connection.execute(
            select(t.members.c.id, t.members.c.customer_id).where(
                t.members.c.program_id == program_id, t.members.c.customer_id.in_(sorted(wanted))
            )
        )
    }


@attrs.define
class _Walk:
    """What walking the paid orders in the order they were stored found."""

    #: the ledger rows to post: each order's earn rows, its claw-back and referral rows
    ledger: list[dict[str, Any]]
    #: customer id -> the member's ``orders_count``, ``clawback_due`` and tier in the walk
    state: dict[int, dict[str, Any]]
    #: the customers whose orders were walked
    walked: set[int] = attrs.field(factory=set)
    #: the upgrades the orders triggered, in order
    changes: list[TierChange] = attrs.field(factory=list)


def _walk_orders(
    prog: Program,
    paid: list[Order],
    rows: Mapping[int, Any],
    referrers: Mapping[int, Any],
    qualifying: Qualifying | None,
) -> _Walk:
    """Each member's orders through the program's rules, one at a time in the order they
    were stored (``paid`` is sorted by id): order counts, claw-backs and the tier carry
    from one order to the next; an order whose measure meets a higher tier moves the
    member up from the next order on."""
    state = {
        cid: {"orders_count": r.orders_count, "clawback_due": int(r.clawback_due), "tier": r.tier}
        for cid, r in rows.items()
    }
    walk = _Walk([], state)
    top = prog.tiers[-1].name if prog.tiers else None
    for order in paid:
        cid = order.customer_id
        row, st = rows[cid], state[cid]
        walk.walked.add(cid)
        added = _earn_one(prog, order, row, st, referrers)
        walk.ledger += added
        if qualifying is None:
            continue
        for entry in added:  # the referrer's bonus counts for the referrer
            qualifying.add(entry["member_id"], entry["occurred_at"], entry["points"])
        if st["tier"] == top:
            continue
        measure = qualifying.measure(row.id, order)
        new = prog.tier_for(measure)
        if prog.rank(new) > prog.rank(st["tier"]):
            walk.changes.append(
                TierChange(
                    row.id, cid, prog.name, st["tier"], new, order.occurred_at, "upgrade", measure
                )
            )
            st["tier"] = new
    return walk


def _earn_one(
    prog: Program, order: Order, row: Any, st: dict[str, Any], referrers: Mapping[int, Any]
) -> list[dict[str, Any]]:
    """The ledger rows one order writes (its rules, a claw-back, referral bonuses); moves
    the member's order count and claw-back due in ``st``."""
    count = st["orders_count"]
    view = MemberView(row.id, order.customer_id, st["tier"], count, row.enrolled_at)
    earned = prog.order_points(order, view)
    st["orders_count"] = count + 1
    when = order.occurred_at
    expires = prog.expires_at(when)
    out = [
        {
            "member_id": row.id,
            "kind": "earn",
            "points": points,
            "occurred_at": when,
            "expires_at": expires,
            "order_id": order.id,
            "rule": rule,  # (order, kind, member, rule) is unique: earned once
        }
        for rule, points in earned
    ]
    total = sum(points for _, points in earned)
    if st["clawback_due"] and total:
        take = min(total, st["clawback_due"])
        st["clawback_due"] -= take
        out.append(
            {
                "member_id": row.id,
                "kind": "reverse",
                "points": -take,
                "occurred_at": when,
                "expires_at": expires,
                "order_id": order.id,
                "rule": "clawback",
                "reason": "claw back of points spent before their order was refunded",
            }
        )
    referral = prog.fixed("referral")
    if count == 0 and row.referred_by is not None and referral is not None:
        out += _referral_rows(prog, referral, order, row, referrers.get(row.referred_by))
    return out


def _referral_rows(
    prog: Program, referral: FixedBonusRule, order: Order, row: Any, referrer: Any
) -> list[dict[str, Any]]:
    """The referral bonuses a referred member's first order earns: the referrer's (if a
    member) and the referred member's."""
    expires = prog.expires_at(order.occurred_at)
    out: list[dict[str, Any]] = []
    if referrer is not None and referral.points:
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
            before = mark(ctx.connection)
            paid = functools.cache(functools.partial(lc.crm.orders.get_many, chunk))
            earn_program(lc, ctx, program_id, prog, paid, replay=True)
            audit_since(ctx, "loyalty.earn", "program", prog.name, before, orders=len(chunk))
    return len(order_ids)


def earn_for_customer(
    lc: LoyaltyContext, customer_id: int, *, order_id: int | None = None, program: str | None = None
) -> list[LedgerEntry]:
    with lc.crm.transaction() as ctx:
        connection = ctx.connection
        program_id, prog = lc.resolve(connection, program)
        lc.crm.customers.require_writable(customer_id)  # erased or merged: Conflict
        query = select(ck.orders.c.id, ck.orders.c.customer_id, ck.orders.c.status).where(
            ck.orders.c.customer_id == customer_id
        )
        if order_id is not None:
            query = select(ck.orders.c.id, ck.orders.c.customer_id, ck.orders.c.status).where(
                ck.orders.c.id == order_id
            )
        rows = connection.execute(query.order_by(ck.orders.c.id)).all()
        if order_id is not None:
            if not rows or rows[0].customer_id != customer_id:
                raise ck.NotFound(f"customer {customer_id} has no order {order_id}")
            if rows[0].status != "paid":
                raise ck.ValidationError(
                    f"order {order_id} is {rows[0].status}; only paid orders earn points",
                    field="order_id",
                )
        ids = [r.id for r in rows if r.status == "paid"]
        before = mark(connection)
        if ids:
            paid = functools.cache(functools.partial(lc.crm.orders.get_many, ids))
            earn_program(lc, ctx, program_id, prog, paid, replay=True)
        audit_since(ctx, "loyalty.earn", "customer", customer_id, before, orders=len(ids))
        return [
            entry_from_row(row, prog.name)
            for row in connection.execute(
                select(t.ledger, t.members.c.customer_id)
                .join(t.members, t.members.c.id == t.ledger.c.member_id)
                .where(t.ledger.c.id > before)
                .order_by(t.ledger.c.id)
            )
        ]


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
        if entries:
            audit_batch(
                ctx,
                "loyalty.birthdays",
                "program",
                prog.name,
                counts={"members": len(entries), "points": sum(e.points for e in entries)},
            )
        return entries
