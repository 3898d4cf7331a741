"""What-if: replay stored paid orders through a candidate program, writing nothing.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

import crmkit.plugin as ck
from crmkit_loyalty import tables as t
from crmkit_loyalty.ledger import CHUNK
from crmkit_loyalty.program import Program, add_months, load_program_file, parse_program
from crmkit_loyalty.rules import MemberView

if TYPE_CHECKING:
    from crmkit.plugin import Order
    from crmkit_loyalty.context import LoyaltyContext


def what_if(
    lc: LoyaltyContext,
    candidate: Mapping[str, Any] | Program | str | Path,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    members_of: str | None = None,
) -> dict[str, Any]:
    prog = _candidate(lc, candidate)
    replay = _Replay(prog)
    with lc.crm.reading() as connection:
        allowed = _members_of(lc, connection, members_of) if members_of else None
        ids = _paid_order_ids(connection, since, until)
        for start in range(0, len(ids), CHUNK):
            for order in lc.crm.orders.get_many(ids[start : start + CHUNK]):
                if allowed is not None and order.customer_id not in allowed:
                    continue
                replay.order(order)
    return replay.report()


def _candidate(lc: LoyaltyContext, candidate: Mapping[str, Any] | Program | str | Path) -> Program:
    if isinstance(candidate, Program):
        return candidate
    if isinstance(candidate, str | Path):
        return load_program_file(candidate, lc.rule_types)
    return parse_program(candidate, rule_types=lc.rule_types)


def _members_of(lc: LoyaltyContext, connection: Any, program: str) -> set[int]:
    """The customer ids of the members of ``program``."""
    program_id, _ = lc.resolve(connection, program)
    return set(
        connection.scalars(
            select(t.members.c.customer_id).where(t.members.c.program_id == program_id)
        )
    )


def _paid_order_ids(
    connection: Any, since: dt.datetime | None, until: dt.datetime | None
) -> list[int]:
    """The paid orders in [since, until), in time order."""
    query = select(ck.orders.c.id).where(ck.orders.c.status == "paid")
    if since is not None:
        query = query.where(ck.orders.c.occurred_at >= since)
    if until is not None:
        query = query.where(ck.orders.c.occurred_at < until)
    return list(connection.scalars(query.order_by(ck.orders.c.occurred_at, ck.orders.c.id)))


class _Replay:
    """Stored orders replayed one by one through a candidate program, every customer a
    member from their first order (sign-up bonus included); tiers only move up."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.points_by_rule: dict[str, int] = defaultdict(int)
        #: customer id -> tier, order count, points, (time, value) in the window, measure
        self.state: dict[int, dict[str, Any]] = {}
        self.spend = Decimal(0)
        self.count = 0
        self.signup = prog.fixed("signup")

    def member(self, customer_id: int) -> dict[str, Any]:
        st = self.state.get(customer_id)
        if st is None:
            st = self.state[customer_id] = {
                "tier": self.prog.base_tier, "count": 0, "points": 0, "recent": deque(),
                "measure": Decimal(0),
            }  # fmt: skip
            signup = self.signup
            if signup and signup.points:
                self.points_by_rule[signup.name] += signup.points
                st["points"] += signup.points
        return st

    def order(self, order: Order) -> None:
        prog = self.prog
        st = self.member(order.customer_id)
        view = MemberView(0, order.customer_id, st["tier"], st["count"])
        earned = prog.order_points(order, view)
        st["count"] += 1
        self.count += 1
        self.spend += order.amount
        total = 0
        for rule, points in earned:
            self.points_by_rule[rule] += points
            total += points
        st["points"] += total
        if prog.tiers:
            self.climb(st, order, total)

    def climb(self, st: dict[str, Any], order: Order, points: int) -> None:
        """The member's measure over the window ending at ``order``; up a tier if it meets
        a higher threshold."""
        prog = self.prog
        value = {
            "points": Decimal(points),
            "spend": order.amount,
            "orders": Decimal(1),
        }[prog.measure]
        recent = st["recent"]
        recent.append((order.occurred_at, value))
        st["measure"] += value
        cutoff = add_months(order.occurred_at, -prog.window_months)
        while recent and recent[0][0] <= cutoff:
            st["measure"] -= recent.popleft()[1]
        new = prog.tier_for(st["measure"])
        if prog.rank(new) > prog.rank(st["tier"]):
            st["tier"] = new

    def report(self) -> dict[str, Any]:
        prog, spend = self.prog, self.spend
        awarded = sum(self.points_by_rule.values())
        cost = (Decimal(awarded) * prog.point_value).quantize(Decimal("0.01"))
        tiers: dict[str, int] = defaultdict(int)
        for st in self.state.values():
            tiers[st["tier"] or "-"] += 1
        return {
            "program": prog.name,
            "orders": self.count,
            "members": len(self.state),
            "spend": spend,
            "points": awarded,
            "points_by_rule": dict(self.points_by_rule),
            "cost": cost,
            "cost_share": (cost / spend * 100).quantize(Decimal("0.01")) if spend else Decimal(0),
            "members_by_tier": {t_.name: tiers.get(t_.name, 0) for t_ in prog.tiers} or dict(tiers),
        }
