"""Set-based earning for a batch of new orders: the bulk import's fast path.

The order-by-order path (:func:`crmkit_loyalty.earning.earn_rows`) evaluates every rule
in Python; an import of a million orders then spends most of its time
building, converting and inserting Python rows. Here the database does it:
the batch's paid orders are joined to their members into a scratch table
(with each member's order number, the points' expiry and each rule's points
computed in SQL), then one ``INSERT ... SELECT`` per earn rule writes the ledger, one
``UPDATE ... FROM`` moves balances and order counts, and one grouped query
finds the members whose qualifying measure now meets a higher tier.

Only what SQL computes *exactly like the Python rules* goes this way (see
:func:`plan`): built-in rules only (spend, campaign, nth_order), orders
without lines, UTC times, amounts with at most 4 decimals, multipliers whose
products are exact decimals. Anything else (a plugin's rule type, order
lines, a campaign day boundary inside a DST switch ...) takes the Python
path, and so do the few members that need sequential handling (points to
claw back, a referral bonus on their first order).

Spend points are integer arithmetic on the amount in 1/10,000 units:
``floor(units * N / (D * 10000))`` where ``N / D`` is the exact product of
rate/per, the channel, tier and campaign multipliers, as Python's Decimal
computes it when no intermediate result is rounded.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo
from collections.abc import Sequence
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import attrs
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType

import crmkit.plugin as ck
from crmkit.plugin import Order, UTCDateTime, to_decimal
from crmkit_loyalty import tables as t
from crmkit_loyalty.program import Program
from crmkit_loyalty.rules import CampaignRule, NthOrderRule, SpendRule

#: money is stored with at most 4 decimals: amounts become integers of 1/10,000
SCALE = 10_000
_INT64 = 2**63 - 1
#: beyond this an amount's double on SQLite may not round-trip to its 4 decimals
_MAX_UNITS = 10**15
_FOUR_PLACES = decimal.Decimal("0.0001")


@attrs.frozen
class Factor:
    """A multiplier chosen by a CASE: ``{value: Fraction}``, 1 for anything else."""

    options: dict[str, Fraction]

    @property
    def max_numerator(self) -> int:
        return max([1, *(f.numerator for f in self.options.values())])

    def parts(self, column: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        """(numerator, denominator) SQL expressions for ``column``'s value."""
        if not self.options:
            return literal(1, BigInteger), literal(1, BigInteger)
        value = func.coalesce(column, "")
        nums = {k: f.numerator for k, f in self.options.items() if f.numerator != 1}
        dens = {k: f.denominator for k, f in self.options.items() if f.denominator != 1}
        return _case(value, nums), _case(value, dens)


def _case(value: Any, mapping: dict[str, int]) -> ColumnElement[Any]:
    if not mapping:
        return literal(1, BigInteger)
    return case(mapping, value=value, else_=literal(1, BigInteger))


@attrs.frozen
class Window:
    """A campaign as a UTC half-open interval [lo, hi) (and an optional channel list)."""

    lo: dt.datetime
    hi: dt.datetime
    channels: tuple[str, ...]
    factor: Fraction


@attrs.frozen
class Plan:
    """How to compute a program's order points in SQL (built once per program)."""

    spend: tuple[tuple[SpendRule, Fraction, Factor], ...]
    tiers: Factor
    campaigns: tuple[Window, ...]
    nth: tuple[NthOrderRule, ...]
    max_numerator: int  # the largest N any order can get: bounds units * N

    @property
    def rule_names(self) -> list[str]:
        """The order rules' names, in the order of :func:`rule_points`."""
        return [rule.name for rule, _, _ in self.spend] + [rule.name for rule in self.nth]

    @property
    def scratch(self) -> Any:
        """The batch's scratch table for this plan (one points column per order rule)."""
        return t.batch_orders(len(self.rule_names))


def _digits(value: decimal.Decimal) -> int:
    return len(value.as_tuple().digits)


def _quotient(a: decimal.Decimal, b: decimal.Decimal) -> decimal.Decimal | None:
    """``a / b`` if Decimal computes it exactly, else None."""
    with decimal.localcontext() as context:
        context.traps[decimal.Inexact] = True
        try:
            return a / b
        except decimal.Inexact:
            return None


def _day_start(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """The UTC instant a local day starts, or None if midnight is skipped or repeated there."""
    local = dt.datetime.combine(day, dt.time(0), zone)
    if local.utcoffset() != local.replace(fold=1).utcoffset():
        return None
    return local.astimezone(dt.UTC)


def plan(prog: Program) -> Plan | None:
    """The SQL plan of ``prog``'s order rules, or None when SQL cannot match Python exactly."""
    spend: list[tuple[SpendRule, Fraction, Factor]] = []
    campaigns: list[Window] = []
    nth: list[NthOrderRule] = []
    for rule in prog.rules:
        if isinstance(rule, SpendRule):
            # channel multipliers apply to the whole order; category ones never apply to
            # an order without lines (its one portion has no category)
            channel = Factor({k: Fraction(v) for k, v in rule.channel_multipliers.items()})
            spend.append((rule, Fraction(rule.rate) / Fraction(rule.per), channel))
        elif isinstance(rule, CampaignRule):
            if rule.categories:
                continue  # only multiplies categorised portions: none without lines
            zone = zoneinfo.ZoneInfo(rule.timezone)
            lo = _day_start(rule.starts, zone)
            hi = _day_start(rule.ends + dt.timedelta(days=1), zone)
            if lo is None or hi is None:
                return None
            campaigns.append(Window(lo, hi, rule.channels, Fraction(rule.factor)))
        elif isinstance(rule, NthOrderRule):
            nth.append(rule)
        elif hasattr(rule, "bonus") or hasattr(rule, "multiplier"):
            return None  # a rule type from another plugin: only Python knows it
    tiers = Factor({tier.name: Fraction(tier.earn_multiplier) for tier in prog.tiers})
    # Python multiplies an amount (at most 15 digits: _MAX_UNITS) by rate/per and the
    # multipliers one by one; with at most 13 digits of factors in all, no product is
    # rounded (28 digits), so the exact fractions below give the same points
    tier_digits = max([1, *(_digits(tier.earn_multiplier) for tier in prog.tiers)])
    campaign_digits = sum(_digits(r.factor) for r in prog.rules if isinstance(r, CampaignRule))
    largest = 1
    for rule, _, channel in spend:
        unit = _quotient(rule.rate, rule.per)
        if unit is None:
            return None
        channel_digits = max([1, *(_digits(v) for v in rule.channel_multipliers.values())])
        if _digits(unit) + channel_digits + tier_digits + campaign_digits > 13:
            return None
        nums = Fraction(unit).numerator * channel.max_numerator * tiers.max_numerator
        for window in campaigns:
            nums *= max(window.factor.numerator, 1)
        largest = max(largest, nums)
    return Plan(tuple(spend), tiers, tuple(campaigns), tuple(nth), largest)


def orders_fit(p: Plan, orders: Sequence[Order]) -> bool:
    """Can SQL earn on these orders exactly like Python (no lines, UTC, 4 decimals, no overflow)?"""
    if any(o.lines or o.occurred_at.tzinfo is not dt.UTC for o in orders):
        return False
    amounts = [o.amount for o in orders]
    try:
        if any(a != a.quantize(_FOUR_PLACES) for a in amounts):
            return False
    except decimal.InvalidOperation:  # too many digits to have 4 decimals
        return False
    units = int(max(amounts, default=0) * SCALE)
    return units < _MAX_UNITS and 2 * units * p.max_numerator < _INT64


def batch_fits(connection: Any, p: Plan, batch: Sequence[int]) -> bool:
    """:func:`orders_fit` for an import's batch, read in SQL: its orders have no lines,
    UTC times and at most 4 decimals already (``crmkit.StoredOrders``), so only the
    largest amount can stop SQL from computing the points exactly."""
    o = ck.orders.c
    largest = connection.scalar(
        select(func.max(func.abs(o.amount), type_=NullType())).where(batch_filter(o.id, batch))
    )
    units = int(to_decimal(largest or 0) * SCALE)
    return units < _MAX_UNITS and 2 * units * p.max_numerator < _INT64


# -- SQL pieces -------------------------------------------------------------------


def add_months(column: Any, months: int, dialect: str) -> ColumnElement[Any]:
    """``column + months`` calendar months in SQL, the day clamped to the month's end
    (what :func:`crmkit_loyalty.program.add_months` does to a UTC time)."""
    if dialect == "sqlite":
        # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): SQLite's date() rolls Jan 31 + 1 month
        # over to March, so take the earlier of that and the target month's last day
        rolled = func.date(column, f"{months:+d} months")
        last = func.date(column, "start of month", f"{months + 1:+d} months", "-1 day")
        text = func.min(rolled, last).op("||")(func.substr(column, 11))
        return type_coerce(text, UTCDateTime)
    # PostgreSQL: adding a month interval to a timestamp clamps the day already
    naive = func.timezone("UTC", column) + func.make_interval(0, months)
    return type_coerce(func.timezone("UTC", naive), UTCDateTime)


def _units(amount: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":  # NUMERIC affinity keeps a double: round it back to 4 decimals
        return cast(func.round(type_coerce(amount, NullType()) * SCALE), BigInteger)
    return cast(amount * SCALE, BigInteger)


def _spend_points(
    p: Plan, rule: SpendRule, base: Fraction, channel: Factor, b: Any
) -> ColumnElement[Any]:
    """The rule's points for each row of the scratch table (0 below the minimum spend)."""
    chan_num, chan_den = channel.parts(b.c.channel)
    tier_num, tier_den = p.tiers.parts(b.c.tier)
    num: ColumnElement[Any] = literal(base.numerator, BigInteger) * chan_num * tier_num
    den: ColumnElement[Any] = literal(base.denominator * SCALE, BigInteger) * chan_den * tier_den
    for window in p.campaigns:
        active = and_(b.c.occurred_at >= window.lo, b.c.occurred_at < window.hi)
        if window.channels:
            active = and_(active, b.c.channel.in_(window.channels))
        if window.factor.numerator != 1:
            num = num * case((active, window.factor.numerator), else_=1)
        if window.factor.denominator != 1:
            den = den * case((active, window.factor.denominator), else_=1)
    value = b.c.units * num
    if rule.rounding == "up":
        points = (value + den - 1) // den
    elif rule.rounding == "nearest":  # half up
        points = (2 * value + den) // (2 * den)
    else:
        points = value // den
    minimum = Fraction(rule.min_spend) * SCALE
    floor_units = max(-(-minimum.numerator // minimum.denominator), 1)  # ceil, and amount > 0
    return case((b.c.units >= floor_units, points), else_=0)


def _nth_points(rule: NthOrderRule, b: Any) -> ColumnElement[Any]:
    hit = (b.c.seq % rule.n == 0) if rule.repeat else (b.c.seq == rule.n)
    return case((hit, rule.points), else_=0)


def rule_points(p: Plan, b: Any) -> list[tuple[str, ColumnElement[Any]]]:
    """``[(rule name, points expression), ...]`` in the order Python lists them, over
    ``b.c``'s ``units``, ``channel``, ``tier``, ``occurred_at`` and ``seq``."""
    found = [(rule.name, _spend_points(p, rule, base, ch, b)) for rule, base, ch in p.spend]
    return found + [(rule.name, _nth_points(rule, b)) for rule in p.nth]


# -- the batch ----------------------------------------------------------------------


def batch_filter(column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column`` is one of ``ids``: ranges of consecutive ids (an import batch is one, or a
    few where other writers took ids in between), a plain list when they are scattered."""
    ordered = sorted(set(ids))
    runs: list[list[int]] = []
    for value in ordered:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    if len(runs) > 50:
        return column.in_(ordered)
    return or_(*(column.between(low, high) for low, high in runs))


def fill(
    connection: Any,
    program_id: int,
    prog: Program,
    p: Plan,
    in_batch: ColumnElement[bool],
) -> int:
    """Put the batch's paid orders of members, with each rule's points, into the scratch
    table (:attr:`Plan.scratch`)."""
    b, o, m = p.scratch, ck.orders, t.members
    dialect = connection.dialect.name
    connection.execute(CreateTable(b, if_not_exists=True))
    if dialect == "postgresql":
        connection.execute(text(f"TRUNCATE {b.name}"))  # no dead rows left to scan
        # the batch's sorts, hashes and groups fit in memory (the 4 MB default spills
        # them to disk); for the rest of this transaction only
        connection.execute(text("SET LOCAL work_mem = '64MB'"))
    else:
        connection.execute(delete(b))  # SQLite truncates a table deleted without WHERE
    # each order's number among the customer's paid orders of the batch, in time order
    # (only the nth-order rules need it; sorting these narrow rows is the cheap place)
    rank: Any = (
        func.row_number().over(partition_by=o.c.customer_id, order_by=(o.c.occurred_at, o.c.id))
        if p.nth
        else literal(0, Integer)
    )
    paid = (
        select(o.c.id, o.c.customer_id, o.c.occurred_at, o.c.amount, o.c.channel, rank.label("n"))
        .where(in_batch, o.c.status == "paid")
        .subquery()
    )
    # points still to claw back, or a referral bonus due on this first order: these
    # members earn order by order (take_sequential)
    sequential = [m.c.clawback_due > 0]
    if prog.fixed("referral"):
        sequential.append(and_(m.c.orders_count == 0, m.c.referred_by.is_not(None)))
    expires: Any = (
        add_months(paid.c.occurred_at, prog.expiry_months, dialect)
        if prog.expiry_months
        else literal(None, UTCDateTime)
    )
    # the rules' points from the order and its member row, computed here once: the
    # ledger rows and the balance update read them
    inputs = SimpleNamespace(
        units=_units(paid.c.amount, dialect),
        channel=paid.c.channel,
        tier=m.c.tier,
        occurred_at=paid.c.occurred_at,
        seq=m.c.orders_count + paid.c.n,
    )
    points = [expression for _, expression in rule_points(p, SimpleNamespace(c=inputs))]
    source = (
        select(
            paid.c.id,
            m.c.id,
            paid.c.customer_id,
            paid.c.occurred_at,
            expires,
            m.c.tier,
            or_(*sequential),
            *points,
        )
        .select_from(paid)
        # "+ 0": without statistics SQLite would walk every member and probe the batch by
        # customer; read the batch and look each member up instead
        .join(m, and_(m.c.customer_id == paid.c.customer_id + 0, m.c.program_id == program_id))
        # lock the members read (PostgreSQL; SQLite's write transaction locks already): their
        # order counts and tiers hold until the batch commits
        .with_for_update(of=m)
    )
    columns = [
        "order_id", "member_id", "customer_id", "occurred_at", "expires_at", "tier", "sequential",
        *(f"points_{i}" for i in range(len(points))),
    ]  # fmt: skip
    return connection.execute(insert(b).from_select(columns, source)).rowcount


def take_sequential(connection: Any, p: Plan) -> set[int]:
    """Remove the members who must earn order by order from the scratch table; their
    customer ids (see :func:`fill`)."""
    b = p.scratch
    found = set(connection.scalars(select(b.c.customer_id).where(b.c.sequential).distinct()))
    if found:
        connection.execute(delete(b).where(b.c.customer_id.in_(sorted(found))))
    return found


def write_ledger(connection: Any, program_id: int, p: Plan, now: dt.datetime) -> None:
    """One INSERT ... SELECT per rule (rows with points only), then the members' totals."""
    b = p.scratch
    names = p.rule_names
    columns = [
        "program_id", "member_id", "kind", "points", "occurred_at", "recorded_at",
        "expires_at", "order_id", "rule",
    ]  # fmt: skip
    for i, name in enumerate(names):
        points = b.c[f"points_{i}"]
        source = select(
            literal(program_id, Integer),
            b.c.member_id,
            literal("earn", String),
            points,
            b.c.occurred_at,
            literal(now, UTCDateTime),
            b.c.expires_at,
            b.c.order_id,
            literal(name, String),
        ).where(points > 0)
        connection.execute(insert(t.ledger).from_select(columns, source))
    total: ColumnElement[Any] = literal(0, BigInteger)
    for i in range(len(names)):
        total = total + b.c[f"points_{i}"]
    sums = (
        select(
            b.c.member_id,
            func.count().label("orders"),
            func.sum(total).label("points"),
        )
        .group_by(b.c.member_id)
        .subquery()
    )
    m = t.members
    connection.execute(
        update(m)
        .where(m.c.id == sums.c.member_id)
        .values(balance=m.c.balance + sums.c.points, orders_count=m.c.orders_count + sums.c.orders)
    )


def upgrade_candidates(connection: Any, prog: Program, p: Plan) -> list[Any]:
    """Members of the batch whose measure over the window ending at their last order in it
    may meet a higher tier: rows (member_id, customer_id, tier, end, measure)."""
    b = p.scratch
    top = prog.tiers[-1].name
    ends = (
        select(
            b.c.member_id,
            b.c.customer_id,
            b.c.tier,
            func.max(b.c.occurred_at).label("hi"),
        )
        .where(or_(b.c.tier.is_(None), b.c.tier != top))
        .group_by(b.c.member_id, b.c.customer_id, b.c.tier)
        .subquery()
    )
    lo = add_months(ends.c.hi, -prog.window_months, connection.dialect.name)
    if prog.measure == "points":
        table, key = t.ledger, t.ledger.c.member_id == ends.c.member_id
        value: Any = func.sum(t.ledger.c.points)
        where = t.ledger.c.kind.in_(("earn", "reverse"))
    else:
        table, key = ck.orders, ck.orders.c.customer_id == ends.c.customer_id
        amount = func.sum(ck.orders.c.amount, type_=NullType())
        value = amount if prog.measure == "spend" else func.count()
        where = ck.orders.c.status == "paid"
    # one correlated sum per member (an index range each): no sort of the joined rows
    total = (
        select(value)
        .where(key, table.c.occurred_at > lo, table.c.occurred_at <= ends.c.hi, where)
        .scalar_subquery()
    )
    # materialized: the filter below must not evaluate the sums a second time
    measured = (
        select(ends.c.member_id, ends.c.customer_id, ends.c.tier, ends.c.hi, total.label("total"))
        .cte("measured")
        .prefix_with("MATERIALIZED")
    )
    # only members whose measure reaches the next tier up from theirs (less a cent: SQLite
    # sums money as floating point; Python decides exactly); a member outside the ladder
    # moves to its base tier whatever the measure
    bars = {
        tier.name: float(above.threshold) - 0.01
        for tier, above in zip(prog.tiers, prog.tiers[1:], strict=False)
    }
    outside = or_(
        measured.c.tier.is_(None), measured.c.tier.not_in([tier.name for tier in prog.tiers])
    )
    bar = case(bars, value=measured.c.tier) if bars else literal(None)
    query = select(measured).where(or_(outside, measured.c.total >= bar))
    return list(connection.execute(query))


def new_entries(
    connection: Any, program_id: int, after_id: int, in_batch: ColumnElement[bool]
) -> list[Any]:
    """The earn rows just written (for the points-earned event), with their customer."""
    ledger = t.ledger
    return list(
        connection.execute(
            select(ledger, t.members.c.customer_id)
            .join(t.members, t.members.c.id == ledger.c.member_id)
            .where(
                ledger.c.id > after_id,
                ledger.c.program_id == program_id,
                ledger.c.kind == "earn",
                in_batch,
            )
            .order_by(ledger.c.id)
        )
    )
