"""The loyalty service: programs, members, the points ledger, tiers, rewards, reports.

Every write is one crmkit transaction (``crm.transaction()``); the member's
balance row is updated in the same transaction as the ledger rows, so
``loyalty_members.balance`` always equals the sum of that member's ledger.
Concurrency: writes that spend points lock the member row first (``SELECT ...
FOR UPDATE`` on PostgreSQL; on SQLite crmkit's write transactions start with
``BEGIN IMMEDIATE`` so writers are serialised) and check the balance inside the
transaction, so two redemptions can never spend the same points.

The service is the public API; each part of it lives in a module with one job:
``catalogue`` (programs, rewards), ``membership``, ``earning``, ``reversal``,
``spending`` (redeem, adjust), ``expiry``, ``tiers``, ``reports``, ``whatif``;
``ledger`` writes the ledger and ``records`` holds the returned records. They get
the service's :class:`~crmkit_loyalty.context.LoyaltyContext` (the CRM, its programs
resolved and cached, the events) rather than the service itself.

Permissions (:mod:`crmkit_loyalty.access`): every public method authorises the current
actor (``crm.actor``) first — a member's records with ``loyalty.read``/``earn``/``redeem``/
``adjust`` on that customer (another rep's customer is NotFound), programs and batch runs
with ``loyalty.admin``, the liability and what-if reports with ``loyalty.report``; the
methods the core's events call (``earn_orders``, ``reverse_orders``, ``merge_customers``,
``export``, ``erase``, ``catch_up`` with a ``ctx``) are part of the core's write and check
nothing more. Every write records an audit entry in its transaction (one per batch in the
bulk paths, with counts).
"""

from __future__ import annotations

import datetime as dt
import types
import weakref
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmkit.plugin import Order
from crmkit_loyalty import (
    access,
    catalogue,
    catchup,
    deferred,
    earning,
    expiry,
    membership,
    merging,
    privacy,
    reports,
    reversal,
    spending,
    tiers,
    whatif,
)
from crmkit_loyalty.access import ADJUST, ADMIN, EARN, READ, REDEEM, REPORT
from crmkit_loyalty.context import LoyaltyContext
from crmkit_loyalty.program import Program, load_program_file
from crmkit_loyalty.records import KINDS, LedgerEntry, Member, Reward, TierChange

if TYPE_CHECKING:
    from crmkit.plugin import CRM, HookContext

# the records stay importable from here (older hook docs named crmkit_loyalty.service)
__all__ = [
    "KINDS",
    "LedgerEntry",
    "LoyaltyService",
    "Member",
    "Reward",
    "TierChange",
    "loyalty",
]

_services: weakref.WeakKeyDictionary[Any, LoyaltyService] = weakref.WeakKeyDictionary()


def loyalty(crm: CRM) -> LoyaltyService:
    """The loyalty service of an open CRM (one per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = LoyaltyService(crm)
    return found


class LoyaltyService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        #: what the modules doing the work share (programs, events), given to each call
        self.context = LoyaltyContext(crm)
        #: earn on imported batches in SQL where that is exact (False: always order by order)
        self.set_based = True

    @property
    def rule_types(self) -> dict[str, Any]:
        """Earn-rule types contributed by plugins (the built-in ones are always known)."""
        return self.context.rule_types

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
        access.require(self.crm, ADMIN)
        return catalogue.load_program(self.context, definition, source=source, enabled=enabled)

    def load_program_file(self, path: str | Path, *, enabled: bool = True) -> Program:
        """Read, validate and store a program TOML file (see :meth:`load_program`)."""
        access.require(self.crm, ADMIN)
        return self.load_program(load_program_file(path, self.rule_types), enabled=enabled)

    def set_enabled(self, name: str, enabled: bool) -> None:
        access.require(self.crm, ADMIN)
        catalogue.set_enabled(self.context, name, enabled)

    def program(self, name: str | None = None) -> Program:
        access.require(self.crm, READ)
        return catalogue.program(self.context, name)

    def programs(self) -> list[dict[str, Any]]:
        """Every stored program with its state and member count."""
        access.require(self.crm, READ)
        return catalogue.programs(self.context)

    def rewards(
        self, program: str | None = None, *, include_inactive: bool = False
    ) -> list[Reward]:
        access.require(self.crm, READ)
        return catalogue.rewards(self.context, program, include_inactive=include_inactive)

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
        access.on_customer(self.crm, EARN, customer_id)
        return membership.enrol(
            self.context, customer_id, program=program, referred_by=referred_by, at=at
        )

    def enrol_many(
        self,
        customer_ids: Iterable[int],
        *,
        program: str | None = None,
        at: dt.datetime | None = None,
    ) -> int:
        """Enrol many customers at once (already-enrolled ones are skipped); returns the count."""
        access.require(self.crm, ADMIN)
        return membership.enrol_many(self.context, customer_ids, program=program, at=at)

    def member(self, customer_id: int, *, program: str | None = None) -> Member:
        access.on_customer(self.crm, READ, customer_id)
        return membership.member(self.context, customer_id, program=program)

    def memberships(self, customer_id: int) -> list[Member]:
        """The customer's memberships in every program."""
        access.on_customer(self.crm, READ, customer_id)
        return membership.memberships(self.context, customer_id)

    def member_price(
        self, customer_id: int, amount: Decimal | str | int, *, program: str | None = None
    ) -> dict[str, Any]:
        """The member price of ``amount``: the member's tier discount taken off, to the cent
        (half up). Returns tier, discount (a fraction), the discount amount and the price."""
        access.on_customer(self.crm, READ, customer_id)
        return membership.member_price(self.context, customer_id, amount, program=program)

    def balance(self, customer_id: int, *, program: str | None = None) -> int:
        access.on_customer(self.crm, READ, customer_id)
        return membership.balance(self.context, customer_id, program=program)

    def members(
        self, *, program: str | None = None, tier: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Members with their customer's name, by tier (highest first) then balance (the
        members of the customers the actor may see with ``loyalty.read``)."""
        owners = access.visible_owners(self.crm, READ)
        return membership.members(
            self.context, program=program, tier=tier, limit=limit, owners=owners
        )

    def members_page(
        self,
        *,
        program: str | None = None,
        tier: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` members by customer id, those after customer ``after`` (keyset
        paging for the HTTP API), of the customers the actor may see."""
        owners = access.visible_owners(self.crm, READ)
        return membership.members_page(
            self.context, program=program, tier=tier, after=after, limit=limit, owners=owners
        )

    # -- earning ------------------------------------------------------------------
    def earn_orders(
        self, ctx: HookContext, orders: Sequence[Order], *, replay: bool = False
    ) -> None:
        """Earn points for paid ``orders`` in every enabled program (the orders event's body).

        ``replay=True`` skips orders that already earned (idempotent re-processing);
        on the event path the core guarantees the orders are new.
        """
        earning.earn_orders(self.context, ctx, orders, replay=replay, set_based=self.set_based)

    def reverse_orders(self, ctx: HookContext, orders: Sequence[Order]) -> None:
        """Take back the points refunded or cancelled ``orders`` earned (once per order)."""
        reversal.reverse_orders(self.context, ctx, orders)

    def earn_existing(
        self, *, program: str | None = None, customer_ids: Iterable[int] | None = None
    ) -> int:
        """Earn on stored paid orders that have not earned yet (idempotent); returns orders seen."""
        self._earn_check(customer_ids)
        return earning.earn_existing(self.context, program=program, customer_ids=customer_ids)

    def earn(
        self, customer_id: int, *, order_id: int | None = None, program: str | None = None
    ) -> list[LedgerEntry]:
        """Earn, in one program, on the customer's stored paid orders that have not earned
        yet (or only on ``order_id``): a staff member crediting a purchase the automatic
        earning missed. Idempotent; returns the ledger entries written (none when every
        order earned already, or the customer is no member of a program without
        ``auto_enrol``)."""
        access.on_customer(self.crm, EARN, customer_id)
        return earning.earn_for_customer(
            self.context, customer_id, order_id=order_id, program=program
        )

    def _earn_check(self, customer_ids: Iterable[int] | None) -> None:
        if customer_ids is None:
            access.require(self.crm, ADMIN)
            return
        for customer_id in set(customer_ids):
            access.on_customer(self.crm, EARN, customer_id)

    def award_birthdays(
        self, as_of: dt.date | str, *, program: str | None = None
    ) -> list[LedgerEntry]:
        """Give the birthday bonus to members born in ``as_of``'s month (once a year each)."""
        access.require(self.crm, ADMIN)
        return earning.award_birthdays(self.context, as_of, program=program)

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
        the reward is unknown, inactive, out of its validity dates or out of stock.

        ``actor`` names the staff member an operator records the redemption for; else the
        acting staff member is recorded."""
        access.on_customer(self.crm, REDEEM, customer_id)
        return spending.redeem(
            self.context,
            customer_id,
            reward,
            program=program,
            quantity=quantity,
            actor=actor,
            at=at,
        )

    def adjust(
        self,
        customer_id: int,
        points: int,
        *,
        reason: str,
        staff: str | None = None,
        program: str | None = None,
        at: dt.datetime | None = None,
    ) -> LedgerEntry:
        """A manual correction by a staff member; the reason is required. Never below zero.

        The staff member recorded is the acting one (``crm.actor``); ``staff`` names the
        staff member an operator records it for (a signed-in staff member may name only
        themselves)."""
        access.on_customer(self.crm, ADJUST, customer_id)
        return spending.adjust(
            self.context, customer_id, points, reason=reason, staff=staff, program=program, at=at
        )

    # -- expiry ---------------------------------------------------------------------
    def expire(
        self, as_of: dt.date | dt.datetime | str, *, program: str | None = None
    ) -> list[LedgerEntry]:
        """Expire points whose lots expired by the end of ``as_of`` (all enabled programs,
        or one). Running it again for the same date expires nothing more."""
        access.require(self.crm, ADMIN)
        return expiry.expire(self.context, as_of, program=program)

    def expiring(self, customer_id: int, within_days: int, *, program: str | None = None,
                 now: dt.datetime | None = None) -> int:  # fmt: skip
        """Points of the member that will expire within ``within_days`` unless spent."""
        access.on_customer(self.crm, READ, customer_id)
        return expiry.expiring(self.context, customer_id, within_days, program=program, now=now)

    # -- tiers ----------------------------------------------------------------------
    def review_tiers(
        self, as_of: dt.date | dt.datetime | str, *, program: str | None = None
    ) -> list[TierChange]:
        """The periodic review: every member gets the tier their measure over the window
        ending ``as_of`` meets, down as well as up."""
        access.require(self.crm, ADMIN)
        return tiers.review_tiers(self.context, as_of, program=program)

    def tier_history(self, customer_id: int, *, program: str | None = None) -> list[dict[str, Any]]:
        access.on_customer(self.crm, READ, customer_id)
        return tiers.tier_history(self.context, customer_id, program=program)

    # -- reading ----------------------------------------------------------------------
    def statement(self, customer_id: int, *, program: str | None = None) -> dict[str, Any]:
        """The member's ledger in recording order with a running balance."""
        access.on_customer(self.crm, READ, customer_id)
        return reports.statement(self.context, customer_id, program=program)

    def ledger_sums(self, *, program: str | None = None) -> dict[int, tuple[int, int]]:
        """customer id → (balance row, sum of ledger): they must always be equal."""
        access.require(self.crm, REPORT)
        return reports.ledger_sums(self.context, program=program)

    def liability(self, *, program: str | None = None) -> list[dict[str, Any]]:
        """Outstanding points valued at their redemption value, per program and tier."""
        access.require(self.crm, REPORT)
        return reports.liability(self.context, program=program)

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
        access.require(self.crm, REPORT)
        return whatif.what_if(
            self.context, candidate, since=since, until=until, members_of=members_of
        )

    # -- personal data, merges, catching up ---------------------------------------------
    def export(self, connection: Any, customer_id: int) -> dict[str, Any] | None:
        """The customer's memberships and ledgers, reasons and referral links included."""
        return privacy.export(connection, customer_id)

    def erase(self, connection: Any, customer_id: int) -> int:
        """Drop the customer's personal loyalty data (reasons, referral links); figures stay.
        Idempotent; returns the rows changed."""
        return privacy.erase(connection, customer_id)

    def merge_customers(
        self, ctx: HookContext, kept_id: int, merged_id: int
    ) -> dict[str, int] | None:
        """Join ``merged_id``'s memberships into ``kept_id``'s (ledgers moved, balances the
        ledger sums, tiers recomputed); ``{"programs", "entries", "points"}`` moved."""
        return merging.merge(self.context, ctx, kept_id, merged_id)

    def catch_up(
        self, ctx: HookContext | None = None, since: dt.datetime | None = None
    ) -> str | None:
        """Reconcile with what the core did while the plugin was off (refunds never
        reversed, paid orders never earned, merges, erasures); idempotent. Without
        ``ctx``, in a transaction of its own (``loyalty.admin``). Returns what it did, or
        None."""
        if ctx is None:
            access.require(self.crm, ADMIN)
            with self.crm.transaction() as own:
                return catchup.catch_up(self.context, own, since)
        return catchup.catch_up(self.context, ctx, since)


# every public method sees every order stored and the members' counters whole: the batches
# the running import keeps earn first (crmkit_loyalty.deferred), and what its batches left
# pending is written (crmkit_loyalty.pending); earn_orders is the batch path itself
for _name, _method in list(vars(LoyaltyService).items()):
    # (plain functions only: a property, staticmethod or classmethod is left as it is)
    if (
        isinstance(_method, types.FunctionType)
        and not _name.startswith("_")
        and _name != "earn_orders"
    ):
        setattr(LoyaltyService, _name, deferred.settled(_method))
