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

import contextlib
import datetime as dt
import decimal
import zoneinfo
from collections.abc import Iterator, Sequence
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import (
    BigInteger,
    Integer,
    Numeric,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    null,
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
from crmkit_loyalty import bounds, pending
from crmkit_loyalty import tables as t
from crmkit_loyalty.program import Program
from crmkit_loyalty.records import TierChange
from crmkit_loyalty.rules import CampaignRule, NthOrderRule, SpendRule

if TYPE_CHECKING:
    from crmkit.plugin import HookContext

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
        # no month is shorter than 28 days: only later days need the clamp (a date() less)
        day = case((func.substr(column, 9, 2) <= "28", rolled), else_=func.min(rolled, last))
        return type_coerce(day.op("||")(func.substr(column, 11)), UTCDateTime)
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
    if ids:
        low, high = min(ids), max(ids)
        if high - low + 1 == len(ids) == len(set(ids)):  # one run: no sort, no Python loop
            return column.between(low, high)
    runs = id_runs(ids)
    if len(runs) > 50:
        return column.in_(sorted(set(ids)))
    return or_(*(column.between(low, high) for low, high in runs))


def id_runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    """``ids`` as ``[(first, last), ...]`` ranges of consecutive ids, ascending."""
    runs: list[list[int]] = []
    for value in sorted(set(ids)):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return [(low, high) for low, high in runs]


def gone_customers() -> Any:
    """The ids of customers who take no new points: erased, or merged into another record
    (a subquery: one scan for the batch, no query per order)."""
    c = ck.customers.c
    return select(c.id).where(or_(c.erased_at.is_not(None), c.merged_into.is_not(None)))


def _ladder(prog: Program) -> list[tuple[int, str, int]]:
    """``[(rank, tier, threshold in measure units), ...]`` from the top tier down: spend in
    1/10,000 (amounts have at most 4 decimals), orders and points whole; a measure meets
    a threshold when its units reach the threshold's units rounded up."""
    scale = SCALE if prog.measure == "spend" else 1
    out = []
    for rank, tier in reversed(list(enumerate(prog.tiers))):
        bar = Fraction(tier.threshold) * scale
        out.append((rank, tier.name, -(-bar.numerator // bar.denominator)))
    return out


def _rank_of(prog: Program, tier: Any) -> ColumnElement[Any]:
    """A tier name's rank on the ladder (-1: outside it, or none) in SQL."""
    ranks = {t_.name: i for i, t_ in enumerate(prog.tiers)}
    return case(ranks, value=tier, else_=-1) if ranks else literal(-1, Integer)


def _next_bar(prog: Program, rank: Any) -> ColumnElement[Any]:
    """The lowest threshold (in measure units) above a rank on the ladder; NULL outside it
    and at the top."""
    bars = {r: bar for r, _, bar in _ladder(prog)}
    above = {r: min(bar for k, bar in bars.items() if k > r) for r in bars if r < max(bars)}
    return case(above, value=rank, else_=None) if above else null()


def _tier_of_rank(prog: Program, rank: Any, otherwise: Any) -> ColumnElement[Any]:
    return case({i: t_.name for i, t_ in enumerate(prog.tiers)}, value=rank, else_=otherwise)


def _spend_measure(prog: Program, paid: Any, dialect: str) -> ColumnElement[Any]:
    """The qualifying measure (spend in 1/10,000 or an order count) after each order: the
    customer's paid orders stored up to it (ids up to its id) in the window ending at it."""
    q = ck.orders.alias("qualifying")
    if prog.measure == "spend":
        if dialect == "sqlite":  # exact integers: SQLite sums NUMERIC as floating point
            value: Any = func.sum(_units(q.c.amount, dialect))
        else:
            value = cast(func.sum(q.c.amount) * SCALE, BigInteger)
    else:
        value = func.count()
    return (
        select(value)
        .where(
            q.c.customer_id == paid.c.customer_id,
            q.c.occurred_at > add_months(paid.c.occurred_at, -prog.window_months, dialect),
            q.c.occurred_at <= paid.c.occurred_at,
            q.c.status == "paid",
            q.c.id <= paid.c.id,
        )
        .scalar_subquery()
    )


def _met(prog: Program, measure: Any) -> ColumnElement[Any]:
    """The highest rank whose threshold a measure meets (NULL for a NULL measure)."""
    ladder = _ladder(prog)
    return case(
        (measure.is_(None), None),
        *((measure >= bar, rank) for rank, _, bar in ladder[:-1]),
        else_=0,
    )


def _fix_tiers(connection: Any, prog: Program, p: Plan) -> None:
    """Give the scratch rows of members whose tier moves within the batch the tier each
    order earns with, the upgrade it triggers and their points.

    :func:`fill` wrote every row with the member's tier before the batch and no upgrade:
    exact for a member none of whose orders' measures meets a tier above that tier (a
    NULL measure, at the top tier or ruled out by the spend bound, meets none). For the
    others (a few per batch), the tier an order earns with is the highest of the tier
    before the batch and the tiers the measures after the member's earlier orders of the
    batch met (a running maximum); an order whose measure meets a tier above that moves
    the member up (``upgrade_to``), from the next order on.
    """
    b = p.scratch
    rank0 = _rank_of(prog, b.c.tier)
    met = _met(prog, b.c.measure)
    moving = select(b.c.member_id).where(met > rank0)
    before = func.max(met).over(partition_by=b.c.member_id, order_by=b.c.order_id, rows=(None, -1))
    ranked = (
        select(b.c.order_id, b.c.tier.label("tier0"), rank0.label("rank0"), met.label("met"),
               before.label("before"))
        .where(b.c.member_id.in_(moving))
        .subquery()
    )  # fmt: skip
    used = case((ranked.c.before > ranked.c.rank0, ranked.c.before), else_=ranked.c.rank0)
    fixed = select(
        ranked.c.order_id,
        _tier_of_rank(prog, used, ranked.c.tier0).label("tier"),
        case((ranked.c.met > used, _tier_of_rank(prog, ranked.c.met, None))).label("upgrade_to"),
    ).subquery()
    inputs = SimpleNamespace(
        c=SimpleNamespace(
            units=b.c.spend, channel=b.c.channel, tier=fixed.c.tier,
            occurred_at=b.c.occurred_at, seq=b.c.seq,
        )
    )  # fmt: skip
    points = {f"points_{i}": value for i, (_, value) in enumerate(rule_points(p, inputs))}
    connection.execute(
        update(b)
        .where(b.c.order_id == fixed.c.order_id)
        .values(tier=fixed.c.tier, upgrade_to=fixed.c.upgrade_to, **points)
    )


def fill(
    connection: Any,
    program_id: int,
    prog: Program,
    p: Plan,
    in_batch: ColumnElement[bool],
) -> int:
    """Put the batch's paid orders of members, with each rule's points, into the scratch
    table (:attr:`Plan.scratch`); with a spend or orders measure also the tier each
    order earns with and the upgrades (see :func:`_fix_tiers`)."""
    b, o, m = p.scratch, ck.orders, t.members
    dialect = connection.dialect.name
    connection.execute(CreateTable(b, if_not_exists=True))
    if dialect == "postgresql":
        connection.execute(text(f"TRUNCATE {b.name}"))  # no dead rows left to scan
        # the batch's sorts, hashes and groups fit in memory (the 4 MB default spills
        # them to disk); no JIT: compiling this statement's expressions took 50-100 ms a
        # batch, more than it saved on 50,000 rows; for the rest of this transaction only
        connection.execute(text("SET LOCAL work_mem = '64MB'"))
        connection.execute(text("SET LOCAL jit = off"))
    else:
        connection.execute(delete(b))  # SQLite truncates a table deleted without WHERE
    tiered = bool(prog.tiers) and prog.measure != "points"
    # each order's number among the customer's paid orders of the batch, in the order they
    # were stored (the nth-order rules need it); numbering sorts the batch by customer, so
    # the member look-ups and the measures' index ranges below are read in index order
    by_customer = {"partition_by": o.c.customer_id, "order_by": o.c.id}
    rank: Any = func.row_number().over(**by_customer) if p.nth or tiered else literal(0, Integer)
    spend = bounds.units(o.c.amount, dialect)
    # spend measure: the batch's spend up to each order (the same window as the numbering:
    # one sort); with the member's spend bound it bounds the order's 12-month spend
    pruned = tiered and prog.measure == "spend"
    running = cast(func.sum(spend).over(**by_customer), BigInteger) if pruned else null()
    paid = (
        select(o.c.id, o.c.customer_id, o.c.occurred_at, o.c.amount, o.c.channel,
               rank.label("n"), spend.label("spend"), running.label("running"))
        .where(in_batch, o.c.status == "paid", o.c.customer_id.not_in(gone_customers()))
        .subquery()
    )  # fmt: skip
    # the members' counters: the row's plus what earlier batches of the import added
    # (crmkit_loyalty.pending)
    waiting = pending.table(connection)
    if dialect == "postgresql":  # (SQLite's write transaction locks already)
        _lock_members(connection, program_id, in_batch, waiting)
    orders_count, spend_bound = m.c.orders_count, m.c.spend_bound
    if waiting is not None:
        orders_count = orders_count + func.coalesce(waiting.c.orders, 0)
        spend_bound = spend_bound + func.coalesce(waiting.c.spend, 0)
    # points still to claw back, or a referral bonus due on this first order: these
    # members earn order by order (take_sequential)
    sequential = [m.c.clawback_due > 0]
    if prog.fixed("referral"):
        sequential.append(and_(orders_count == 0, m.c.referred_by.is_not(None)))
    measure: Any = cast(null(), BigInteger)
    if tiered:  # members at the top tier need no measure
        top = m.c.tier == prog.tiers[-1].name
        if pruned:
            # nor do orders whose customer's paid spend of all time (the bound) cannot reach
            # the next tier: NULL is below any tier, as at the top (see _fix_tiers)
            below = (spend_bound + paid.c.running) < _next_bar(prog, _rank_of(prog, m.c.tier))
            top = or_(top, below)
        measure = case((top, None), else_=_spend_measure(prog, paid, dialect))
    locked = (
        select(
            paid,
            m.c.id.label("member_id"),
            m.c.tier.label("tier0"),
            _rank_of(prog, m.c.tier).label("rank0"),
            orders_count.label("count0"),
            or_(*sequential).label("sequential"),
            measure.label("measure"),
        )
        .select_from(paid)
        # "+ 0": without statistics SQLite would walk every member and probe the batch by
        # customer; read the batch and look each member up instead
        .join(m, and_(m.c.customer_id == paid.c.customer_id + 0, m.c.program_id == program_id))
    )
    if waiting is not None:
        locked = locked.outerjoin(waiting, waiting.c.member_id == m.c.id)
    # every order earns with the member's tier before the batch (_fix_tiers moves the few
    # members an order moves up): one pass, no second sort, each measure read once
    locked = locked.subquery()
    rows = select(
        locked,
        locked.c.tier0.label("tier"),
        cast(null(), String(100)).label("upgrade_to"),
    ).subquery()
    # the rules' points from the order and the tier it earns with, computed here once: the
    # ledger rows and the balance update read them
    points = [expression for _, expression in rule_points(p, _inputs(rows, dialect))]
    expires: Any = (
        add_months(rows.c.occurred_at, prog.expiry_months, dialect)
        if prog.expiry_months
        else literal(None, UTCDateTime)
    )
    source = select(
        rows.c.id, rows.c.member_id, rows.c.customer_id, rows.c.occurred_at, expires,
        rows.c.tier, rows.c.sequential, rows.c.measure, rows.c.upgrade_to, rows.c.spend,
        rows.c.channel, rows.c.count0 + rows.c.n, *points,
    )  # fmt: skip
    columns = [
        "order_id", "member_id", "customer_id", "occurred_at", "expires_at", "tier",
        "sequential", "measure", "upgrade_to", "spend", "channel", "seq",
        *(f"points_{i}" for i in range(len(points))),
    ]  # fmt: skip
    count = _without_nested_loops(connection, insert(b).from_select(columns, source))
    if tiered and count:
        _fix_tiers(connection, prog, p)
    return count


def _lock_members(
    connection: Any, program_id: int, in_batch: ColumnElement[bool], waiting: Table | None
) -> None:
    """Lock the members of the batch's customers (PostgreSQL) that no earlier batch of the
    import locked, before :func:`fill` reads them: their order counts and tiers hold until
    the import commits.

    A customer with pending counters (:mod:`crmkit_loyalty.pending`) had orders in an
    earlier batch of this transaction, which read and locked their member. ``FOR UPDATE``
    in the fill itself locked every member again for each of its orders in every batch
    (0.7-1.6 s of the server's CPU in a 1,000,000-order import). The fill, a new
    statement with a new snapshot, reads every member locked: their latest committed
    counters, which no other transaction can change before this one ends."""
    o, m = ck.orders.c, t.members
    customers: Any = select(o.customer_id).where(in_batch, o.status == "paid")
    if waiting is None:  # the import's first batch (or no import): every member is new
        query = select(m.c.id).where(m.c.program_id == program_id, m.c.customer_id.in_(customers))
        _without_nested_loops(connection, query.with_for_update(of=m))
        return
    seen = select(waiting.c.customer_id).where(waiting.c.customer_id == o.customer_id)
    with _hash_joins(connection):  # (the planner would probe the pending rows per order)
        fresh = sorted(set(connection.scalars(customers.where(~seen.exists()))))
    for start in range(0, len(fresh), 5_000):  # few after the first batches: by the index
        chunk = fresh[start : start + 5_000]
        query = select(m.c.id).where(m.c.program_id == program_id, m.c.customer_id.in_(chunk))
        connection.execute(query.with_for_update(of=m))


@contextlib.contextmanager
def _hash_joins(connection: Any) -> Iterator[None]:
    """PostgreSQL: no nested loops in the statements run inside (see
    :func:`_without_nested_loops`); the setting is restored after them."""
    if connection.dialect.name != "postgresql":
        yield
        return
    was = connection.scalar(text("SELECT current_setting('enable_nestloop')"))
    connection.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    yield
    # (a failed statement rolls the transaction or savepoint back, and the setting with it)
    connection.execute(text("SELECT set_config('enable_nestloop', :was, true)"), {"was": was})


def _without_nested_loops(connection: Any, statement: Any) -> int:
    """Run a statement joining the batch to its members (the fill, the balance update);
    on PostgreSQL with the members joined by hash, not looked up one by one: each batch
    of an import updates its members again in the same transaction, and every row
    version it wrote stays in the indexes until it commits, so an index look-up checks
    one more version per batch (0.5 s of a late 50,000-order batch's 1.4 s fill, 0.45 s
    of its balance update's join; reading all versions once: 0.05 s, the hash join of
    the update 0.18 s). The planner, which expects a handful of batch rows, would pick
    the look-ups."""
    with _hash_joins(connection):
        return int(connection.execute(statement).rowcount)


def _inputs(rows: Any, dialect: str) -> SimpleNamespace:
    return SimpleNamespace(
        c=SimpleNamespace(
            units=_units(rows.c.amount, dialect),
            channel=rows.c.channel,
            tier=rows.c.tier,
            occurred_at=rows.c.occurred_at,
            seq=rows.c.count0 + rows.c.n,
        )
    )


def take_sequential(connection: Any, p: Plan) -> set[int]:
    """Remove the members who must earn order by order from the scratch table; their
    customer ids (see :func:`fill`)."""
    b = p.scratch
    return take(
        connection,
        p,
        set(connection.scalars(select(b.c.customer_id).where(b.c.sequential).distinct())),
    )


def take(connection: Any, p: Plan, customers: set[int]) -> set[int]:
    """Remove these customers' orders from the scratch table (they earn order by order)."""
    if customers:
        b = p.scratch
        connection.execute(delete(b).where(b.c.customer_id.in_(sorted(customers))))
    return customers


def write_ledger(
    connection: Any, program_id: int, p: Plan, now: dt.datetime, defer: HookContext | None = None
) -> None:
    """One INSERT ... SELECT per rule (rows with points only), then the members' totals:
    with ``defer`` (an import's batch) added to its transaction's pending counters
    (:mod:`crmkit_loyalty.pending`), written to the members before it commits."""
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
            b.c.customer_id,
            func.count().label("orders"),
            func.sum(total).label("points"),
            func.sum(b.c.spend).label("spend"),
        )
        .group_by(b.c.member_id, b.c.customer_id)
        .subquery()
    )
    if defer is not None:
        pending.add(defer, sums)
        return
    m = t.members
    _without_nested_loops(
        connection,
        update(m)
        .where(m.c.id == sums.c.member_id)
        .values(
            balance=m.c.balance + sums.c.points,
            orders_count=m.c.orders_count + sums.c.orders,
            spend_bound=m.c.spend_bound + sums.c.spend,  # NULL (unknown) stays NULL
        ),
    )


def upgrades(connection: Any, prog: Program, p: Plan) -> list[TierChange]:
    """The upgrades the batch's orders triggered (spend or orders measure), in order."""
    b = p.scratch
    scale = SCALE if prog.measure == "spend" else 1
    rows = connection.execute(
        select(b.c.member_id, b.c.customer_id, b.c.tier, b.c.upgrade_to, b.c.occurred_at,
               b.c.measure)
        .where(b.c.upgrade_to.is_not(None))
        .order_by(b.c.order_id)
    )  # fmt: skip
    return [
        TierChange(
            r.member_id,
            r.customer_id,
            prog.name,
            r.tier,
            r.upgrade_to,
            r.occurred_at,
            "upgrade",
            Decimal(int(r.measure)) / scale,
        )  # fmt: skip
        for r in rows
    ]


def write_upgrades(connection: Any, prog: Program, p: Plan) -> None:
    """:func:`upgrades` written in SQL when no one receives them as records (no listener
    of the tier event, none after the commit): the tier history rows in order, then each
    moving member's tier from its latest. The same rows as
    :func:`crmkit_loyalty.tiers.apply_tier_changes` writes (30,000 upgrades in a
    1,000,000-order import: 0.5 s of Python building, converting and sending them)."""
    b, history, m = p.scratch, t.tier_changes, t.members
    scale = SCALE if prog.measure == "spend" else 1
    if connection.dialect.name == "sqlite":
        # stored as Money binds it: exact to 4 decimals (a double as near as the text's)
        measure: Any = b.c.measure / literal(float(scale))
    else:
        measure = cast(b.c.measure, Numeric(30, 4)) / scale
    before = connection.scalar(select(func.max(history.c.id))) or 0
    rows = (
        select(b.c.member_id, b.c.tier, b.c.upgrade_to, b.c.occurred_at,
               literal("upgrade", String), measure)
        .where(b.c.upgrade_to.is_not(None))
        .order_by(b.c.order_id)
    )  # fmt: skip
    names = ["member_id", "from_tier", "to_tier", "at", "reason", "measure"]
    if not connection.execute(insert(history).from_select(names, rows)).rowcount:
        return
    # (only this batch's members, which the batch locked: not a row another transaction
    # committed meanwhile)
    moved = select(b.c.member_id).where(b.c.upgrade_to.is_not(None))
    latest = (
        select(func.max(history.c.id))
        .where(history.c.id > before, history.c.member_id.in_(moved))
        .group_by(history.c.member_id)
    )
    connection.execute(
        update(m)
        .where(m.c.id == history.c.member_id, history.c.id.in_(latest))
        .values(tier=history.c.to_tier, tier_since=history.c.at)
    )


def rising(connection: Any, prog: Program, p: Plan) -> set[int]:
    """Points measure: the customers of the batch whose measure after one of its orders
    meets a tier above theirs, with every order earning at their tier before the batch.

    The others' tier holds through the batch, so the points in the scratch table are
    exact for them; these earn order by order (an upgrade changes what later orders
    earn, which changes the measure after them). The measure after an order: the
    member's ledger (earned and reversed points) in the window ending at the order, but
    not rows caused by orders stored after it, and the batch's points up to it.
    """
    b, ledger = p.scratch, t.ledger
    dialect = connection.dialect.name
    ladder = {rank: bar for rank, _, bar in _ladder(prog)}
    top = len(prog.tiers) - 1
    later = b.alias("earlier")
    total: Any = literal(0, BigInteger)
    for i in range(len(p.rule_names)):
        total = total + later.c[f"points_{i}"]
    rank0 = _rank_of(prog, b.c.tier)
    lo = add_months(b.c.occurred_at, -prog.window_months, dialect)
    batch = (
        select(b.c.customer_id, b.c.member_id, b.c.order_id, b.c.occurred_at,
               rank0.label("rank0"), func.sum(total).label("batch"))
        .select_from(b)
        .join(later, and_(later.c.member_id == b.c.member_id, later.c.order_id <= b.c.order_id,
                          later.c.occurred_at > lo, later.c.occurred_at <= b.c.occurred_at))
        .where(or_(b.c.tier.is_(None), b.c.tier != prog.tiers[-1].name))
        .group_by(b.c.customer_id, b.c.member_id, b.c.order_id, b.c.occurred_at, b.c.tier)
        .subquery()
    )  # fmt: skip
    before = (
        select(func.coalesce(func.sum(ledger.c.points), 0))
        .where(
            ledger.c.member_id == batch.c.member_id,
            ledger.c.kind.in_(("earn", "reverse")),
            ledger.c.occurred_at > add_months(batch.c.occurred_at, -prog.window_months, dialect),
            ledger.c.occurred_at <= batch.c.occurred_at,
            or_(ledger.c.order_id.is_(None), ledger.c.order_id <= batch.c.order_id),
        )
        .scalar_subquery()
    )
    # the threshold of the next tier up from the member's (outside the ladder: any measure)
    bar = case(
        *((batch.c.rank0 == rank - 1, ladder[rank]) for rank in range(1, top + 1)),
        else_=None,
    )
    outside = batch.c.rank0 < 0
    query = select(batch.c.customer_id).where(or_(outside, before + batch.c.batch >= bar))
    return set(connection.scalars(query.distinct()))


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
