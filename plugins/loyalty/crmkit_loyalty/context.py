"""What the loyalty service's modules share: the CRM, its programs and the loyalty events.

:class:`~crmkit_loyalty.service.LoyaltyService` creates one :class:`LoyaltyContext` per
CRM and passes it (as ``lc``) to the functions of ``catalogue``, ``membership``,
``earning`` and the other modules, which use only its public methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmkit.plugin import NotFound, ValidationError
from crmkit_loyalty import tables as t
from crmkit_loyalty.program import Program, parse_program

if TYPE_CHECKING:
    from crmkit.plugin import CRM, HookContext
    from crmkit_loyalty.hookspecs import EarnRuleFactory

#: the key under which each event's records are listed in ``ctx.changes.other`` (for
#: ``crmkit_after_commit``): the names the events had before API 1.2, kept
CHANGES_KEYS = {
    "crmkit_loyalty_after_points_earned": "points_earned",
    "crmkit_loyalty_after_points_redeemed": "points_redeemed",
    "crmkit_loyalty_after_points_expired": "points_expired",
    "crmkit_loyalty_after_tiers_changed": "tier_changed",
}


@attrs.define(eq=False)
class LoyaltyContext:
    """The open CRM, its stored programs (each parsed once per stored version), the
    earn-rule types plugins contribute, and the loyalty events."""

    crm: CRM
    # program id -> (the stored version parsed, the Program)
    _parsed: dict[int, tuple[int, Program]] = attrs.field(factory=dict, init=False)
    _rule_types: dict[str, EarnRuleFactory] | None = attrs.field(default=None, init=False)

    # -- programs -------------------------------------------------------------------
    @property
    def rule_types(self) -> dict[str, EarnRuleFactory]:
        """Earn-rule types contributed by plugins (the built-in ones are always known)."""
        if self._rule_types is None:
            found: dict[str, EarnRuleFactory] = {}
            if self.crm.has_hook("crmkit_loyalty_register_earn_rule_types"):
                for batch in self.crm.call("crmkit_loyalty_register_earn_rule_types"):
                    found.update(batch or {})
            self._rule_types = found
        return self._rule_types

    def program_from_row(self, row: Any) -> Program:
        """The Program of a ``loyalty_programs`` row (parsed again only when its version moved)."""
        cached = self._parsed.get(row.id)
        if cached is not None and cached[0] == row.version:
            return cached[1]
        program = parse_program(row.definition, source=row.source, rule_types=self.rule_types)
        self._parsed[row.id] = (row.version, program)
        return program

    def programs(self, connection: Any, *, enabled_only: bool = True) -> list[tuple[int, Program]]:
        """``[(program id, Program), ...]`` of the stored programs (enabled ones only), by id."""
        query = select(t.programs).order_by(t.programs.c.id)
        if enabled_only:
            query = query.where(t.programs.c.enabled.is_(True))
        return [(row.id, self.program_from_row(row)) for row in connection.execute(query)]

    def resolve(self, connection: Any, name: str | None) -> tuple[int, Program]:
        """The program named ``name``; without a name, the ``default_program`` setting, or
        else the only enabled program. NotFound / ValidationError say what to do."""
        if name:
            row = connection.execute(select(t.programs).where(t.programs.c.name == name)).first()
            if row is None:
                known = list(connection.scalars(select(t.programs.c.name)))
                raise NotFound(
                    f"loyalty program {name!r} not found; known programs: "
                    + (", ".join(known) or "(none: crmkit loyalty programs load FILE)")
                )
            return row.id, self.program_from_row(row)
        default = self.crm.settings.get("loyalty", {}).get("default_program") or None
        if default:
            return self.resolve(connection, default)
        enabled = self.programs(connection)
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

    # -- events ---------------------------------------------------------------------
    def listened(self, name: str) -> bool:
        """Does anyone receive event ``name`` (its hook, or after-commit through ctx.changes)?"""
        return self.crm.has_hook(name) or self.crm.has_hook("crmkit_after_commit")

    def fire(self, ctx: HookContext, name: str, **kwargs: Any) -> None:
        """Fire loyalty event ``name`` (one of :data:`CHANGES_KEYS`) inside ``ctx``'s
        transaction and list its records in ``ctx.changes.other``; nothing when the one
        keyword argument (the records) is empty."""
        values = next(iter(kwargs.values()))
        if values and self.crm.has_hook(name):
            self.crm.fire(ctx, name, **kwargs)
        if values:
            ctx.changes.other.setdefault(CHANGES_KEYS[name], []).extend(values)
