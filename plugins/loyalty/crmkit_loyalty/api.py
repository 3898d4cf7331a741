"""The loyalty HTTP API, mounted by ``crmkit serve`` under ``/api/v1/loyalty/``.

Request and response shapes are the attrs classes below (the server decodes and
validates bodies and query strings from them, and the OpenAPI document is generated from
them). Handlers only translate: every permission check and audit entry is the service's
(:class:`~crmkit_loyalty.service.LoyaltyService`), so HTTP, the CLI and Python are checked
by the same code. ``POST`` routes honour ``Idempotency-Key`` (the server stores the first
response with the write). Points are whole numbers; money values are decimal strings.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import attrs

from crmkit import plugin
from crmkit.plugin import ApiRequest, ApiResponse, Page, Route
from crmkit_loyalty.records import LedgerEntry, Member
from crmkit_loyalty.service import loyalty

TAGS = ("loyalty",)

# -- shapes -----------------------------------------------------------------------------


@attrs.define
class MemberQuery:
    """Filters of ``GET /members``: one program's members by customer id."""

    #: program name (default: the ``default_program`` setting or the only enabled one)
    program: str | None = None
    #: only members of this tier
    tier: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class ProgramQuery:
    """Which program (default: the ``default_program`` setting or the only enabled one)."""

    program: str | None = None


@attrs.define
class RewardQuery:
    program: str | None = None
    #: also rewards taken out of the catalogue
    include_inactive: bool = False


@attrs.define
class MemberSummary:
    customer_id: int
    name: str
    program: str
    tier: str | None
    balance: int
    orders: int
    enrolled_at: dt.datetime


@attrs.define
class MemberOut:
    customer_id: int
    program: str
    tier: str | None
    tier_since: dt.datetime | None
    balance: int
    #: points a refund took back that were spent already (the ``clawback`` policy)
    clawback_due: int
    orders: int
    referred_by: int | None
    enrolled_at: dt.datetime
    #: the tier's member discount, a fraction ("0.05" = 5 %)
    discount: Decimal


@attrs.define
class BalanceOut:
    customer_id: int
    program: str
    tier: str | None
    balance: int
    #: the balance's money value at the program's point value
    value: Decimal
    discount: Decimal
    #: points that expire within ``expiring_within_days`` unless spent
    expiring_soon: int
    expiring_within_days: int
    clawback_due: int


@attrs.define
class StatementLine:
    id: int
    occurred_at: dt.datetime
    kind: str
    points: int
    #: the running balance after this entry
    balance: int
    cause: str
    expires_at: dt.datetime | None = None


@attrs.define
class StatementOut:
    program: str
    program_title: str
    customer_id: int
    customer_name: str
    tier: str | None
    tier_title: str | None
    discount: Decimal
    balance: int
    value: Decimal
    entries: list[StatementLine]


@attrs.define
class EntryOut:
    """One ledger entry written."""

    id: int | None
    program: str
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


@attrs.define
class EnrolIn:
    customer_id: int
    program: str | None = None
    #: the customer who referred them (a referral bonus on their first paid order)
    referred_by: int | None = None


@attrs.define
class EarnIn:
    """Earn on the member's paid orders that have not earned yet, or on one of them."""

    program: str | None = None
    order_id: int | None = None


@attrs.define
class EarnOut:
    entries: list[EntryOut]
    points: int
    balance: int | None


@attrs.define
class RedeemIn:
    reward: str
    quantity: int = 1
    program: str | None = None


@attrs.define
class AdjustIn:
    """A manual correction: positive grants points, negative takes them (never below 0)."""

    points: int
    reason: str
    program: str | None = None


@attrs.define
class PointsOut:
    entry: EntryOut
    #: the member's balance after the write
    balance: int


@attrs.define
class RewardOut:
    program: str
    code: str
    title: str
    points: int
    stock: int | None
    redeemed: int
    #: how many can still be redeemed (null: unlimited)
    available: int | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    value: Decimal | None
    active: bool


# -- helpers ----------------------------------------------------------------------------


def encode_cursor(after: int) -> str:
    return plugin.encode_cursor({"after": after})


def decode_cursor(cursor: str | None) -> int:
    state = plugin.decode_cursor(cursor, "after")
    return 0 if state is None else plugin.cursor_int(state, "after")


def entry_out(e: LedgerEntry) -> EntryOut:
    return EntryOut(
        id=e.id,
        program=e.program,
        customer_id=e.customer_id,
        kind=e.kind,
        points=e.points,
        occurred_at=e.occurred_at,
        expires_at=e.expires_at,
        order_id=e.order_id,
        reward_code=e.reward_code,
        rule=e.rule,
        staff=e.staff,
        reason=e.reason,
    )


def _member_out(req: ApiRequest, m: Member) -> MemberOut:
    tier = loyalty(req.crm).program(m.program).tier(m.tier)
    return MemberOut(
        customer_id=m.customer_id,
        program=m.program,
        tier=m.tier,
        tier_since=m.tier_since,
        balance=m.balance,
        clawback_due=m.clawback_due,
        orders=m.orders_count,
        referred_by=m.referred_by,
        enrolled_at=m.enrolled_at,
        discount=tier.discount if tier else Decimal(0),
    )


def _program(req: ApiRequest) -> str | None:
    return getattr(req.query, "program", None)


# -- handlers ---------------------------------------------------------------------------


def list_members(req: ApiRequest) -> Page:
    """A program's members by customer id (those of the customers you may see)."""
    query: MemberQuery = req.query or MemberQuery()
    limit = plugin.page_limit(query.limit)
    rows = loyalty(req.crm).members_page(
        program=query.program,
        tier=query.tier,
        after=decode_cursor(query.cursor),
        limit=limit + 1,
    )
    items = [MemberSummary(**row) for row in rows[:limit]]
    cursor = encode_cursor(items[-1].customer_id) if len(rows) > limit else None
    return Page(items, cursor)


def enrol_member(req: ApiRequest) -> ApiResponse:
    """Enrol a customer (a sign-up bonus when the program has one)."""
    body: EnrolIn = req.body
    member = loyalty(req.crm).enrol(
        body.customer_id, program=body.program, referred_by=body.referred_by
    )
    return ApiResponse(
        _member_out(req, member),
        status=201,
        headers={"Location": f"/api/v1/loyalty/members/{member.customer_id}"},
    )


def get_member(req: ApiRequest) -> MemberOut:
    """A member: tier, balance, orders counted, enrolment."""
    member = loyalty(req.crm).member(req.path["customer_id"], program=_program(req))
    return _member_out(req, member)


def get_balance(req: ApiRequest) -> BalanceOut:
    """A member's balance, its value, tier discount and points expiring soon."""
    service = loyalty(req.crm)
    customer_id = req.path["customer_id"]
    m = service.member(customer_id, program=_program(req))
    prog = service.program(m.program)
    tier = prog.tier(m.tier)
    days = req.crm.settings["loyalty"]["expiring_soon_days"]
    return BalanceOut(
        customer_id=customer_id,
        program=m.program,
        tier=m.tier,
        balance=m.balance,
        value=(Decimal(m.balance) * prog.point_value).quantize(Decimal("0.01")),
        discount=tier.discount if tier else Decimal(0),
        expiring_soon=service.expiring(customer_id, days, program=m.program),
        expiring_within_days=days,
        clawback_due=m.clawback_due,
    )


def get_statement(req: ApiRequest) -> StatementOut:
    """Every ledger entry of a member with its cause and the running balance."""
    s = loyalty(req.crm).statement(req.path["customer_id"], program=_program(req))
    return StatementOut(
        **{k: v for k, v in s.items() if k != "entries"},
        entries=[StatementLine(**e) for e in s["entries"]],
    )


def earn(req: ApiRequest) -> EarnOut:
    """Earn on the member's paid orders that have not earned yet (or one order); safe to
    repeat: an order earns once."""
    body: EarnIn = req.body or EarnIn()
    service = loyalty(req.crm)
    customer_id = req.path["customer_id"]
    entries = service.earn(customer_id, order_id=body.order_id, program=body.program)
    memberships = {m.program: m.balance for m in service.memberships(customer_id)}
    program = entries[0].program if entries else body.program
    if program is None and len(memberships) == 1:
        program = next(iter(memberships))
    return EarnOut(
        entries=[entry_out(e) for e in entries],
        points=sum(e.points for e in entries),
        balance=memberships.get(program) if program else None,
    )


def redeem(req: ApiRequest) -> ApiResponse:
    """Spend a member's points on a reward (refused, nothing written, when the balance is
    short or the reward unknown, out of date or out of stock)."""
    body: RedeemIn = req.body
    service = loyalty(req.crm)
    customer_id = req.path["customer_id"]
    entry = service.redeem(customer_id, body.reward, program=body.program, quantity=body.quantity)
    balance = service.balance(customer_id, program=entry.program)
    return ApiResponse(PointsOut(entry=entry_out(entry), balance=balance), status=201)


def adjust(req: ApiRequest) -> ApiResponse:
    """Grant or take points by hand, with a reason (``loyalty.adjust``: managers)."""
    body: AdjustIn = req.body
    service = loyalty(req.crm)
    customer_id = req.path["customer_id"]
    entry = service.adjust(customer_id, body.points, reason=body.reason, program=body.program)
    balance = service.balance(customer_id, program=entry.program)
    return ApiResponse(PointsOut(entry=entry_out(entry), balance=balance), status=201)


def list_rewards(req: ApiRequest) -> list[RewardOut]:
    """The rewards catalogue of a program, cheapest first."""
    query: RewardQuery = req.query or RewardQuery()
    rewards = loyalty(req.crm).rewards(query.program, include_inactive=query.include_inactive)
    return [RewardOut(**attrs.asdict(r), available=r.available) for r in rewards]


def routes() -> list[Route]:
    member = "/members/{customer_id:int}"
    points = (404, 409, 422)
    return [
        Route("GET", "/members", list_members, "List a program's members",
              query=MemberQuery, response=list[MemberSummary], tags=TAGS),
        Route("POST", "/members", enrol_member, "Enrol a customer", body=EnrolIn,
              response=MemberOut, status=201, tags=TAGS, errors=points),
        Route("GET", member, get_member, "A member", query=ProgramQuery,
              response=MemberOut, tags=TAGS, errors=(404,)),
        Route("GET", f"{member}/balance", get_balance, "A member's balance",
              query=ProgramQuery, response=BalanceOut, tags=TAGS, errors=(404,)),
        Route("GET", f"{member}/statement", get_statement, "A member's statement",
              query=ProgramQuery, response=StatementOut, tags=TAGS, errors=(404,)),
        Route("POST", f"{member}/earn", earn, "Earn on a member's paid orders",
              body=EarnIn, response=EarnOut, tags=TAGS, errors=points),
        Route("POST", f"{member}/redeem", redeem, "Redeem points for a reward",
              body=RedeemIn, response=PointsOut, status=201, tags=TAGS, errors=points),
        Route("POST", f"{member}/adjust", adjust, "Grant or take points by hand",
              body=AdjustIn, response=PointsOut, status=201, tags=TAGS, errors=points),
        Route("GET", "/rewards", list_rewards, "The rewards catalogue",
              query=RewardQuery, response=list[RewardOut], tags=TAGS, errors=(404,)),
    ]  # fmt: skip


__all__ = ["routes"]
