"""Records the loyalty service returns, and how stored rows become them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs

KINDS = ("earn", "redeem", "expire", "adjust", "reverse")


@attrs.frozen
class LedgerEntry:
    """One ledger row: signed ``points`` and its cause."""

    id: int | None
    program: str
    member_id: int
    customer_id: int
    kind: str
    points: int
    occurred_at: dt.datetime
    expires_at: dt.datetime | None = None
    order_id: int | None = None
    reward_code: str | None = None
    rule: str | None = None
    staff: str | None = None
    reason: str | None = None


@attrs.frozen
class Member:
    id: int
    program: str
    customer_id: int
    tier: str | None
    tier_since: dt.datetime | None
    balance: int
    clawback_due: int
    orders_count: int
    referred_by: int | None
    enrolled_at: dt.datetime


@attrs.frozen
class TierChange:
    member_id: int
    customer_id: int
    program: str
    from_tier: str | None
    to_tier: str | None
    at: dt.datetime
    reason: str  # "upgrade" (threshold met) or "review" (periodic review)
    measure: Decimal


@attrs.frozen
class Reward:
    program: str
    code: str
    title: str
    points: int
    stock: int | None
    redeemed: int
    valid_from: dt.date | None
    valid_until: dt.date | None
    value: Decimal | None
    active: bool

    @property
    def available(self) -> int | None:
        return None if self.stock is None else max(self.stock - self.redeemed, 0)


def member_from_row(row: Any, program: str) -> Member:
    return Member(
        id=row.id,
        program=program,
        customer_id=row.customer_id,
        tier=row.tier,
        tier_since=row.tier_since,
        balance=int(row.balance),
        clawback_due=int(row.clawback_due),
        orders_count=row.orders_count,
        referred_by=row.referred_by,
        enrolled_at=row.enrolled_at,
    )


def entry_from_row(row: Any, program: str) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        program=program,
        member_id=row.member_id,
        customer_id=row.customer_id,
        kind=row.kind,
        points=int(row.points),
        occurred_at=row.occurred_at,
        expires_at=row.expires_at,
        order_id=row.order_id,
        reward_code=row.reward_code,
        rule=row.rule,
        staff=row.staff,
        reason=row.reason,
    )


def cause(e: Any) -> str:
    parts = []
    if e.order_id is not None:
        parts.append(f"order {e.order_id}")
    if e.reward_code:
        parts.append(f"reward {e.reward_code}")
    if e.rule:
        parts.append(f"rule {e.rule}")
    if e.staff:
        parts.append(f"by {e.staff}")
    if e.reason:
        parts.append(e.reason)
    return "; ".join(parts)
