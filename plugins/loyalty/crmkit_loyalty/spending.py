"""Spending and correcting points: redemptions and staff adjustments.

Both lock the member row first and check the balance inside the transaction.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from crmkit.plugin import Conflict, NotFound, ValidationError
from crmkit_loyalty import tables as t
from crmkit_loyalty.ledger import post
from crmkit_loyalty.membership import member_row
from crmkit_loyalty.records import LedgerEntry

if TYPE_CHECKING:
    from crmkit_loyalty.context import LoyaltyContext

#: the most points one manual adjustment may grant or take (a typo guard; the ledger's
#: BIGINT could not hold a balance moved by anything near 2**63 either)
MAX_ADJUSTMENT = 1_000_000_000


def redeem(
    lc: LoyaltyContext,
    customer_id: int,
    reward: str,
    *,
    program: str | None = None,
    quantity: int = 1,
    actor: str | None = None,
    at: dt.datetime | None = None,
) -> LedgerEntry:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValidationError(
            f"quantity must be a whole number >= 1, not {quantity!r}", field="quantity"
        )
    with lc.crm.transaction(actor=actor, now=at) as ctx:
        connection = ctx.connection
        program_id, prog = lc.resolve(connection, program)
        lc.crm.customers.require_writable(customer_id)  # erased or merged: Conflict
        member = member_row(connection, program_id, prog, customer_id, lock=True)
        row = connection.execute(
            select(t.rewards)
            .where(t.rewards.c.program_id == program_id, t.rewards.c.code == reward)
            .with_for_update()
        ).first()
        if row is None or not row.active:
            codes = connection.scalars(
                select(t.rewards.c.code).where(
                    t.rewards.c.program_id == program_id, t.rewards.c.active.is_(True)
                )
            )
            raise NotFound(
                f"reward {reward!r} is not in the catalogue of {prog.name!r}; available: "
                f"{', '.join(codes) or '(none)'}"
            )
        today = ctx.now.date()
        if row.valid_from and today < row.valid_from:
            raise ValidationError(
                f"reward {reward!r} can be redeemed from {row.valid_from} only", field="reward"
            )
        if row.valid_until and today > row.valid_until:
            raise ValidationError(
                f"reward {reward!r} expired on {row.valid_until}; choose another reward",
                field="reward",
            )
        if row.stock is not None and row.redeemed + quantity > row.stock:
            raise Conflict(
                f"reward {reward!r} is out of stock ({max(row.stock - row.redeemed, 0)} left)"
            )
        cost = row.points * quantity
        if int(member.balance) < cost:
            raise ValidationError(
                f"customer {customer_id} has {int(member.balance)} points in {prog.name!r}; "
                f"{quantity} x {reward!r} costs {cost}",
                field="points",
            )
        connection.execute(
            update(t.rewards)
            .where(t.rewards.c.id == row.id)
            .values(redeemed=t.rewards.c.redeemed + quantity)
        )
        (entry,) = post(
            ctx,
            program_id,
            prog,
            [
                {
                    "member_id": member.id,
                    "kind": "redeem",
                    "points": -cost,
                    "reward_code": reward,
                    "staff": ctx.actor.label,
                    "reason": f"{quantity} x {row.title}",
                }
            ],
            {member.id: customer_id},
        )
        lc.fire(ctx, "crmkit_loyalty_after_points_redeemed", entries=[entry])
        ctx.audit(
            "loyalty.redeem",
            "member",
            member.id,
            customer_id=customer_id,
            before={"balance": int(member.balance)},
            after={
                "balance": int(member.balance) - cost,
                "reward": reward,
                "quantity": quantity,
                "points": -cost,
                "program": prog.name,
            },
        )
        return entry


def adjust(
    lc: LoyaltyContext,
    customer_id: int,
    points: int,
    *,
    reason: str,
    staff: str | None = None,
    program: str | None = None,
    at: dt.datetime | None = None,
) -> LedgerEntry:
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise ValidationError(
            f"points must be a non-zero whole number, not {points!r}", field="points"
        )
    if abs(points) > MAX_ADJUSTMENT:
        raise ValidationError(
            f"an adjustment moves at most {MAX_ADJUSTMENT:,} points, not {points:,}",
            field="points",
        )
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("an adjustment needs a reason (--reason TEXT)", field="reason")
    if staff is not None and (not isinstance(staff, str) or not staff.strip()):
        raise ValidationError("--staff must name a staff member (a username)", field="staff")
    with lc.crm.transaction(actor=staff.strip() if staff else None, now=at) as ctx:
        program_id, prog = lc.resolve(ctx.connection, program)
        lc.crm.customers.require_writable(customer_id)  # erased or merged: Conflict
        member = member_row(ctx.connection, program_id, prog, customer_id, lock=True)
        # a correction may always raise a balance (even one still below zero after it)
        if points < 0 and int(member.balance) + points < 0:
            raise ValidationError(
                f"customer {customer_id} has {int(member.balance)} points in {prog.name!r}; "
                f"an adjustment of {points} would make the balance negative",
                field="points",
            )
        (entry,) = post(
            ctx,
            program_id,
            prog,
            [
                {
                    "member_id": member.id,
                    "kind": "adjust",
                    "points": points,
                    "expires_at": prog.expires_at(ctx.now) if points > 0 else None,
                    "rule": "manual",
                    "staff": ctx.actor.label,
                    "reason": reason.strip(),
                }
            ],
            {member.id: customer_id},
        )
        ctx.audit(
            "loyalty.adjust",
            "member",
            member.id,
            customer_id=customer_id,
            before={"balance": int(member.balance)},
            after={
                "balance": int(member.balance) + points,
                "points": points,
                "reason": reason.strip(),
                "program": prog.name,
            },
        )
        return entry
