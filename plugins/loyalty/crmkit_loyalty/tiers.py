"""Tiers: upgrades as thresholds are met, the periodic review and the tier history.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import NullType

import crmkit.plugin as ck
from crmkit.plugin import insert_many, to_decimal
from crmkit_loyalty import tables as t
from crmkit_loyalty.ledger import CHUNK, end_of_day
from crmkit_loyalty.membership import member_row
from crmkit_loyalty.program import Program, add_months
from crmkit_loyalty.records import TierChange
from crmkit_loyalty.setbased import batch_filter

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


def upgrades(
    ctx: HookContext,
    program_id: int,
    prog: Program,
    rows: Mapping[int, Any],
    last_time: Mapping[int, dt.datetime],
) -> list[TierChange]:
    """Members whose qualifying measure now meets a higher tier's threshold."""
    top = prog.tiers[-1].name
    ends = {cid: when for cid, when in last_time.items() if rows[cid].tier != top}
    if not ends:
        return []
    measures = window_measures(ctx.connection, program_id, prog, rows, ends)
    changes = []
    for cid, measure in measures.items():
        row = rows[cid]
        new = prog.tier_for(measure)
        if prog.rank(new) > prog.rank(row.tier):
            changes.append(
                TierChange(row.id, cid, prog.name, row.tier, new, ends[cid], "upgrade", measure)
            )
    return changes


def window_measures(
    connection: Any,
    program_id: int,
    prog: Program,
    rows: Mapping[int, Any],
    ends: Mapping[int, dt.datetime],
) -> dict[int, Decimal]:
    """Each member's qualifying measure over the window ending at ``ends[customer]``.

    Set-based: the windows go into a temporary table (one executemany) joined
    to the ledger (points) or the orders (spend, orders) and summed by the
    database in one statement, whatever the members' history.
    """
    totals: dict[int, Decimal] = {cid: Decimal(0) for cid in ends}
    if not ends:
        return totals
    w = t.windows
    points = prog.measure == "points"
    connection.execute(CreateTable(w, if_not_exists=True))
    connection.execute(delete(w))
    months = -prog.window_months
    insert_many(
        connection,
        w,
        [
            {"key": rows[cid].id if points else cid, "lo": add_months(end, months), "hi": end}
            for cid, end in ends.items()
        ],
    )
    if points:
        table, key = t.ledger, t.ledger.c.member_id
        value = func.sum(t.ledger.c.points)
        where = t.ledger.c.kind.in_(("earn", "reverse"))
    else:
        table, key = ck.orders, ck.orders.c.customer_id
        # untyped sum: to_decimal below reads it exactly without Money's per-row scaling
        amount = func.sum(ck.orders.c.amount, type_=NullType())
        value = amount if prog.measure == "spend" else func.count()
        where = ck.orders.c.status == "paid"
    query = (
        select(w.c.key, value)
        .select_from(w)
        .join(
            table,
            and_(key == w.c.key, table.c.occurred_at > w.c.lo, table.c.occurred_at <= w.c.hi),
        )
        .where(where)
        .group_by(w.c.key)
    )
    by_key = {rows[cid].id: cid for cid in ends} if points else {cid: cid for cid in ends}
    for found, total in connection.execute(query):
        totals[by_key[found]] = to_decimal(total or 0)
    connection.execute(delete(w))
    return totals


def apply_tier_changes(lc: LoyaltyContext, ctx: HookContext, changes: list[TierChange]) -> None:
    if not changes:
        return
    connection = ctx.connection
    ids = insert_many(
        connection,
        t.tier_changes,
        [
            {
                "member_id": c.member_id,
                "from_tier": c.from_tier,
                "to_tier": c.to_tier,
                "at": c.at,
                "reason": c.reason,
                "measure": c.measure,
            }
            for c in changes
        ],
    )
    # the members take their tier from the history rows just written (each member's
    # latest): one UPDATE ... FROM per chunk instead of one UPDATE per member
    latest = sorted({c.member_id: new_id for c, new_id in zip(changes, ids, strict=True)}.values())
    m, history = t.members, t.tier_changes
    for start in range(0, len(latest), CHUNK):
        connection.execute(
            update(m)
            .where(
                m.c.id == history.c.member_id,
                batch_filter(history.c.id, latest[start : start + CHUNK]),
            )
            .values(tier=history.c.to_tier, tier_since=history.c.at)
        )
    lc.fire(ctx, "crmkit_loyalty_after_tiers_changed", changes=changes)


def review_tiers(
    lc: LoyaltyContext, as_of: dt.date | dt.datetime | str, *, program: str | None = None
) -> list[TierChange]:
    when = end_of_day(as_of)
    changes: list[TierChange] = []
    with lc.crm.transaction(now=when) as ctx:
        connection = ctx.connection
        targets = [lc.resolve(connection, program)] if program else lc.programs(connection)
        for program_id, prog in targets:
            if not prog.tiers:
                continue
            start = add_months(when, -prog.window_months)
            rows = {
                r.customer_id: r
                for r in connection.execute(
                    select(t.members).where(t.members.c.program_id == program_id).with_for_update()
                )
            }
            measure: dict[int, Decimal] = defaultdict(Decimal)
            if prog.measure == "points":
                query = (
                    select(t.members.c.customer_id, func.sum(t.ledger.c.points))
                    .join(t.members, t.members.c.id == t.ledger.c.member_id)
                    .where(
                        t.ledger.c.program_id == program_id,
                        t.ledger.c.kind.in_(("earn", "reverse")),
                        t.ledger.c.occurred_at > start,
                        t.ledger.c.occurred_at <= when,
                    )
                    .group_by(t.members.c.customer_id)
                )
            else:
                value = func.sum(ck.orders.c.amount) if prog.measure == "spend" else func.count()
                query = (
                    select(ck.orders.c.customer_id, value)
                    .join(
                        t.members,
                        and_(
                            t.members.c.customer_id == ck.orders.c.customer_id,
                            t.members.c.program_id == program_id,
                        ),
                    )  # fmt: skip
                    .where(
                        ck.orders.c.status == "paid",
                        ck.orders.c.occurred_at > start,
                        ck.orders.c.occurred_at <= when,
                    )
                    .group_by(ck.orders.c.customer_id)
                )
            for cid, total in connection.execute(query):
                measure[cid] = to_decimal(total or 0)
            for cid, row in rows.items():
                new = prog.tier_for(measure[cid])
                if new != row.tier:
                    changes.append(
                        TierChange(
                            row.id, cid, prog.name, row.tier, new, when, "review", measure[cid]
                        )
                    )
        apply_tier_changes(lc, ctx, changes)
    return changes


def tier_history(
    lc: LoyaltyContext, customer_id: int, *, program: str | None = None
) -> list[dict[str, Any]]:
    with lc.crm.reading() as connection:
        program_id, prog = lc.resolve(connection, program)
        row = member_row(connection, program_id, prog, customer_id, lock=False)
        return [
            dict(r._mapping)
            for r in connection.execute(
                select(
                    t.tier_changes.c.from_tier,
                    t.tier_changes.c.to_tier,
                    t.tier_changes.c.at,
                    t.tier_changes.c.reason,
                    t.tier_changes.c.measure,
                )  # fmt: skip
                .where(t.tier_changes.c.member_id == row.id)
                .order_by(t.tier_changes.c.id)
            )
        ]
