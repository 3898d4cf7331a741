"""A member's personal data: the export and the erasure.

Personal columns are marked ``info={"personal": True}`` in :mod:`crmkit_loyalty.tables`:

* ``loyalty_members.referred_by`` — who referred the member links two people;
* ``loyalty_ledger.reason`` — free text about the person: a staff member's reason for
  an adjustment ("sorry about the broken kettle"), who referred whom ("referred by
  customer 12", "referred customer 34 paid a first order").

Not personal (kept by an erasure): figures (balances, points, tiers, dates, order
counts), rule names, reward codes and ``loyalty_ledger.staff`` (who on the staff made
an entry: the staff member's name, not the customer's).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update

from crmkit_loyalty import tables as t
from crmkit_loyalty.records import cause

#: what an erased free-text reason reads
ERASED = "(erased)"


def export(connection: Any, customer_id: int) -> dict[str, Any] | None:
    """Every membership with its ledger (each entry's reason included), who referred the
    member and how many members the customer referred; None when not a member anywhere."""
    m = t.members
    rows = connection.execute(
        select(m, t.programs.c.name.label("program_name"))
        .join(t.programs, t.programs.c.id == m.c.program_id)
        .where(m.c.customer_id == customer_id)
        .order_by(t.programs.c.name)
    ).all()
    if not rows:
        return None
    referred = dict(
        connection.execute(
            select(m.c.program_id, func.count()).where(m.c.referred_by == customer_id)
            .group_by(m.c.program_id)
        ).all()
    )  # fmt: skip
    result = []
    for r in rows:
        entries = connection.execute(
            select(t.ledger).where(t.ledger.c.member_id == r.id).order_by(t.ledger.c.id)
        ).all()
        result.append(
            {
                "program": r.program_name,
                "tier": r.tier,
                "balance": int(r.balance),
                "enrolled_at": r.enrolled_at,
                "referred_by": r.referred_by,
                "members_referred": int(referred.get(r.program_id, 0)),
                "ledger": [
                    {
                        "kind": e.kind,
                        "points": int(e.points),
                        "occurred_at": e.occurred_at,
                        "cause": cause(e),
                        "reason": e.reason,
                    }
                    for e in entries
                ],
            }
        )
    return {"memberships": result}


def erase(connection: Any, customer_id: int) -> int:
    """Remove the customer's personal loyalty data; figures stay. Idempotent (a re-run
    changes nothing more). Returns the rows changed.

    The member's ledger reasons become ``(erased)``; so do the reasons in other members'
    ledgers that name them (the referrer's "referred customer N paid a first order", the
    referred members' "referred by customer N"); who referred them, and whom they
    referred, is forgotten (``referred_by`` NULL both ways).
    """
    m, ledger = t.members, t.ledger
    own = list(connection.scalars(select(m.c.id).where(m.c.customer_id == customer_id)))
    referees = list(connection.scalars(select(m.c.id).where(m.c.referred_by == customer_id)))
    keys = [f"referral:{member_id}" for member_id in own]
    keys += [f"referred:{member_id}" for member_id in referees]
    naming = [ledger.c.member_id.in_(own)] if own else []
    if keys:
        naming.append(ledger.c.idem_key.in_(keys))
    changed = 0
    if naming:
        changed += connection.execute(
            update(ledger)
            .where(or_(*naming), ledger.c.reason.is_not(None), ledger.c.reason != ERASED)
            .values(reason=ERASED)
        ).rowcount
    changed += connection.execute(
        update(m)
        .where(
            or_(m.c.customer_id == customer_id, m.c.referred_by == customer_id),
            m.c.referred_by.is_not(None),
        )
        .values(referred_by=None)
    ).rowcount
    return changed
