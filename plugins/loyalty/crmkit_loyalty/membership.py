"""Members: enrolment, sign-up bonuses, member look-ups and member prices.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

import crmkit.plugin as ck
from crmkit.plugin import Conflict, NotFound, ValidationError, insert_many, to_money
from crmkit_loyalty import bounds, catalogue
from crmkit_loyalty import tables as t
from crmkit_loyalty.access import audit_batch
from crmkit_loyalty.ledger import CHUNK, post
from crmkit_loyalty.program import Program
from crmkit_loyalty.records import Member, member_from_row

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext


_CENT = Decimal("0.01")


def member_row(
    connection: Any, program_id: int, program: Program, customer_id: int, *, lock: bool
) -> Any:
    query = select(t.members).where(
        t.members.c.program_id == program_id, t.members.c.customer_id == customer_id
    )
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        exists = connection.scalar(
            select(ck.customers.c.id).where(ck.customers.c.id == customer_id)
        )
        if exists is None:
            raise NotFound(f"customer {customer_id} not found")
        raise NotFound(
            f"customer {customer_id} is not a member of loyalty program {program.name!r}; "
            f"enrol them first (crmkit loyalty enrol {customer_id} --program {program.name})"
        )
    return row


def enrol(
    lc: LoyaltyContext,
    customer_id: int,
    *,
    program: str | None = None,
    referred_by: int | None = None,
    at: dt.datetime | None = None,
) -> Member:
    with lc.crm.transaction(now=at) as ctx:
        connection = ctx.connection
        program_id, prog = lc.resolve(connection, program)
        ids = {customer_id} | ({referred_by} if referred_by is not None else set())
        known = set(connection.scalars(select(ck.customers.c.id).where(ck.customers.c.id.in_(ids))))
        if customer_id not in known:
            raise NotFound(f"customer {customer_id} not found")
        if referred_by is not None and referred_by not in known:
            raise NotFound(f"referring customer {referred_by} not found")
        if referred_by == customer_id:
            raise ValidationError("a customer cannot refer themselves", field="referred_by")
        # no new membership (or referral bonus later) for an erased or merged customer
        lc.crm.customers.require_writable(customer_id)
        if referred_by is not None:
            lc.crm.customers.require_writable(referred_by)
        already = connection.scalar(
            select(t.members.c.id).where(
                t.members.c.program_id == program_id, t.members.c.customer_id == customer_id
            )
        )
        if already is not None:
            raise Conflict(f"customer {customer_id} is already a member of {prog.name!r}")
        enrol_rows(lc, ctx, program_id, prog, [customer_id], {customer_id: referred_by})
        row = member_row(connection, program_id, prog, customer_id, lock=False)
        ctx.audit(
            "loyalty.enrol",
            "member",
            row.id,
            customer_id=customer_id,
            after={
                "program": prog.name,
                "tier": row.tier,
                "balance": int(row.balance),
                "referred_by": referred_by,
            },
        )
        return member_from_row(row, prog.name)


def enrol_many(
    lc: LoyaltyContext,
    customer_ids: Iterable[int],
    *,
    program: str | None = None,
    at: dt.datetime | None = None,
) -> int:
    count = 0
    ids = list(dict.fromkeys(customer_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with lc.crm.transaction(now=at) as ctx:
            program_id, prog = lc.resolve(ctx.connection, program)
            known = set(
                ctx.connection.scalars(
                    select(ck.customers.c.id).where(ck.customers.c.id.in_(chunk))
                )
            )
            if missing := [c for c in chunk if c not in known]:
                raise NotFound(f"customer {missing[0]} not found")
            gone = sorted(
                ctx.connection.scalars(
                    select(ck.customers.c.id).where(
                        ck.customers.c.id.in_(chunk),
                        or_(
                            ck.customers.c.erased_at.is_not(None),
                            ck.customers.c.merged_into.is_not(None),
                        ),
                    )
                )
            )
            if gone:  # the one check, for the first of them (one query for the chunk)
                lc.crm.customers.require_writable(gone[0])
            enrolled = set(
                ctx.connection.scalars(
                    select(t.members.c.customer_id).where(
                        t.members.c.program_id == program_id,
                        t.members.c.customer_id.in_(chunk),
                    )
                )
            )
            fresh = [c for c in chunk if c not in enrolled]
            enrol_rows(lc, ctx, program_id, prog, fresh, {})
            count += len(fresh)
            if fresh:
                audit_batch(
                    ctx, "loyalty.enrol", "program", prog.name, counts={"members": len(fresh)}
                )
    return count


def enrol_rows(
    lc: LoyaltyContext,
    ctx: HookContext,
    program_id: int,
    prog: Program,
    customer_ids: list[int],
    referred: Mapping[int, int | None],
    at: Mapping[int, dt.datetime] | None = None,
) -> dict[int, int]:
    """Insert member rows (and sign-up bonuses); returns customer id → member id."""
    if not customer_ids:
        return {}
    at = at or {}
    rows = [
        {
            "program_id": program_id,
            "customer_id": c,
            "tier": prog.base_tier,
            "tier_since": at.get(c, ctx.now) if prog.base_tier else None,
            "balance": 0,
            "clawback_due": 0,
            "orders_count": 0,
            "referred_by": referred.get(c),
            "enrolled_at": at.get(c, ctx.now),
        }
        for c in customer_ids
    ]
    ids = insert_many(ctx.connection, t.members, rows)
    bounds.set_new_members(ctx.connection, ids)  # the customers' orders before they joined
    mapping = dict(zip(customer_ids, ids, strict=True))
    signup = prog.fixed("signup")
    if signup and signup.points:
        entries = post(
            ctx,
            program_id,
            prog,
            [
                {
                    "member_id": m,
                    "kind": "earn",
                    "points": signup.points,
                    "occurred_at": at.get(c, ctx.now),
                    "expires_at": prog.expires_at(at.get(c, ctx.now)),
                    "rule": signup.name,
                    "idem_key": f"signup:{m}",
                }
                for c, m in mapping.items()
            ],
            {m: c for c, m in mapping.items()},
        )
        lc.fire(ctx, "crmkit_loyalty_after_points_earned", entries=entries)
    return mapping


def member(lc: LoyaltyContext, customer_id: int, *, program: str | None = None) -> Member:
    with lc.crm.reading() as connection:
        program_id, prog = lc.resolve(connection, program)
        return member_from_row(
            member_row(connection, program_id, prog, customer_id, lock=False), prog.name
        )


def memberships(lc: LoyaltyContext, customer_id: int) -> list[Member]:
    query = (
        select(t.members, t.programs.c.name.label("program_name"))
        .join(t.programs, t.programs.c.id == t.members.c.program_id)
        .where(t.members.c.customer_id == customer_id)
        .order_by(t.programs.c.name)
    )
    with lc.crm.reading() as connection:
        return [member_from_row(r, r.program_name) for r in connection.execute(query)]


def member_price(
    lc: LoyaltyContext,
    customer_id: int,
    amount: Decimal | str | int,
    *,
    program: str | None = None,
) -> dict[str, Any]:
    value = to_money(amount, "amount")
    if value < 0:
        raise ValidationError(f"amount must be 0 or more, not {value}", field="amount")
    found = member(lc, customer_id, program=program)
    tier = catalogue.program(lc, found.program).tier(found.tier)
    rate = tier.discount if tier else Decimal(0)
    off = (value * rate).quantize(_CENT, ROUND_HALF_UP)
    return {
        "customer_id": customer_id,
        "program": found.program,
        "tier": found.tier,
        "discount": rate,
        "amount": value,
        "discount_amount": off,
        "price": value - off,
    }


def balance(lc: LoyaltyContext, customer_id: int, *, program: str | None = None) -> int:
    return member(lc, customer_id, program=program).balance


def _members_query(
    lc: LoyaltyContext,
    connection: Any,
    program: str | None,
    tier: str | None,
    owners: frozenset[str] | None,
) -> tuple[Program, Any]:
    program_id, prog = lc.resolve(connection, program)
    if tier is not None and prog.tier(tier) is None:
        raise ValidationError(
            f"tier {tier!r} is not a tier of {prog.name!r}; tiers: "
            + ", ".join(x.name for x in prog.tiers),
            field="tier",
        )
    query = (
        select(t.members, ck.customers.c.name)
        .join(ck.customers, ck.customers.c.id == t.members.c.customer_id)
        .where(t.members.c.program_id == program_id)
    )
    if tier is not None:
        query = query.where(t.members.c.tier == tier)
    if owners is not None:  # own/team scope: the members of the customers the actor sees
        query = query.where(ck.customers.c.owner.in_(sorted(owners)))
    return prog, query


def _member_dict(r: Any, prog: Program) -> dict[str, Any]:
    return {
        "customer_id": r.customer_id,
        "name": r.name,
        "program": prog.name,
        "tier": r.tier,
        "balance": int(r.balance),
        "orders": r.orders_count,
        "enrolled_at": r.enrolled_at,
    }


def members(
    lc: LoyaltyContext,
    *,
    program: str | None = None,
    tier: str | None = None,
    limit: int | None = None,
    owners: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    with lc.crm.reading() as connection:
        prog, query = _members_query(lc, connection, program, tier, owners)
        rows = list(connection.execute(query))
    rows.sort(key=lambda r: (-prog.rank(r.tier), -int(r.balance), r.customer_id))
    return [_member_dict(r, prog) for r in rows[:limit]]


def members_page(
    lc: LoyaltyContext,
    *,
    program: str | None = None,
    tier: str | None = None,
    after: int = 0,
    limit: int = 50,
    owners: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    with lc.crm.reading() as connection:
        prog, query = _members_query(lc, connection, program, tier, owners)
        query = (
            query.where(t.members.c.customer_id > after)
            .order_by(t.members.c.customer_id)
            .limit(limit)
        )
        return [_member_dict(r, prog) for r in connection.execute(query)]
