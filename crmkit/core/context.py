"""What events receive: the running transaction and what it changed."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection

if TYPE_CHECKING:
    from crmkit.crm import CRM


@attrs.define
class Changes:
    """What one committed write stored, by kind (for ``crmkit_after_commit``)."""

    customers_created: list[Any] = attrs.field(factory=list)
    customers_updated: list[Any] = attrs.field(factory=list)
    interactions_created: list[Any] = attrs.field(factory=list)
    orders_created: list[Any] = attrs.field(factory=list)
    orders_updated: list[Any] = attrs.field(factory=list)
    transitions: list[Any] = attrs.field(factory=list)
    other: dict[str, list[Any]] = attrs.field(factory=dict)

    def __bool__(self) -> bool:
        return any(
            (
                self.customers_created,
                self.customers_updated,
                self.interactions_created,
                self.orders_created,
                self.orders_updated,
                self.transitions,
                any(self.other.values()),
            )
        )


@attrs.define
class HookContext:
    """The context every event receives.

    ``connection`` belongs to the running transaction: plugin reads and writes
    through it commit or roll back together with the change that fired the
    event. ``now`` is the timezone-aware time of the change.
    """

    crm: CRM
    connection: Connection
    now: dt.datetime
    actor: str | None = None
    changes: Changes = attrs.field(factory=Changes)

    @property
    def settings(self) -> dict[str, Any]:
        """All settings by table; yours are ``ctx.settings["<plugin>"]``."""
        return self.crm.settings
