"""Points expiry: lots expire oldest first (FIFO), once per as-of date.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, select

from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.ledger import end_of_day, post
from crmkit_loyalty.membership import member_row
from crmkit_loyalty.program import add_months
from crmkit_loyalty.records import LedgerEntry

if TYPE_CHECKING:
    from crmkit_loyalty.context import LoyaltyContext


def expirable(program_id: int, as_of: dt.datetime, member_ids: Sequence[int] | None = None) -> Any:
    """Per member: points of lots expired by ``as_of`` not yet consumed (oldest first).

    Entries with ``expires_at`` add to (earn, positive adjust) or cut (reverse,
    clawback) a lot; every other entry (redeem, expire, negative adjust) is a
    debit consuming the oldest lots first. What expired and is not consumed is
    ``expired lots - debits``, capped by the balance.
    """
    lots = func.sum(
        case(
            (
                and_(t.ledger.c.expires_at.is_not(None), t.ledger.c.expires_at <= as_of),
                t.ledger.c.points,
            ),
            else_=0,
        )
    )
    debits = func.sum(case((t.ledger.c.expires_at.is_(None), -t.ledger.c.points), else_=0))
    query = (
        select(t.ledger.c.member_id, lots.label("lots"), debits.label("debits"))
        .where(t.ledger.c.program_id == program_id)
        .group_by(t.ledger.c.member_id)
    )
    if member_ids is not None:
        query = query.where(t.ledger.c.member_id.in_(list(member_ids)))
    return query


def expire(
    lc: LoyaltyContext, as_of: dt.date | dt.datetime | str, *, program: str | None = None
) -> list[LedgerEntry]:
    when = end_of_day(as_of)
    entries: list[LedgerEntry] = []
    with lc.crm.transaction(now=when) as ctx:
        connection = ctx.connection
        targets = [lc.resolve(connection, program)] if program else lc.programs(connection)
        for program_id, prog in targets:
            if not prog.expiry_months:
                continue
            rows = {
                r.id: r
                for r in connection.execute(
                    select(t.members).where(t.members.c.program_id == program_id).with_for_update()
                )
            }
            out = []
            cutoff = add_months(when, -prog.expiry_months).date()
            for member_id, lots, debits in connection.execute(expirable(program_id, when)):
                balance = int(rows[member_id].balance)
                amount = min(balance, int(lots or 0) - int(debits or 0))
                if amount > 0:
                    out.append(
                        {
                            "member_id": member_id,
                            "kind": "expire",
                            "points": -amount,
                            "occurred_at": when,
                            "rule": "expiry",
                            "reason": f"points earned by {cutoff} expired",
                        }
                    )
            entries += post(ctx, program_id, prog, out, {m: r.customer_id for m, r in rows.items()})
        lc.fire(ctx, "crmkit_loyalty_after_points_expired", entries=entries)
        if entries:
            audit_batch(
                ctx,
                "loyalty.expire",
                "program",
                program,
                counts={
                    "as_of": when.isoformat(),
                    "members": len(entries),
                    "points": sum(e.points for e in entries),
                },
            )
    return entries


def expiring(lc: LoyaltyContext, customer_id: int, within_days: int, *, program: str | None = None,
             now: dt.datetime | None = None) -> int:  # fmt: skip
    when = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=within_days)
    with lc.crm.reading() as connection:
        program_id, prog = lc.resolve(connection, program)
        row = member_row(connection, program_id, prog, customer_id, lock=False)
        if not prog.expiry_months:
            return 0
        found = connection.execute(expirable(program_id, when, [row.id])).first()
        if found is None:
            return 0
        return max(0, min(int(row.balance), int(found.lots or 0) - int(found.debits or 0)))


def expired_of_lot(connection: Any, member_id: int, expires_at: dt.datetime) -> int:
    """How many points of the member's lot expiring at ``expires_at`` expiry runs took.

    Replays the member's ledger in recording order with the same FIFO rule as
    :func:`expirable`: entries with ``expires_at`` add to or cut their lot; every
    other entry is a debit consuming the oldest lots first, and what ``expire``
    entries consume is what expired.
    """
    lots: dict[dt.datetime, list[int]] = {}  # expires_at -> [points, consumed]
    expired: dict[dt.datetime, int] = defaultdict(int)
    query = (
        select(t.ledger.c.kind, t.ledger.c.points, t.ledger.c.expires_at)
        .where(t.ledger.c.member_id == member_id)
        .order_by(t.ledger.c.id)
    )
    for kind, points, lot_end in connection.execute(query):
        if lot_end is not None:
            lots.setdefault(lot_end, [0, 0])[0] += int(points)
            continue
        debit = -int(points)
        for end in sorted(lots):
            if debit <= 0:
                break
            lot = lots[end]
            take = min(max(lot[0] - lot[1], 0), debit)
            lot[1] += take
            debit -= take
            if kind == "expire":
                expired[end] += take
    return expired.get(expires_at, 0)
