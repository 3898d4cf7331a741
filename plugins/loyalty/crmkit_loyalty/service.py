"""The loyalty service: programs, members, the points ledger, tiers, rewards, reports.

Every write is one crmkit transaction (``crm.transaction()``); the member's
balance row is updated in the same transaction as the ledger rows, so
``loyalty_members.balance`` always equals the sum of that member's ledger.
Concurrency: writes that spend points lock the member row first (``SELECT ...
FOR UPDATE`` on PostgreSQL; on SQLite crmkit's write transactions start with
``BEGIN IMMEDIATE`` so writers are serialised) and check the balance inside the
transaction, so two redemptions can never spend the same points.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, bindparam, case, delete, func, insert, null, select, update
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import NullType

from crmkit.core import tables as core
from crmkit.core.bulk import insert_many
from crmkit.core.entities import Order, OrderLine, to_money
from crmkit.core.types import to_decimal
from crmkit.errors import Conflict, NotFound, ValidationError
from crmkit_loyalty import setbased
from crmkit_loyalty import tables as t
from crmkit_loyalty.program import (
    MemberView,
    Program,
    add_months,
    load_program_file,
    parse_program,
)

if TYPE_CHECKING:
    from crmkit.core.context import HookContext
    from crmkit.crm import CRM

KINDS = ("earn", "redeem", "expire", "adjust", "reverse")
_CHUNK = 5000
_CENT = Decimal("0.01")

_services: weakref.WeakKeyDictionary[Any, LoyaltyService] = weakref.WeakKeyDictionary()


def loyalty(crm: CRM) -> LoyaltyService:
    """The loyalty service of an open CRM (one per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = LoyaltyService(crm)
    return found


# -- records returned by the service ---------------------------------------------


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


def _day(value: dt.date | dt.datetime | str) -> dt.datetime:
    """An as-of date as the end of that day, UTC (a datetime passes unchanged)."""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValidationError(f"as-of time {value.isoformat()} has no time zone", field="as_of")
        return value
    return dt.datetime.combine(value, dt.time(23, 59, 59, 999999), dt.UTC)


class LoyaltyService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self._parsed: dict[int, tuple[int, Program]] = {}
        self._rule_types: dict[str, Any] | None = None
        #: earn on imported batches in SQL where that is exact (False: always order by order)
        self.set_based = True

    # -- helpers --------------------------------------------------------------------
    @property
    def rule_types(self) -> dict[str, Any]:
        """Earn-rule types contributed by plugins (the built-in ones are always known)."""
        if self._rule_types is None:
            found: dict[str, Any] = {}
            if self.crm.has_hook("crmkit_loyalty_register_earn_rule_types"):
                for batch in self.crm.call("crmkit_loyalty_register_earn_rule_types"):
                    found.update(batch or {})
            self._rule_types = found
        return self._rule_types

    def _listened(self, name: str) -> bool:
        """Does anyone receive event ``name`` (its hook, or after-commit through ctx.changes)?"""
        return self.crm.has_hook(name) or self.crm.has_hook("crmkit_after_commit")

    def _fire(self, ctx: HookContext, name: str, **kwargs: Any) -> None:
        values = next(iter(kwargs.values()))
        if values and self.crm.has_hook(name):
            self.crm.fire(ctx, name, **kwargs)
        if values:
            ctx.changes.other.setdefault(name.removeprefix("crmkit_loyalty_"), []).extend(values)

    def _program_from_row(self, row: Any) -> Program:
        cached = self._parsed.get(row.id)
        if cached is not None and cached[0] == row.version:
            return cached[1]
        program = parse_program(row.definition, source=row.source, rule_types=self.rule_types)
        self._parsed[row.id] = (row.version, program)
        return program

    def _programs(self, connection: Any, *, enabled_only: bool = True) -> list[tuple[int, Program]]:
        query = select(t.programs).order_by(t.programs.c.id)
        if enabled_only:
            query = query.where(t.programs.c.enabled.is_(True))
        return [(row.id, self._program_from_row(row)) for row in connection.execute(query)]

    def _resolve(self, connection: Any, name: str | None) -> tuple[int, Program]:
        if name:
            row = connection.execute(select(t.programs).where(t.programs.c.name == name)).first()
            if row is None:
                known = list(connection.scalars(select(t.programs.c.name)))
                raise NotFound(
                    f"loyalty program {name!r} not found; known programs: "
                    + (", ".join(known) or "(none: crmkit loyalty programs load FILE)")
                )
            return row.id, self._program_from_row(row)
        default = self.crm.settings.get("loyalty", {}).get("default_program") or None
        if default:
            return self._resolve(connection, default)
        enabled = self._programs(connection)
        if len(enabled) == 1:
            return enabled[0]
        if not enabled:
            raise NotFound(
                "no loyalty program is enabled; load one with 'crmkit loyalty programs load FILE'"
            )
        raise ValidationError(
            "several loyalty programs are enabled ("
            + ", ".join(p.name for _, p in enabled)
            + "); name one with --program",
            field="program",
        )

    def _member_row(
        self, connection: Any, program_id: int, program: Program, customer_id: int, *, lock: bool
    ) -> Any:
        query = select(t.members).where(
            t.members.c.program_id == program_id, t.members.c.customer_id == customer_id
        )
        if lock:
            query = query.with_for_update()
        row = connection.execute(query).first()
        if row is None:
            exists = connection.scalar(
                select(core.customers.c.id).where(core.customers.c.id == customer_id)
            )
            if exists is None:
                raise NotFound(f"customer {customer_id} not found")
            raise NotFound(
                f"customer {customer_id} is not a member of loyalty program {program.name!r}; "
                f"enrol them first (crmkit loyalty enrol {customer_id} --program {program.name})"
            )
        return row

    @staticmethod
    def _member(row: Any, program: str) -> Member:
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

    def _post(
        self,
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

    # -- programs -----------------------------------------------------------------
    def load_program(
        self,
        definition: Mapping[str, Any] | Program,
        *,
        source: str = "<python>",
        enabled: bool = True,
    ) -> Program:
        """Store (or replace, by name) a program definition and its rewards catalogue.

        Replacing keeps members, ledgers and the rewards' redeemed counters;
        rewards missing from the new definition are deactivated, not deleted.
        """
        program = (
            definition
            if isinstance(definition, Program)
            else parse_program(definition, source=source, rule_types=self.rule_types)
        )
        with self.crm.transaction() as ctx:
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
            if program.tiers:
                connection.execute(
                    update(t.members)
                    .where(t.members.c.program_id == program_id, t.members.c.tier.is_(None))
                    .values(tier=program.base_tier, tier_since=ctx.now)
                )
        return program

    def load_program_file(self, path: str | Path, *, enabled: bool = True) -> Program:
        """Read, validate and store a program TOML file (see :meth:`load_program`)."""
        return self.load_program(load_program_file(path, self.rule_types), enabled=enabled)

    def set_enabled(self, name: str, enabled: bool) -> None:
        with self.crm.transaction() as ctx:
            program_id, _ = self._resolve(ctx.connection, name)
            ctx.connection.execute(
                update(t.programs).where(t.programs.c.id == program_id).values(enabled=enabled)
            )

    def program(self, name: str | None = None) -> Program:
        with self.crm.reading() as connection:
            return self._resolve(connection, name)[1]

    def programs(self) -> list[dict[str, Any]]:
        """Every stored program with its state and member count."""
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
        with self.crm.reading() as connection:
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
        self, program: str | None = None, *, include_inactive: bool = False
    ) -> list[Reward]:
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
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

    # -- members ------------------------------------------------------------------
    def enrol(
        self,
        customer_id: int,
        *,
        program: str | None = None,
        referred_by: int | None = None,
        at: dt.datetime | None = None,
    ) -> Member:
        """Enrol a customer (sign-up bonus if the program has one); Conflict if already in."""
        with self.crm.transaction(now=at) as ctx:
            connection = ctx.connection
            program_id, prog = self._resolve(connection, program)
            ids = {customer_id} | ({referred_by} if referred_by is not None else set())
            known = set(
                connection.scalars(select(core.customers.c.id).where(core.customers.c.id.in_(ids)))
            )
            if customer_id not in known:
                raise NotFound(f"customer {customer_id} not found")
            if referred_by is not None and referred_by not in known:
                raise NotFound(f"referring customer {referred_by} not found")
            if referred_by == customer_id:
                raise ValidationError("a customer cannot refer themselves", field="referred_by")
            already = connection.scalar(
                select(t.members.c.id).where(
                    t.members.c.program_id == program_id, t.members.c.customer_id == customer_id
                )
            )
            if already is not None:
                raise Conflict(f"customer {customer_id} is already a member of {prog.name!r}")
            self._enrol_rows(ctx, program_id, prog, [customer_id], {customer_id: referred_by})
            row = self._member_row(connection, program_id, prog, customer_id, lock=False)
            return self._member(row, prog.name)

    def enrol_many(
        self,
        customer_ids: Iterable[int],
        *,
        program: str | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        """Enrol many customers at once (already-enrolled ones are skipped); returns the count."""
        count = 0
        ids = list(dict.fromkeys(customer_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            with self.crm.transaction(now=at) as ctx:
                program_id, prog = self._resolve(ctx.connection, program)
                known = set(
                    ctx.connection.scalars(
                        select(core.customers.c.id).where(core.customers.c.id.in_(chunk))
                    )
                )
                if missing := [c for c in chunk if c not in known]:
                    raise NotFound(f"customer {missing[0]} not found")
                enrolled = set(
                    ctx.connection.scalars(
                        select(t.members.c.customer_id).where(
                            t.members.c.program_id == program_id,
                            t.members.c.customer_id.in_(chunk),
                        )
                    )
                )
                fresh = [c for c in chunk if c not in enrolled]
                self._enrol_rows(ctx, program_id, prog, fresh, {})
                count += len(fresh)
        return count

    def _enrol_rows(
        self,
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
        mapping = dict(zip(customer_ids, ids, strict=True))
        signup = prog.fixed("signup")
        if signup and signup.points:
            entries = self._post(
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
            self._fire(ctx, "crmkit_loyalty_points_earned", entries=entries)
        return mapping

    def member(self, customer_id: int, *, program: str | None = None) -> Member:
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
            return self._member(
                self._member_row(connection, program_id, prog, customer_id, lock=False), prog.name
            )

    def memberships(self, customer_id: int) -> list[Member]:
        """The customer's memberships in every program."""
        query = (
            select(t.members, t.programs.c.name.label("program_name"))
            .join(t.programs, t.programs.c.id == t.members.c.program_id)
            .where(t.members.c.customer_id == customer_id)
            .order_by(t.programs.c.name)
        )
        with self.crm.reading() as connection:
            return [self._member(r, r.program_name) for r in connection.execute(query)]

    def member_price(
        self, customer_id: int, amount: Decimal | str | int, *, program: str | None = None
    ) -> dict[str, Any]:
        """The member price of ``amount``: the member's tier discount taken off, to the cent
        (half up). Returns tier, discount (a fraction), the discount amount and the price."""
        value = to_money(amount, "amount")
        if value < 0:
            raise ValidationError(f"amount must be 0 or more, not {value}", field="amount")
        member = self.member(customer_id, program=program)
        tier = self.program(member.program).tier(member.tier)
        rate = tier.discount if tier else Decimal(0)
        off = (value * rate).quantize(_CENT, ROUND_HALF_UP)
        return {
            "customer_id": customer_id,
            "program": member.program,
            "tier": member.tier,
            "discount": rate,
            "amount": value,
            "discount_amount": off,
            "price": value - off,
        }

    def balance(self, customer_id: int, *, program: str | None = None) -> int:
        return self.member(customer_id, program=program).balance

    def members(
        self, *, program: str | None = None, tier: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Members with their customer's name, by tier (highest first) then balance."""
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
            if tier is not None and prog.tier(tier) is None:
                raise ValidationError(
                    f"tier {tier!r} is not a tier of {prog.name!r}; tiers: "
                    + ", ".join(x.name for x in prog.tiers),
                    field="tier",
                )
            query = (
                select(t.members, core.customers.c.name)
                .join(core.customers, core.customers.c.id == t.members.c.customer_id)
                .where(t.members.c.program_id == program_id)
            )
            if tier is not None:
                query = query.where(t.members.c.tier == tier)
            rows = list(connection.execute(query))
        rows.sort(key=lambda r: (-prog.rank(r.tier), -int(r.balance), r.customer_id))
        return [
            {
                "customer_id": r.customer_id,
                "name": r.name,
                "tier": r.tier,
                "balance": int(r.balance),
                "orders": r.orders_count,
                "enrolled_at": r.enrolled_at,
            }
            for r in rows[:limit]
        ]

    # -- earning ------------------------------------------------------------------
    def earn_orders(
        self, ctx: HookContext, orders: Sequence[Order], *, replay: bool = False
    ) -> None:
        """Earn points for paid ``orders`` in every enabled program (the orders event's body).

        ``replay=True`` skips orders that already earned (idempotent re-processing);
        on the event path the core guarantees the orders are new.
        """
        paid = [o for o in orders if o.status == "paid" and o.id is not None]
        if not paid:
            return
        # new orders (the event path) may earn set-based: they are all in the orders table
        batch = None if replay else [o.id for o in orders if o.id is not None]
        for program_id, prog in self._programs(ctx.connection):
            self._earn_program(ctx, program_id, prog, paid, replay=replay, batch=batch)

    def _earn_program(
        self,
        ctx: HookContext,
        program_id: int,
        prog: Program,
        paid: list[Order],
        *,
        replay: bool,
        batch: list[int] | None = None,
    ) -> None:
        """Earn on ``paid`` in one program: one points-earned event, then tier upgrades.

        ``batch`` (the ids of all the event's new orders) allows the set-based path
        when SQL computes this program's rules exactly (``crmkit_loyalty.setbased``).
        """
        plan = prog._view("setbased", lambda: (setbased.plan(prog),))[0]
        if self.set_based and batch and plan is not None and setbased.orders_fit(plan, paid):
            entries, changes = self._earn_set_based(ctx, program_id, prog, plan, paid, batch)
        else:
            entries, changes = self._earn_rows(ctx, program_id, prog, paid, replay=replay)
        self._fire(
            ctx, "crmkit_loyalty_points_earned", entries=[e for e in entries if e.kind == "earn"]
        )
        self._apply_tier_changes(ctx, changes)

    def _earn_set_based(
        self,
        ctx: HookContext,
        program_id: int,
        prog: Program,
        plan: setbased.Plan,
        paid: list[Order],
        batch: list[int],
    ) -> tuple[list[LedgerEntry], list[TierChange]]:
        """Earn in SQL; members needing sequential handling go through :meth:`_earn_rows`."""
        connection = ctx.connection
        o, m = core.orders.c, t.members.c
        in_batch = setbased.batch_filter(o.id, batch)
        if prog.auto_enrol:
            member = select(m.id).where(m.program_id == program_id, m.customer_id == o.customer_id)
            first = dict(
                connection.execute(
                    select(o.customer_id, func.min(o.occurred_at))
                    .where(in_batch, o.status == "paid", ~member.exists())
                    .group_by(o.customer_id)
                ).all()
            )
            if first:
                self._enrol_rows(ctx, program_id, prog, sorted(first), {}, first)
        if not setbased.fill(connection, program_id, prog, plan, in_batch):
            return [], []
        # members with points to claw back, or a referral bonus on this first order, earn
        # order by order (before the set-based rows, so those are the rows after `before`)
        slow = setbased.take_sequential(connection)
        entries: list[LedgerEntry] = []
        changes: list[TierChange] = []
        if slow:
            slow_orders = [order for order in paid if order.customer_id in slow]
            entries, changes = self._earn_rows(ctx, program_id, prog, slow_orders, replay=False)
        before = connection.scalar(select(func.max(t.ledger.c.id))) or 0
        setbased.write_ledger(connection, program_id, plan, ctx.now)
        if self._listened("crmkit_loyalty_points_earned"):
            ledger_batch = setbased.batch_filter(t.ledger.c.order_id, batch)
            for row in setbased.new_entries(connection, program_id, before, ledger_batch):
                entries.append(_entry(row, prog.name))
        if prog.tiers:
            for member_id, customer_id, tier, end, total in setbased.upgrade_candidates(
                connection, prog
            ):
                measure = to_decimal(total or 0)
                new = prog.tier_for(measure)
                if prog.rank(new) > prog.rank(tier):
                    changes.append(
                        TierChange(
                            member_id, customer_id, prog.name, tier, new, end, "upgrade", measure
                        )
                    )
        return entries, changes  # the scratch rows stay until the next batch empties them

    def _earn_rows(
        self, ctx: HookContext, program_id: int, prog: Program, paid: list[Order], *, replay: bool
    ) -> tuple[list[LedgerEntry], list[TierChange]]:
        """Earn order by order in Python (any rule type, order lines, claw-backs, referrals)."""
        connection = ctx.connection
        customer_ids = sorted({o.customer_id for o in paid})
        m = t.members.c
        columns = (m.id, m.customer_id, m.tier, m.orders_count, m.clawback_due, m.referred_by)
        # enrolled_at is read (and converted) only for plugin rule types that may use it
        enrolled = m.enrolled_at if prog.has_plugin_rules else null().label("enrolled_at")
        query = (
            select(*columns, enrolled)
            .where(t.members.c.program_id == program_id, t.members.c.customer_id.in_(customer_ids))
            .with_for_update()
        )
        rows = {r.customer_id: r for r in connection.execute(query)}
        if prog.auto_enrol:
            first_order: dict[int, dt.datetime] = {}
            for o in paid:
                if o.customer_id not in rows:
                    seen = first_order.get(o.customer_id)
                    if seen is None or o.occurred_at < seen:
                        first_order[o.customer_id] = o.occurred_at
            if first_order:
                self._enrol_rows(ctx, program_id, prog, sorted(first_order), {}, first_order)
                rows = {r.customer_id: r for r in connection.execute(query)}
        if not rows:
            return [], []
        if replay:
            done = set(
                connection.scalars(
                    select(t.ledger.c.order_id).where(
                        t.ledger.c.program_id == program_id,
                        t.ledger.c.kind == "earn",
                        t.ledger.c.order_id.in_([o.id for o in paid]),
                        t.ledger.c.member_id.in_([r.id for r in rows.values()]),
                    )
                )
            )
            paid = [o for o in paid if o.id not in done]
        state = {
            cid: {"orders_count": r.orders_count, "clawback_due": int(r.clawback_due)}
            for cid, r in rows.items()
        }
        tiers = {cid: r.tier for cid, r in rows.items()}
        out: list[dict[str, Any]] = []
        first_orders: list[tuple[Any, Order]] = []
        last_time: dict[int, dt.datetime] = {}
        append = out.append
        order_points, expires_at = prog.order_points, prog.expires_at
        for order in sorted(paid, key=lambda o: (o.occurred_at, o.id)):
            cid = order.customer_id
            row = rows.get(cid)
            if row is None:
                continue
            st = state[cid]
            count = st["orders_count"]
            view = MemberView(row.id, cid, tiers[cid], count, row.enrolled_at)
            earned = order_points(order, view)
            st["orders_count"] = count + 1
            if count == 0 and row.referred_by is not None:
                first_orders.append((row, order))
            when = order.occurred_at
            last_time[cid] = when
            expires = expires_at(when)
            total = 0
            for rule, points in earned:
                total += points
                append(
                    {
                        "member_id": row.id,
                        "kind": "earn",
                        "points": points,
                        "occurred_at": when,
                        "expires_at": expires,
                        "order_id": order.id,
                        "rule": rule,
                        "idem_key": f"order:{order.id}:{rule}",
                    }
                )
            if st["clawback_due"] and total:
                take = min(total, st["clawback_due"])
                st["clawback_due"] -= take
                out.append(
                    {
                        "member_id": row.id,
                        "kind": "reverse",
                        "points": -take,
                        "occurred_at": order.occurred_at,
                        "expires_at": expires,
                        "order_id": order.id,
                        "rule": "clawback",
                        "reason": "claw back of points spent before their order was refunded",
                    }
                )
        customers = {r.id: cid for cid, r in rows.items()}
        referral = prog.fixed("referral")
        if referral and first_orders:
            referrers = {
                r.customer_id: r
                for r in connection.execute(
                    select(t.members).where(
                        t.members.c.program_id == program_id,
                        t.members.c.customer_id.in_({row.referred_by for row, _ in first_orders}),
                    )
                )
            }
            for row, order in first_orders:
                referrer = referrers.get(row.referred_by)
                expires = prog.expires_at(order.occurred_at)
                if referrer is not None and referral.points:
                    customers[referrer.id] = referrer.customer_id
                    out.append(
                        {
                            "member_id": referrer.id,
                            "kind": "earn",
                            "points": referral.points,
                            "occurred_at": order.occurred_at,
                            "expires_at": expires,
                            "order_id": order.id,
                            "rule": referral.name,
                            "reason": f"referred customer {row.customer_id} paid a first order",
                            "idem_key": f"referral:{row.id}",
                        }
                    )
                if referral.referee_points:
                    out.append(
                        {
                            "member_id": row.id,
                            "kind": "earn",
                            "points": referral.referee_points,
                            "occurred_at": order.occurred_at,
                            "expires_at": expires,
                            "order_id": order.id,
                            "rule": referral.name,
                            "reason": f"referred by customer {row.referred_by}",
                            "idem_key": f"referred:{row.id}",
                        }
                    )
        extra = {rows[cid].id: st for cid, st in state.items() if cid in last_time}
        listened = self._listened("crmkit_loyalty_points_earned")
        entries = self._post(ctx, program_id, prog, out, customers, extra, entries=listened)
        changes = self._upgrades(ctx, program_id, prog, rows, last_time) if prog.tiers else []
        return entries, changes

    def _upgrades(
        self,
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
        measures = self._measures(ctx.connection, program_id, prog, rows, ends)
        changes = []
        for cid, measure in measures.items():
            row = rows[cid]
            new = prog.tier_for(measure)
            if prog.rank(new) > prog.rank(row.tier):
                changes.append(
                    TierChange(row.id, cid, prog.name, row.tier, new, ends[cid], "upgrade", measure)
                )
        return changes

    def _measures(
        self,
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
            table, key = core.orders, core.orders.c.customer_id
            # untyped sum: to_decimal below reads it exactly without Money's per-row scaling
            amount = func.sum(core.orders.c.amount, type_=NullType())
            value = amount if prog.measure == "spend" else func.count()
            where = core.orders.c.status == "paid"
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

    def _apply_tier_changes(self, ctx: HookContext, changes: list[TierChange]) -> None:
        if not changes:
            return
        ctx.connection.execute(
            update(t.members)
            .where(t.members.c.id == bindparam("mid"))
            .values(tier=bindparam("tier"), tier_since=bindparam("since")),
            [{"mid": c.member_id, "tier": c.to_tier, "since": c.at} for c in changes],
        )
        ctx.connection.execute(
            insert(t.tier_changes),
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
        self._fire(ctx, "crmkit_loyalty_tier_changed", changes=changes)

    def reverse_orders(self, ctx: HookContext, orders: Sequence[Order]) -> None:
        """Take back the points refunded or cancelled ``orders`` earned (once per order)."""
        ids = [o.id for o in orders]
        if not ids:
            return
        connection = ctx.connection
        earned = connection.execute(
            select(
                t.ledger.c.program_id,
                t.ledger.c.member_id,
                t.ledger.c.order_id,
                func.sum(t.ledger.c.points).label("points"),
                func.max(t.ledger.c.expires_at).label("expires_at"),
            )
            .where(t.ledger.c.order_id.in_(ids), t.ledger.c.kind == "earn")
            .group_by(t.ledger.c.program_id, t.ledger.c.member_id, t.ledger.c.order_id)
            .order_by(t.ledger.c.program_id, t.ledger.c.member_id, t.ledger.c.order_id)
        ).all()
        if not earned:
            return
        keys = {f"reverse:order:{e.order_id}:{e.member_id}" for e in earned}
        done = set(
            connection.scalars(select(t.ledger.c.idem_key).where(t.ledger.c.idem_key.in_(keys)))
        )
        by_program: dict[int, list[Any]] = defaultdict(list)
        for e in earned:
            if f"reverse:order:{e.order_id}:{e.member_id}" not in done:
                by_program[e.program_id].append(e)
        programs = dict(self._programs(connection, enabled_only=False))
        for program_id, items in by_program.items():
            prog = programs[program_id]
            member_rows = {
                r.id: r
                for r in connection.execute(
                    select(t.members)
                    .where(t.members.c.id.in_({e.member_id for e in items}))
                    .with_for_update()
                )
            }
            balance = {mid: int(r.balance) for mid, r in member_rows.items()}
            due = {mid: int(r.clawback_due) for mid, r in member_rows.items()}
            out = []
            for e in items:
                points = int(e.points)
                reason = "order refunded or cancelled"
                if e.expires_at is not None and e.expires_at <= ctx.now:
                    # points that expired are gone already: never take them a second time
                    expired = min(points, _expired_of_lot(connection, e.member_id, e.expires_at))
                    if expired > 0:
                        points -= expired
                        reason += f"; {expired} points had already expired"
                take = points
                if prog.reversal_policy == "clawback" and points > balance[e.member_id]:
                    take = max(balance[e.member_id], 0)
                    due[e.member_id] += points - take
                    reason += (
                        f"; {points - take} points already spent, clawed back from future earnings"
                    )
                balance[e.member_id] -= take
                out.append(
                    {
                        "member_id": e.member_id,
                        "kind": "reverse",
                        "points": -take,
                        "occurred_at": ctx.now,
                        "expires_at": e.expires_at,
                        "order_id": e.order_id,
                        "rule": "refund",
                        "reason": reason,
                        "idem_key": f"reverse:order:{e.order_id}:{e.member_id}",
                    }
                )
            self._post(
                ctx,
                program_id,
                prog,
                out,
                {mid: r.customer_id for mid, r in member_rows.items()},
                {mid: {"clawback_due": due[mid]} for mid in member_rows},
            )

    def earn_existing(
        self, *, program: str | None = None, customer_ids: Iterable[int] | None = None
    ) -> int:
        """Earn on stored paid orders that have not earned yet (idempotent); returns orders seen."""
        ids = None if customer_ids is None else sorted(set(customer_ids))
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
            query = select(core.orders.c.id).where(core.orders.c.status == "paid")
            if ids is not None:
                query = query.where(core.orders.c.customer_id.in_(ids))
            order_ids = list(connection.scalars(query.order_by(core.orders.c.id)))
        for start in range(0, len(order_ids), _CHUNK):
            with self.crm.transaction() as ctx:
                orders = _load_orders(ctx.connection, order_ids[start : start + _CHUNK])
                self._earn_program(ctx, program_id, prog, orders, replay=True)
        return len(order_ids)

    def award_birthdays(
        self, as_of: dt.date | str, *, program: str | None = None
    ) -> list[LedgerEntry]:
        """Give the birthday bonus to members born in ``as_of``'s month (once a year each)."""
        day = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(as_of)
        when = _day(day)
        with self.crm.transaction(now=when) as ctx:
            program_id, prog = self._resolve(ctx.connection, program)
            rule = prog.fixed("birthday")
            if rule is None or not rule.points:
                return []
            rows = ctx.connection.execute(
                select(t.members.c.id, t.members.c.customer_id, core.customers.c.birth_date)
                .join(core.customers, core.customers.c.id == t.members.c.customer_id)
                .where(
                    t.members.c.program_id == program_id, core.customers.c.birth_date.is_not(None)
                )
            ).all()
            due = [r for r in rows if r.birth_date.month == day.month]
            keys = {f"birthday:{r.id}:{day.year}": r for r in due}
            done = set(
                ctx.connection.scalars(
                    select(t.ledger.c.idem_key).where(
                        t.ledger.c.program_id == program_id, t.ledger.c.idem_key.in_(list(keys))
                    )
                )
            ) if keys else set()  # fmt: skip
            out = [
                {
                    "member_id": r.id,
                    "kind": "earn",
                    "points": rule.points,
                    "occurred_at": when,
                    "expires_at": prog.expires_at(when),
                    "rule": rule.name,
                    "idem_key": key,
                }
                for key, r in keys.items()
                if key not in done
            ]
            entries = self._post(ctx, program_id, prog, out, {r.id: r.customer_id for r in due})
            self._fire(ctx, "crmkit_loyalty_points_earned", entries=entries)
            return entries

    # -- spending and corrections ------------------------------------------------------
    def redeem(
        self,
        customer_id: int,
        reward: str,
        *,
        program: str | None = None,
        quantity: int = 1,
        actor: str | None = None,
        at: dt.datetime | None = None,
    ) -> LedgerEntry:
        """Spend points on a reward. Refused (nothing written) when the balance is short,
        the reward is unknown, inactive, out of its validity dates or out of stock."""
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValidationError(
                f"quantity must be a whole number >= 1, not {quantity!r}", field="quantity"
            )
        with self.crm.transaction(actor=actor, now=at) as ctx:
            connection = ctx.connection
            program_id, prog = self._resolve(connection, program)
            member = self._member_row(connection, program_id, prog, customer_id, lock=True)
            row = connection.execute(
                select(t.rewards)
                .where(t.rewards.c.program_id == program_id, t.rewards.c.code == reward)
                .with_for_update()
            ).first()
            if row is None or not row.active:
                codes = connection.scalars(
                    select(t.rewards.c.code).where(
                        t.rewards.c.program_id == program_id, t.rewards.c.active.is_(True)
                    )
                )
                raise NotFound(
                    f"reward {reward!r} is not in the catalogue of {prog.name!r}; available: "
                    f"{', '.join(codes) or '(none)'}"
                )
            today = ctx.now.date()
            if row.valid_from and today < row.valid_from:
                raise ValidationError(
                    f"reward {reward!r} can be redeemed from {row.valid_from} only", field="reward"
                )
            if row.valid_until and today > row.valid_until:
                raise ValidationError(
                    f"reward {reward!r} expired on {row.valid_until}; choose another reward",
                    field="reward",
                )
            if row.stock is not None and row.redeemed + quantity > row.stock:
                raise Conflict(
                    f"reward {reward!r} is out of stock ({max(row.stock - row.redeemed, 0)} left)"
                )
            cost = row.points * quantity
            if int(member.balance) < cost:
                raise ValidationError(
                    f"customer {customer_id} has {int(member.balance)} points in {prog.name!r}; "
                    f"{quantity} x {reward!r} costs {cost}",
                    field="points",
                )
            connection.execute(
                update(t.rewards)
                .where(t.rewards.c.id == row.id)
                .values(redeemed=t.rewards.c.redeemed + quantity)
            )
            (entry,) = self._post(
                ctx,
                program_id,
                prog,
                [
                    {
                        "member_id": member.id,
                        "kind": "redeem",
                        "points": -cost,
                        "reward_code": reward,
                        "staff": actor,
                        "reason": f"{quantity} x {row.title}",
                    }
                ],
                {member.id: customer_id},
            )
            self._fire(ctx, "crmkit_loyalty_points_redeemed", entries=[entry])
            return entry

    def adjust(
        self,
        customer_id: int,
        points: int,
        *,
        reason: str,
        staff: str,
        program: str | None = None,
        at: dt.datetime | None = None,
    ) -> LedgerEntry:
        """A manual correction by a staff member; the reason is required. Never below zero."""
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise ValidationError(
                f"points must be a non-zero whole number, not {points!r}", field="points"
            )
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("an adjustment needs a reason (--reason TEXT)", field="reason")
        if not isinstance(staff, str) or not staff.strip():
            raise ValidationError(
                "an adjustment needs the staff member making it (--staff USER)", field="staff"
            )
        with self.crm.transaction(actor=staff, now=at) as ctx:
            program_id, prog = self._resolve(ctx.connection, program)
            member = self._member_row(ctx.connection, program_id, prog, customer_id, lock=True)
            # a correction may always raise a balance (even one still below zero after it)
            if points < 0 and int(member.balance) + points < 0:
                raise ValidationError(
                    f"customer {customer_id} has {int(member.balance)} points in {prog.name!r}; "
                    f"an adjustment of {points} would make the balance negative",
                    field="points",
                )
            (entry,) = self._post(
                ctx,
                program_id,
                prog,
                [
                    {
                        "member_id": member.id,
                        "kind": "adjust",
                        "points": points,
                        "expires_at": prog.expires_at(ctx.now) if points > 0 else None,
                        "rule": "manual",
                        "staff": staff.strip(),
                        "reason": reason.strip(),
                    }
                ],
                {member.id: customer_id},
            )
            return entry

    # -- expiry ---------------------------------------------------------------------
    @staticmethod
    def _expirable(
        program_id: int, as_of: dt.datetime, member_ids: Sequence[int] | None = None
    ) -> Any:
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
        self, as_of: dt.date | dt.datetime | str, *, program: str | None = None
    ) -> list[LedgerEntry]:
        """Expire points whose lots expired by the end of ``as_of`` (all enabled programs,
        or one). Running it again for the same date expires nothing more."""
        when = _day(as_of)
        entries: list[LedgerEntry] = []
        with self.crm.transaction(now=when) as ctx:
            connection = ctx.connection
            targets = (
                [self._resolve(connection, program)] if program else self._programs(connection)
            )
            for program_id, prog in targets:
                if not prog.expiry_months:
                    continue
                rows = {
                    r.id: r
                    for r in connection.execute(
                        select(t.members)
                        .where(t.members.c.program_id == program_id)
                        .with_for_update()
                    )
                }
                out = []
                cutoff = add_months(when, -prog.expiry_months).date()
                for member_id, lots, debits in connection.execute(
                    self._expirable(program_id, when)
                ):
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
                entries += self._post(
                    ctx, program_id, prog, out, {m: r.customer_id for m, r in rows.items()}
                )
            self._fire(ctx, "crmkit_loyalty_points_expired", entries=entries)
        return entries

    def expiring(self, customer_id: int, within_days: int, *, program: str | None = None,
                 now: dt.datetime | None = None) -> int:  # fmt: skip
        """Points of the member that will expire within ``within_days`` unless spent."""
        when = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=within_days)
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
            row = self._member_row(connection, program_id, prog, customer_id, lock=False)
            if not prog.expiry_months:
                return 0
            found = connection.execute(self._expirable(program_id, when, [row.id])).first()
            if found is None:
                return 0
            return max(0, min(int(row.balance), int(found.lots or 0) - int(found.debits or 0)))

    # -- tiers ----------------------------------------------------------------------
    def review_tiers(
        self, as_of: dt.date | dt.datetime | str, *, program: str | None = None
    ) -> list[TierChange]:
        """The periodic review: every member gets the tier their measure over the window
        ending ``as_of`` meets, down as well as up."""
        when = _day(as_of)
        changes: list[TierChange] = []
        with self.crm.transaction(now=when) as ctx:
            connection = ctx.connection
            targets = (
                [self._resolve(connection, program)] if program else self._programs(connection)
            )
            for program_id, prog in targets:
                if not prog.tiers:
                    continue
                start = add_months(when, -prog.window_months)
                rows = {
                    r.customer_id: r
                    for r in connection.execute(
                        select(t.members)
                        .where(t.members.c.program_id == program_id)
                        .with_for_update()
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
                    value = (
                        func.sum(core.orders.c.amount) if prog.measure == "spend" else func.count()
                    )
                    query = (
                        select(core.orders.c.customer_id, value)
                        .join(
                            t.members,
                            and_(
                                t.members.c.customer_id == core.orders.c.customer_id,
                                t.members.c.program_id == program_id,
                            ),
                        )  # fmt: skip
                        .where(
                            core.orders.c.status == "paid",
                            core.orders.c.occurred_at > start,
                            core.orders.c.occurred_at <= when,
                        )
                        .group_by(core.orders.c.customer_id)
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
            self._apply_tier_changes(ctx, changes)
        return changes

    def tier_history(self, customer_id: int, *, program: str | None = None) -> list[dict[str, Any]]:
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
            row = self._member_row(connection, program_id, prog, customer_id, lock=False)
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

    # -- reading ----------------------------------------------------------------------
    def statement(self, customer_id: int, *, program: str | None = None) -> dict[str, Any]:
        """The member's ledger in recording order with a running balance."""
        with self.crm.reading() as connection:
            program_id, prog = self._resolve(connection, program)
            row = self._member_row(connection, program_id, prog, customer_id, lock=False)
            customer = connection.execute(
                select(core.customers.c.name).where(core.customers.c.id == customer_id)
            ).first()
            entries = []
            running = 0
            for e in connection.execute(
                select(t.ledger).where(t.ledger.c.member_id == row.id).order_by(t.ledger.c.id)
            ):
                running += int(e.points)
                entries.append(
                    {
                        "id": e.id,
                        "occurred_at": e.occurred_at,
                        "kind": e.kind,
                        "points": int(e.points),
                        "balance": running,
                        "cause": _cause(e),
                        "expires_at": e.expires_at,
                    }
                )
        tier = prog.tier(row.tier)
        return {
            "program": prog.name,
            "program_title": prog.title,
            "customer_id": customer_id,
            "customer_name": customer.name if customer else "",
            "tier": row.tier,
            "tier_title": (tier.title or tier.name) if tier else None,
            "discount": tier.discount if tier else Decimal(0),
            "balance": int(row.balance),
            "value": (Decimal(int(row.balance)) * prog.point_value).quantize(Decimal("0.01")),
            "entries": entries,
        }

    def ledger_sums(self, *, program: str | None = None) -> dict[int, tuple[int, int]]:
        """customer id → (balance row, sum of ledger): they must always be equal."""
        with self.crm.reading() as connection:
            program_id, _ = self._resolve(connection, program)
            sums = dict(
                connection.execute(
                    select(t.ledger.c.member_id, func.sum(t.ledger.c.points))
                    .where(t.ledger.c.program_id == program_id)
                    .group_by(t.ledger.c.member_id)
                ).all()
            )
            return {
                r.customer_id: (int(r.balance), int(sums.get(r.id) or 0))
                for r in connection.execute(
                    select(t.members).where(t.members.c.program_id == program_id)
                )
            }

    def liability(self, *, program: str | None = None) -> list[dict[str, Any]]:
        """Outstanding points valued at their redemption value, per program and tier."""
        with self.crm.reading() as connection:
            targets = (
                [self._resolve(connection, program)]
                if program
                else self._programs(connection, enabled_only=False)
            )
            result = []
            for program_id, prog in targets:
                rows = {
                    r.tier: r
                    for r in connection.execute(
                        select(
                            t.members.c.tier,
                            func.count().label("members"),
                            func.sum(
                                case((t.members.c.balance > 0, t.members.c.balance), else_=0)
                            ).label("points"),
                        )
                        .where(t.members.c.program_id == program_id)
                        .group_by(t.members.c.tier)
                    )
                }
                names = [tier.name for tier in prog.tiers] + sorted(
                    (k for k in rows if prog.tier(k) is None), key=str
                )
                for name in names:
                    r = rows.get(name)
                    points = int(r.points or 0) if r else 0
                    result.append(
                        {
                            "program": prog.name,
                            "tier": name,
                            "members": r.members if r else 0,
                            "points": points,
                            "point_value": prog.point_value,
                            "value": (Decimal(points) * prog.point_value).quantize(Decimal("0.01")),
                        }
                    )
            return result

    # -- what-if ---------------------------------------------------------------------
    def what_if(
        self,
        candidate: Mapping[str, Any] | Program | str | Path,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        members_of: str | None = None,
    ) -> dict[str, Any]:
        """Replay stored paid orders through ``candidate`` (a definition, Program or TOML
        path) without writing anything: what it would have awarded and what it costs.

        Every customer who ordered is treated as enrolled from their first order,
        unless ``members_of`` names a program whose members only are replayed.
        Tiers move up as thresholds are met (no downgrades inside the replay).
        """
        if isinstance(candidate, Program):
            prog = candidate
        elif isinstance(candidate, str | Path):
            prog = load_program_file(candidate, self.rule_types)
        else:
            prog = parse_program(candidate, rule_types=self.rule_types)
        points_by_rule: dict[str, int] = defaultdict(int)
        state: dict[int, dict[str, Any]] = {}
        spend = Decimal(0)
        count = 0
        with self.crm.reading() as connection:
            allowed: set[int] | None = None
            if members_of:
                program_id, _ = self._resolve(connection, members_of)
                allowed = set(
                    connection.scalars(
                        select(t.members.c.customer_id).where(t.members.c.program_id == program_id)
                    )
                )
            query = select(core.orders.c.id).where(core.orders.c.status == "paid")
            if since is not None:
                query = query.where(core.orders.c.occurred_at >= since)
            if until is not None:
                query = query.where(core.orders.c.occurred_at < until)
            ids = list(
                connection.scalars(query.order_by(core.orders.c.occurred_at, core.orders.c.id))
            )
            signup = prog.fixed("signup")
            window = prog.window_months
            for start in range(0, len(ids), _CHUNK):
                for order in _load_orders(connection, ids[start : start + _CHUNK]):
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

    # -- personal data ---------------------------------------------------------------
    def export(self, connection: Any, customer_id: int) -> dict[str, Any] | None:
        rows = connection.execute(
            select(t.members, t.programs.c.name.label("program_name"))
            .join(t.programs, t.programs.c.id == t.members.c.program_id)
            .where(t.members.c.customer_id == customer_id)
        ).all()
        if not rows:
            return None
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
                    "ledger": [
                        {
                            "kind": e.kind,
                            "points": int(e.points),
                            "occurred_at": e.occurred_at,
                            "cause": _cause(e),
                        }
                        for e in entries
                    ],
                }
            )
        return {"memberships": result}


def _expired_of_lot(connection: Any, member_id: int, expires_at: dt.datetime) -> int:
    """How many points of the member's lot expiring at ``expires_at`` expiry runs took.

    Replays the member's ledger in recording order with the same FIFO rule as
    :meth:`LoyaltyService._expirable`: entries with ``expires_at`` add to or cut
    their lot; every other entry is a debit consuming the oldest lots first, and
    what ``expire`` entries consume is what expired.
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


def _cause(e: Any) -> str:
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


def _entry(row: Any, program: str) -> LedgerEntry:
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


def _load_orders(connection: Any, ids: Sequence[int]) -> list[Order]:
    """Orders with their lines, in the order of ``ids``."""
    if not ids:
        return []
    lines: dict[int, list[OrderLine]] = defaultdict(list)
    for line in connection.execute(
        select(core.order_lines)
        .where(core.order_lines.c.order_id.in_(ids))
        .order_by(core.order_lines.c.id)
    ):
        lines[line.order_id].append(
            OrderLine(
                product=line.product,
                category=line.category,
                quantity=line.quantity,
                price=line.price,
            )
        )
    rows = {
        r.id: r for r in connection.execute(select(core.orders).where(core.orders.c.id.in_(ids)))
    }
    return [
        Order(
            id=r.id,
            customer_id=r.customer_id,
            occurred_at=r.occurred_at,
            amount=r.amount,
            external_id=r.external_id,
            cost=r.cost,
            currency=r.currency,
            status=r.status,
            channel=r.channel,
            lines=lines.get(r.id, []),
        )
        for r in (rows[i] for i in ids if i in rows)
    ]
