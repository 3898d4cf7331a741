"""Tiers: upgrades as thresholds are met, the periodic review and the tier history.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, and_, func, literal, select, update

import crmkit.plugin as ck
from crmkit.plugin import insert_many, to_decimal
from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.ledger import CHUNK, end_of_day
from crmkit_loyalty.membership import member_row
from crmkit_loyalty.program import Program, add_months
from crmkit_loyalty.records import TierChange
from crmkit_loyalty.setbased import batch_filter

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


class Qualifying:
    """Members' qualifying measures while their orders earn one by one (order-by-order
    earning): the measure after an order counts what was stored up to it.

    * ``spend`` / ``orders``: the customer's paid orders with ids up to the order's, in
      the window ending at the order (``(end - window_months, end]``);
    * ``points``: the member's earned and reversed points in that window, from the
      ledger as it was before the walk (less rows caused by orders stored after the
      order) and the rows the walk added so far (:meth:`add`).

    What it needs is read once, in one query, for the members below the top tier.
    """

    def __init__(
        self,
        connection: Any,
        prog: Program,
        rows: Mapping[int, Any],
        orders: Sequence[Any],
    ) -> None:
        self.prog = prog
        self.points = prog.measure == "points"
        self.added: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)
        #: member id (points) or customer id -> [(time, order id or None, value)] by time
        self.stored: dict[int, list[tuple[dt.datetime, int | None, Decimal]]] = defaultdict(list)
        top = prog.tiers[-1].name
        below = [o for o in orders if o.customer_id in rows and rows[o.customer_id].tier != top]
        if not below:
            return
        lo = add_months(min(o.occurred_at for o in below), -prog.window_months)
        hi = max(o.occurred_at for o in below)
        keys = sorted({o.customer_id for o in below})
        if self.points:
            keys = sorted({rows[c].id for c in keys})
            ledger = t.ledger.c
            query = select(ledger.member_id, ledger.occurred_at, ledger.order_id, ledger.points)
            query = query.where(
                ledger.member_id.in_(keys), ledger.kind.in_(("earn", "reverse")),
                ledger.occurred_at > lo, ledger.occurred_at <= hi,
            )  # fmt: skip
        else:
            o = ck.orders.c
            value = o.amount if prog.measure == "spend" else literal(1, Integer)
            query = select(o.customer_id, o.occurred_at, o.id, value).where(
                o.customer_id.in_(keys), o.status == "paid",
                o.occurred_at > lo, o.occurred_at <= hi,
            )  # fmt: skip
        for key, when, order_id, amount in connection.execute(query):
            self.stored[key].append((when, order_id, Decimal(amount)))
        for found in self.stored.values():
            found.sort(key=lambda item: item[0])

    def add(self, member_id: int, when: dt.datetime, points: int) -> None:
        """The walk wrote ``points`` (earned or reversed) for the member at ``when``."""
        if self.points and points:
            self.added[member_id].append((when, points))

    def measure(self, member_id: int, order: Any) -> Decimal:
        """The member's measure after ``order`` (which has earned)."""
        hi = order.occurred_at
        lo = add_months(hi, -self.prog.window_months)
        stored = self.stored.get(member_id if self.points else order.customer_id, [])
        start = bisect.bisect_right(stored, lo, key=lambda item: item[0])
        total = Decimal(0)
        for when, order_id, value in stored[start:]:
            if when > hi:
                break
            if order_id is None or order_id <= order.id:
                total += value
        for when, points in self.added.get(member_id, ()):
            if lo < when <= hi:
                total += points
        return total


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
        if changes:
            audit_batch(
                ctx,
                "loyalty.review_tiers",
                "program",
                program,
                counts={"as_of": when.isoformat(), "changes": len(changes)},
            )
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
