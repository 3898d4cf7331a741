"""Read-outs: member statement, ledger consistency and liability (the personal-data export is
in :mod:`crmkit_loyalty.privacy`).

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

import crmkit.plugin as ck
from crmkit_loyalty import tables as t
from crmkit_loyalty.membership import member_row
from crmkit_loyalty.records import cause

if TYPE_CHECKING:
    from crmkit_loyalty.context import LoyaltyContext


def statement(
    lc: LoyaltyContext, customer_id: int, *, program: str | None = None
) -> dict[str, Any]:
    with lc.crm.reading() as connection:
        program_id, prog = lc.resolve(connection, program)
        row = member_row(connection, program_id, prog, customer_id, lock=False)
        customer = connection.execute(
            select(ck.customers.c.name).where(ck.customers.c.id == customer_id)
        ).first()
        entries = []
        running = 0
        for e in connection.execute(
            select(t.ledger).where(t.ledger.c.member_id == row.id).order_by(t.ledger.c.id)
        ):
            running += int(e.points)
            entries.append(
                {
                    "id": e.id,
                    "occurred_at": e.occurred_at,
                    "kind": e.kind,
                    "points": int(e.points),
                    "balance": running,
                    "cause": cause(e),
                    "expires_at": e.expires_at,
                }
            )
    tier = prog.tier(row.tier)
    return {
        "program": prog.name,
        "program_title": prog.title,
        "customer_id": customer_id,
        "customer_name": customer.name if customer else "",
        "tier": row.tier,
        "tier_title": (tier.title or tier.name) if tier else None,
        "discount": tier.discount if tier else Decimal(0),
        "balance": int(row.balance),
        "value": (Decimal(int(row.balance)) * prog.point_value).quantize(Decimal("0.01")),
        "entries": entries,
    }


def ledger_sums(lc: LoyaltyContext, *, program: str | None = None) -> dict[int, tuple[int, int]]:
    with lc.crm.reading() as connection:
        program_id, _ = lc.resolve(connection, program)
        sums = dict(
            connection.execute(
                select(t.ledger.c.member_id, func.sum(t.ledger.c.points))
                .where(t.ledger.c.program_id == program_id)
                .group_by(t.ledger.c.member_id)
            ).all()
        )
        return {
            r.customer_id: (int(r.balance), int(sums.get(r.id) or 0))
            for r in connection.execute(
                select(t.members).where(t.members.c.program_id == program_id)
            )
        }


def liability(lc: LoyaltyContext, *, program: str | None = None) -> list[dict[str, Any]]:
    with lc.crm.reading() as connection:
        targets = (
            [lc.resolve(connection, program)]
            if program
            else lc.programs(connection, enabled_only=False)
        )
        result = []
        for program_id, prog in targets:
            rows = {
                r.tier: r
                for r in connection.execute(
                    select(
                        t.members.c.tier,
                        func.count().label("members"),
                        func.sum(
                            case((t.members.c.balance > 0, t.members.c.balance), else_=0)
                        ).label("points"),
                    )
                    .where(t.members.c.program_id == program_id)
                    .group_by(t.members.c.tier)
                )
            }
            names = [tier.name for tier in prog.tiers] + sorted(
                (k for k in rows if prog.tier(k) is None), key=str
            )
            for name in names:
                r = rows.get(name)
                points = int(r.points or 0) if r else 0
                result.append(
                    {
                        "program": prog.name,
                        "tier": name,
                        "members": r.members if r else 0,
                        "points": points,
                        "point_value": prog.point_value,
                        "value": (Decimal(points) * prog.point_value).quantize(Decimal("0.01")),
                    }
                )
        return result
