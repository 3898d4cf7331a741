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
from crmkit_loyalty.program import MemberView, Program, add_months, load_program_file, parse_program

if TYPE_CHECKING:
    from crmkit_loyalty.context import LoyaltyContext


def what_if(
    lc: LoyaltyContext,
    candidate: Mapping[str, Any] | Program | str | Path,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    members_of: str | None = None,
) -> dict[str, Any]:
    if isinstance(candidate, Program):
        prog = candidate
    elif isinstance(candidate, str | Path):
        prog = load_program_file(candidate, lc.rule_types)
    else:
        prog = parse_program(candidate, rule_types=lc.rule_types)
    points_by_rule: dict[str, int] = defaultdict(int)
    state: dict[int, dict[str, Any]] = {}
    spend = Decimal(0)
    count = 0
    with lc.crm.reading() as connection:
        allowed: set[int] | None = None
        if members_of:
            program_id, _ = lc.resolve(connection, members_of)
            allowed = set(
                connection.scalars(
                    select(t.members.c.customer_id).where(t.members.c.program_id == program_id)
                )
            )
        query = select(ck.orders.c.id).where(ck.orders.c.status == "paid")
        if since is not None:
            query = query.where(ck.orders.c.occurred_at >= since)
        if until is not None:
            query = query.where(ck.orders.c.occurred_at < until)
        ids = list(connection.scalars(query.order_by(ck.orders.c.occurred_at, ck.orders.c.id)))
        signup = prog.fixed("signup")
        window = prog.window_months
        for start in range(0, len(ids), CHUNK):
            for order in lc.crm.orders.get_many(ids[start : start + CHUNK]):
                if allowed is not None and order.customer_id not in allowed:
                    continue
                st = state.get(order.customer_id)
                if st is None:
                    st = state[order.customer_id] = {
                        "tier": prog.base_tier, "count": 0, "points": 0, "recent": deque(),
                        "measure": Decimal(0),
                    }  # fmt: skip
                    if signup and signup.points:
                        points_by_rule[signup.name] += signup.points
                        st["points"] += signup.points
                view = MemberView(0, order.customer_id, st["tier"], st["count"])
                earned = prog.order_points(order, view)
                st["count"] += 1
                count += 1
                spend += order.amount
                total = 0
                for rule, points in earned:
                    points_by_rule[rule] += points
                    total += points
                st["points"] += total
                if prog.tiers:
                    value = {
                        "points": Decimal(total),
                        "spend": order.amount,
                        "orders": Decimal(1),
                    }[prog.measure]
                    recent = st["recent"]
                    recent.append((order.occurred_at, value))
                    st["measure"] += value
                    cutoff = add_months(order.occurred_at, -window)
                    while recent and recent[0][0] <= cutoff:
                        st["measure"] -= recent.popleft()[1]
                    new = prog.tier_for(st["measure"])
                    if prog.rank(new) > prog.rank(st["tier"]):
                        st["tier"] = new
    awarded = sum(points_by_rule.values())
    cost = (Decimal(awarded) * prog.point_value).quantize(Decimal("0.01"))
    tiers: dict[str, int] = defaultdict(int)
    for st in state.values():
        tiers[st["tier"] or "-"] += 1
    return {
        "program": prog.name,
        "orders": count,
        "members": len(state),
        "spend": spend,
        "points": awarded,
        "points_by_rule": dict(points_by_rule),
        "cost": cost,
        "cost_share": (cost / spend * 100).quantize(Decimal("0.01")) if spend else Decimal(0),
        "members_by_tier": {t_.name: tiers.get(t_.name, 0) for t_ in prog.tiers} or dict(tiers),
    }
