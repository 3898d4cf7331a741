"""Writing the points ledger: rows appended and balances moved in one batch each.

Also the as-of day of dated runs (expiry, reviews, birthdays) and the chunk size
of long runs.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update

from crmkit.plugin import ValidationError, insert_many
from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.program import Program
from crmkit_loyalty.records import LedgerEntry

if TYPE_CHECKING:
    from crmkit.plugin import HookContext


CHUNK = 5000


def end_of_day(value: dt.date | dt.datetime | str) -> dt.datetime:
    """An as-of date as the end of that day, UTC (a datetime passes unchanged)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValidationError(f"as-of time {value.isoformat()} has no time zone", field="as_of")
        return value
    return dt.datetime.combine(value, dt.time(23, 59, 59, 999999), dt.UTC)


def post(
    ctx: HookContext,
    program_id: int,
    program: Program,
    rows: list[dict[str, Any]],
    customers: Mapping[int, int],
    extra: Mapping[int, dict[str, Any]] | None = None,
    *,
    entries: bool = True,
) -> list[LedgerEntry]:
    """Append ``rows`` to the ledger and move the members' balances by their sums.

    ``customers`` maps member id → customer id (for the returned entries);
    ``extra`` sets other member columns (``orders_count``, ``clawback_due``).
    One INSERT batch and one UPDATE batch, whatever the number of rows.
    ``entries=False`` returns nothing (a bulk earn nobody listens to).
    """
    connection = ctx.connection
    full = [
        {
            "program_id": program_id,
            "member_id": r["member_id"],
            "kind": r["kind"],
            "points": int(r["points"]),
            "occurred_at": r.get("occurred_at") or ctx.now,
            "recorded_at": ctx.now,
            "expires_at": r.get("expires_at"),
            "order_id": r.get("order_id"),
            "reward_code": r.get("reward_code"),
            "rule": r.get("rule"),
            "staff": r.get("staff"),
            "reason": r.get("reason"),
            "idem_key": r.get("idem_key"),
        }
        for r in rows
    ]
    ids = insert_many(connection, t.ledger, full) if full else []
    delta: dict[int, int] = defaultdict(int)
    for row in full:
        delta[row["member_id"]] += row["points"]
    extra = extra or {}
    touched = set(delta) | set(extra)
    if touched:
        params = []
        for member_id in touched:
            more = extra.get(member_id, {})
            params.append(
                {
                    "mid": member_id,
                    "delta": delta.get(member_id, 0),
                    "oc": more.get("orders_count"),
                    "cd": more.get("clawback_due"),
                }
            )
        statement = (
            update(t.members)
            .where(t.members.c.id == bindparam("mid"))
            .values(
                balance=t.members.c.balance + bindparam("delta"),
                orders_count=func.coalesce(bindparam("oc"), t.members.c.orders_count),
                clawback_due=func.coalesce(bindparam("cd"), t.members.c.clawback_due),
            )
        )
        connection.execute(statement, params)
    if not entries:
        return []
    return [
        LedgerEntry(
            id=new_id,
            program=program.name,
            member_id=row["member_id"],
            customer_id=customers[row["member_id"]],
            kind=row["kind"],
            points=row["points"],
            occurred_at=row["occurred_at"],
            expires_at=row["expires_at"],
            order_id=row["order_id"],
            reward_code=row["reward_code"],
            rule=row["rule"],
            staff=row["staff"],
            reason=row["reason"],
        )
        for new_id, row in zip(ids, full, strict=True)
    ]


def mark(connection: Any) -> int:
    """The newest ledger id now (to count what a batch writes after it: :func:`since`)."""
    return int(connection.scalar(select(func.max(t.ledger.c.id))) or 0)


def since(connection: Any, before: int) -> tuple[int, int, int, int | None]:
    """(entries, points, customers, the customer when there is one) the ledger gained
    after id ``before``.

    One pass over the new rows, without reading the members, when they are all of one
    program (an import batch's are): a program has one member per customer, so there
    its members count its customers. Rows of several programs are counted by customer.
    """
    lg = t.ledger.c
    one = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(lg.points), 0),
            func.count(lg.member_id.distinct()),
            func.min(lg.program_id),
            func.max(lg.program_id),
            func.min(lg.member_id),
        ).where(lg.id > before)
    ).one()
    entries, points, members, first, last, member = (int(v or 0) for v in one)
    if not entries:
        return 0, 0, 0, None
    if first == last:
        customer = None
        if members == 1:
            customer = connection.scalar(
                select(t.members.c.customer_id).where(t.members.c.id == member)
            )
        return entries, points, members, customer
    customers = set(
        connection.scalars(
            select(t.members.c.customer_id)
            .join(t.ledger, t.members.c.id == lg.member_id)
            .where(lg.id > before)
            .distinct()
        )
    )
    only = next(iter(customers)) if len(customers) == 1 else None
    return entries, points, len(customers), only


def audit_since(
    ctx: HookContext,
    action: str,
    entity: str,
    entity_id: Any,
    before: int,
    **counts: Any,
) -> int:
    """One audit entry for what the ledger gained after id ``before`` in this transaction
    (entries, points, members, plus ``counts``), when it gained anything; the customer is
    named when there is one. Returns the entries counted."""
    entries, points, customers, customer = since(ctx.connection, before)
    if entries:
        audit_batch(
            ctx,
            action,
            entity,
            entity_id,
            customer_id=customer,
            counts={**counts, "entries": entries, "points": points, "members": customers},
        )
    return entries
