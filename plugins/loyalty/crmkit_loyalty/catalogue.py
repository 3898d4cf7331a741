"""Storing loyalty programs and their rewards catalogue.

Functions named like a LoyaltyService method are its bodies; their docstrings are on the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from crmkit_loyalty import bounds
from crmkit_loyalty import tables as t
from crmkit_loyalty.program import Program, parse_program
from crmkit_loyalty.records import Reward

if TYPE_CHECKING:
    from crmkit_loyalty.context import LoyaltyContext


def load_program(
    lc: LoyaltyContext,
    definition: Mapping[str, Any] | Program,
    *,
    source: str = "<python>",
    enabled: bool = True,
) -> Program:
    program = (
        definition
        if isinstance(definition, Program)
        else parse_program(definition, source=source, rule_types=lc.rule_types)
    )
    with lc.crm.transaction() as ctx:
        connection = ctx.connection
        row = connection.execute(
            select(t.programs).where(t.programs.c.name == program.name)
        ).first()
        values = {
            "title": program.title,
            "definition": program.data,
            "source": program.source,
            "enabled": enabled,
            "updated_at": ctx.now,
        }
        if row is None:
            program_id = connection.execute(
                insert(t.programs).values(
                    name=program.name, version=1, created_at=ctx.now, **values
                )
            ).inserted_primary_key[0]
        else:
            program_id = row.id
            connection.execute(
                update(t.programs)
                .where(t.programs.c.id == row.id)
                .values(version=row.version + 1, **values)
            )
        existing = {
            r.code: r
            for r in connection.execute(
                select(t.rewards).where(t.rewards.c.program_id == program_id)
            )
        }
        for reward in program.rewards:
            fields = {
                "title": reward.title,
                "points": reward.points,
                "stock": reward.stock,
                "valid_from": reward.valid_from,
                "valid_until": reward.valid_until,
                "value": reward.value,
                "active": True,
            }
            if reward.code in existing:
                connection.execute(
                    update(t.rewards)
                    .where(t.rewards.c.id == existing[reward.code].id)
                    .values(**fields)
                )
            else:
                connection.execute(
                    insert(t.rewards).values(
                        program_id=program_id, code=reward.code, redeemed=0, **fields
                    )
                )
        gone = set(existing) - {r.code for r in program.rewards}
        if gone:
            connection.execute(
                update(t.rewards)
                .where(t.rewards.c.program_id == program_id, t.rewards.c.code.in_(gone))
                .values(active=False)
            )
        if row is not None and enabled and not row.enabled:
            _members_kept_again(connection, program_id)
        if program.tiers:
            connection.execute(
                update(t.members)
                .where(t.members.c.program_id == program_id, t.members.c.tier.is_(None))
                .values(tier=program.base_tier, tier_since=ctx.now)
            )
        ctx.audit(
            "loyalty.program.load",
            "program",
            program.name,
            before=None if row is None else {"version": row.version, "enabled": row.enabled},
            after={
                "version": 1 if row is None else row.version + 1,
                "enabled": enabled,
                "source": program.source,
                "tiers": len(program.tiers),
                "rewards": len(program.rewards),
            },
        )
    return program


def set_enabled(lc: LoyaltyContext, name: str, enabled: bool) -> None:
    with lc.crm.transaction() as ctx:
        program_id, prog = lc.resolve(ctx.connection, name)
        # updated_at: since when the program earns (catching up earns no order dated before)
        values = {"enabled": True, "updated_at": ctx.now} if enabled else {"enabled": False}
        changed = ctx.connection.execute(
            update(t.programs)
            .where(t.programs.c.id == program_id, t.programs.c.enabled.is_not(enabled))
            .values(**values)
        ).rowcount
        if changed and enabled:
            _members_kept_again(ctx.connection, program_id)
        if changed:
            ctx.audit(
                "loyalty.program.enable" if enabled else "loyalty.program.disable",
                "program",
                prog.name,
                changes={"enabled": [not enabled, enabled]},
            )


def _members_kept_again(connection: Any, program_id: int) -> None:
    """A program enabled again: its members' spend bounds missed the orders paid while it
    was off (only enabled programs earn), so they are set from the orders again."""
    bounds.refresh(connection, [t.members.c.program_id == program_id])


def program(lc: LoyaltyContext, name: str | None = None) -> Program:
    with lc.crm.reading() as connection:
        return lc.resolve(connection, name)[1]


def programs(lc: LoyaltyContext) -> list[dict[str, Any]]:
    counts = (
        select(t.members.c.program_id, func.count().label("n"))
        .group_by(t.members.c.program_id)
        .subquery()
    )
    query = (
        select(t.programs, func.coalesce(counts.c.n, 0).label("members"))
        .outerjoin(counts, counts.c.program_id == t.programs.c.id)
        .order_by(t.programs.c.name)
    )
    with lc.crm.reading() as connection:
        return [
            {
                "name": r.name,
                "title": r.title,
                "enabled": r.enabled,
                "version": r.version,
                "members": r.members,
                "source": r.source,
            }
            for r in connection.execute(query)
        ]


def rewards(
    lc: LoyaltyContext, program: str | None = None, *, include_inactive: bool = False
) -> list[Reward]:
    with lc.crm.reading() as connection:
        program_id, prog = lc.resolve(connection, program)
        query = select(t.rewards).where(t.rewards.c.program_id == program_id)
        if not include_inactive:
            query = query.where(t.rewards.c.active.is_(True))
        return [
            Reward(
                program=prog.name,
                **{
                    k: getattr(r, k)
                    for k in (
                        "code",
                        "title",
                        "points",
                        "stock",
                        "redeemed",
                        "valid_from",
                        "valid_until",
                        "value",
                        "active",
                    )
                },  # fmt: skip
            )
            for r in connection.execute(query.order_by(t.rewards.c.points, t.rewards.c.code))
        ]
