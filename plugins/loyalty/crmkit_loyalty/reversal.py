"""Taking back the points of refunded or cancelled orders (with claw-backs).

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from crmkit.plugin import Order
from crmkit_loyalty import tables as t
from crmkit_loyalty.expiry import expired_of_lot
from crmkit_loyalty.ledger import audit_since, mark, post

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


def reverse_orders(lc: LoyaltyContext, ctx: HookContext, orders: Sequence[Order]) -> None:
    ids = [o.id for o in orders if o.id is not None]
    before = mark(ctx.connection) if ids else 0
    if reverse_ids(lc, ctx, ids):
        # part of the core's write (the orders refunded or cancelled): one entry per batch
        audit_since(ctx, "loyalty.reverse", "orders", None, before, orders=len(ids))


def reverse_ids(lc: LoyaltyContext, ctx: HookContext, ids: Sequence[int]) -> int:
    """Reverse what these (refunded or cancelled) orders earned, once per order and member:
    a member whose ledger already has the order's ``refund`` reversal is skipped (also
    after a merge moved both rows to another member). Returns the reversals written."""
    if not ids:
        return 0
    connection = ctx.connection
    earned = connection.execute(
        select(
            t.ledger.c.program_id,
            t.ledger.c.member_id,
            t.ledger.c.order_id,
            func.sum(t.ledger.c.points).label("points"),
            func.max(t.ledger.c.expires_at).label("expires_at"),
        )
        .where(t.ledger.c.order_id.in_(ids), t.ledger.c.kind == "earn")
        .group_by(t.ledger.c.program_id, t.ledger.c.member_id, t.ledger.c.order_id)
        .order_by(t.ledger.c.program_id, t.ledger.c.member_id, t.ledger.c.order_id)
    ).all()
    if not earned:
        return 0
    done = {
        (r.order_id, r.member_id)
        for r in connection.execute(
            select(t.ledger.c.order_id, t.ledger.c.member_id).where(
                t.ledger.c.order_id.in_(ids),
                t.ledger.c.kind == "reverse",
                t.ledger.c.rule == "refund",
            )
        )
    }
    by_program: dict[int, list[Any]] = defaultdict(list)
    for e in earned:
        if (e.order_id, e.member_id) not in done:
            by_program[e.program_id].append(e)
    programs = dict(lc.programs(connection, enabled_only=False))
    for program_id, items in by_program.items():
        prog = programs[program_id]
        member_rows = {
            r.id: r
            for r in connection.execute(
                select(t.members)
                .where(t.members.c.id.in_({e.member_id for e in items}))
                .with_for_update()
            )
        }
        balance = {mid: int(r.balance) for mid, r in member_rows.items()}
        due = {mid: int(r.clawback_due) for mid, r in member_rows.items()}
        out = []
        for e in items:
            points = int(e.points)
            reason = "order refunded or cancelled"
            if e.expires_at is not None and e.expires_at <= ctx.now:
                # points that expired are gone already: never take them a second time
                expired = min(points, expired_of_lot(connection, e.member_id, e.expires_at))
                if expired > 0:
                    points -= expired
                    reason += f"; {expired} points had already expired"
            take = points
            if prog.reversal_policy == "clawback" and points > balance[e.member_id]:
                take = max(balance[e.member_id], 0)
                due[e.member_id] += points - take
                reason += (
                    f"; {points - take} points already spent, clawed back from future earnings"
                )
            balance[e.member_id] -= take
            out.append(
                {
                    "member_id": e.member_id,
                    "kind": "reverse",
                    "points": -take,
                    "occurred_at": ctx.now,
                    "expires_at": e.expires_at,
                    "order_id": e.order_id,
                    "rule": "refund",
                    "reason": reason,
                    "idem_key": f"reverse:order:{e.order_id}:{e.member_id}",
                }
            )
        post(
            ctx,
            program_id,
            prog,
            out,
            {mid: r.customer_id for mid, r in member_rows.items()},
            {mid: {"clawback_due": due[mid]} for mid in member_rows},
        )
    return sum(len(items) for items in by_program.values())
