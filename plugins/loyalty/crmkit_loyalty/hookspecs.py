"""The hooks the loyalty plugin publishes, and the records they pass.

Another plugin implements them with ``@crmkit.hookimpl(optionalhook=True)`` (so it still
loads without loyalty); it reads the records' attributes and needs no import of this
package. The events run inside the write that caused them, after its ledger rows are
stored and before the commit: raising rolls the whole write back. Each receives the whole
batch at once (an import of orders: one call per imported batch), and only when there is
something in it.

The records (attrs, frozen; also importable from ``crmkit_loyalty.service``):

* :class:`LedgerEntry`: one ledger row: ``id``, ``program`` (its name), ``member_id``,
  ``customer_id``, ``kind`` (``earn``, ``redeem``, ``expire``, ``adjust``, ``reverse``),
  ``points`` (signed), ``occurred_at``, ``expires_at``, and its cause: ``order_id``,
  ``reward_code``, ``rule``, ``staff``, ``reason``.
* :class:`TierChange`: ``member_id``, ``customer_id``, ``program``, ``from_tier``,
  ``to_tier``, ``at``, ``reason`` (``"upgrade"``: a threshold was met; ``"review"``: the
  periodic review) and ``measure`` (the qualifying measure, a Decimal).

The same events are also listed for ``crmkit_after_commit`` in ``changes.other`` under
``points_earned``, ``points_redeemed``, ``points_expired`` and ``tier_changed``: react
there to what must happen only once the write is durable (a message to the customer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crmkit.plugin import hookspec
from crmkit_loyalty.records import LedgerEntry, TierChange

if TYPE_CHECKING:  # for annotations only
    from crmkit.plugin import HookContext

__all__ = [
    "RENAMED_HOOKS",
    "EarnRuleFactory",
    "LedgerEntry",
    "TierChange",
    "crmkit_loyalty_after_points_earned",
    "crmkit_loyalty_after_points_expired",
    "crmkit_loyalty_after_points_redeemed",
    "crmkit_loyalty_after_tiers_changed",
    "crmkit_loyalty_register_earn_rule_types",
]

#: Implementations under the old names still work, with a ``DeprecationWarning``, until
#: crmkit API 1.3.
RENAMED_HOOKS: dict[str, str] = {
    "crmkit_loyalty_points_earned": "crmkit_loyalty_after_points_earned",
    "crmkit_loyalty_points_redeemed": "crmkit_loyalty_after_points_redeemed",
    "crmkit_loyalty_points_expired": "crmkit_loyalty_after_points_expired",
    "crmkit_loyalty_tier_changed": "crmkit_loyalty_after_tiers_changed",
}

#: ``factory(table)``: builds an earn rule from its TOML table (a dict, ``type`` included)
EarnRuleFactory = Callable[[Mapping[str, Any]], Any]


@hookspec
def crmkit_loyalty_register_earn_rule_types() -> dict[str, EarnRuleFactory]:
    """Contribute earn-rule types usable as ``[[earn]] type = "<name>"`` in programs.

    When: the first time a program is parsed in an open CRM (loading, reading or earning).
    Transaction: none. Returns: ``{type_name: factory}``; ``factory(table)`` receives the
    rule's TOML table and returns an object with ``bonus(order, member) -> int`` (fixed
    points for an order; ``member`` is a :class:`crmkit_loyalty.rules.MemberView` with
    ``id``, ``customer_id``, ``tier``, ``orders_count`` (earning orders before this one)
    and ``enrolled_at``) and/or ``multiplier(order, category) -> Decimal`` (multiplies
    spend points of the order's part in ``category``), and optionally a ``name`` attribute
    written as the cause in the ledger (rules that award points need distinct names).
    Raise ``ValueError`` for a bad table: the error names the file and the rule
    (``earn[3]``). A type named like a built-in one (``spend``, ``campaign``,
    ``nth_order``, ``signup``, ``birthday``, ``referral``) replaces it.

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_register_earn_rule_types():
            return {"weekend": WeekendBonus.from_dict}
    """


@hookspec
def crmkit_loyalty_after_points_earned(ctx: HookContext, entries: Sequence[LedgerEntry]) -> None:
    """Points were earned: on paid orders, sign-up, birthday and referral bonuses.

    When: after the earn rows are written: an order paid (a bulk import: once per chunk
    of its batches, up to 200,000 orders, one call per program), an enrolment with a
    sign-up bonus, a birthday run.
    Transaction: the write that earned them; raise to roll it back. ``entries`` are
    :class:`LedgerEntry` of kind ``earn`` (``order_id`` and ``rule`` name the cause).
    Returns: nothing. Replaces ``crmkit_loyalty_points_earned`` (deprecated).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_after_points_earned(ctx, entries):
            big = [e for e in entries if e.points >= 1000]
            ctx.connection.execute(audit.insert(), [{"customer_id": e.customer_id,
                                                      "points": e.points} for e in big])
    """


@hookspec
def crmkit_loyalty_after_points_redeemed(ctx: HookContext, entries: Sequence[LedgerEntry]) -> None:
    """Points were spent on a reward.

    When: after a redemption's ledger row is written and the reward's stock counted.
    Transaction: the redemption's; raise to refuse it (nothing is spent). ``entries``:
    one :class:`LedgerEntry` of kind ``redeem`` with ``reward_code`` and negative
    ``points``. Returns: nothing. Replaces ``crmkit_loyalty_points_redeemed`` (deprecated).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_after_points_redeemed(ctx, entries):
            for e in entries:
                ctx.connection.execute(vouchers.insert().values(
                    customer_id=e.customer_id, reward=e.reward_code, at=e.occurred_at))
    """


@hookspec
def crmkit_loyalty_after_points_expired(ctx: HookContext, entries: Sequence[LedgerEntry]) -> None:
    """Points expired.

    When: after an expiry run (``crmkit loyalty expire --as-of``, ``service.expire``)
    wrote its rows: one call for the whole run, over every program it expired. Transaction:
    the expiry run's; raise to roll the run back. ``entries``: :class:`LedgerEntry` of kind
    ``expire``, one per member and program, negative ``points``. Returns: nothing. Replaces
    ``crmkit_loyalty_points_expired`` (deprecated).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_after_points_expired(ctx, entries):
            lost = sum(-e.points for e in entries)
            ctx.connection.execute(kpis.insert().values(day=ctx.now.date(), expired=lost))
    """


@hookspec
def crmkit_loyalty_after_tiers_changed(ctx: HookContext, changes: Sequence[TierChange]) -> None:
    """Members changed tier.

    When: an upgrade as soon as a threshold is met (``reason`` ``"upgrade"``, inside the
    order write that met it, after the points-earned event), or up or down at the periodic
    review (``reason`` ``"review"``, ``crmkit loyalty review-tiers``). Transaction: the
    write that changed them; raise to roll it back. ``changes``: :class:`TierChange`
    records, the members' rows already moved. Returns: nothing. Replaces
    ``crmkit_loyalty_tier_changed`` (deprecated).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_loyalty_after_tiers_changed(ctx, changes):
            for c in changes:
                if c.reason == "upgrade":
                    ctx.connection.execute(outbox.insert().values(
                        customer_id=c.customer_id, text=f"Welcome to {c.to_tier}!"))
    """
