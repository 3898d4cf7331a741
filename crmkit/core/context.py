"""What events receive: the running transaction and what it changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection

from crmkit.core.actors import Actor

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
    event. ``now`` is the timezone-aware time of the change. ``actor`` is who is acting
    (:class:`crmkit.core.actors.Actor`; ``actor.label`` is the name to store in a record's
    own ``staff``/``actor`` column). Record what you change with :meth:`audit`; work
    to finish once the write is complete goes to :meth:`before_commit`.
    """

    crm: CRM
    connection: Connection
    now: dt.datetime
    actor: Actor = attrs.field(factory=Actor.operator)
    changes: Changes = attrs.field(factory=Changes)
    #: set once an audit entry is recorded; tables written (for the audit safety net)
    audited: bool = False
    written_tables: set[str] = attrs.field(factory=set)
    _before_commit: list[Callable[[HookContext], None]] = attrs.field(factory=list, init=False)
    _before_next_write: list[Callable[[HookContext], None]] = attrs.field(factory=list, init=False)

    def before_commit(self, callback: Callable[[HookContext], None]) -> None:
        """Run ``callback(ctx)`` once, in this transaction, after the write's last event and
        before its commit (API 1.5): e.g. totals a plugin kept per import batch, written
        once per import. An error rolls the whole write back. Callbacks run in the order
        they were given; one given while they run runs too."""
        self._before_commit.append(callback)

    def _run_before_commit(self) -> None:
        """The core calls this just before it commits (crmkit.crm.CRM.transaction)."""
        self._run_before_next_write()
        while self._before_commit:
            self._before_commit.pop(0)(self)

    def before_next_write(self, callback: Callable[[HookContext], None]) -> None:
        """Run ``callback(ctx)`` once, in this transaction, before the next write that
        joins it, or else before it commits (API 1.8): work a plugin keeps from an event
        to do later (e.g. an import's batches, earned together), done before any other
        write (a service method called inside the transaction: an order's status set, a
        merge, an erasure) could change what that work reads. The core's importer stores
        its batches without joining again; each batch's event may keep work for later.
        Callbacks run in the order they were given, before :meth:`before_commit`'s."""
        self._before_next_write.append(callback)

    def _run_before_next_write(self) -> None:
        """The core calls this when a write joins the transaction, and before it commits."""
        while self._before_next_write:
            self._before_next_write.pop(0)(self)

    def audit(
        self,
        action: str,
        entity: str,
        entity_id: Any = None,
        *,
        customer_id: int | None = None,
        before: Any = None,
        after: Any = None,
        changes: Any = None,
    ) -> None:
        """Append an audit entry in this transaction: ``action`` (``"loyalty.adjust"``),
        the ``entity`` kind and id, the customer it concerns (erasure scrubs their entries),
        and either ``before``/``after`` mappings (only differing fields are kept) or
        ``changes`` as ``{field: [before, after]}``. Personal values go in ``changes`` like
        any other; erasure of the customer replaces them with ``"[erased]"``."""
        from crmkit.core import audit

        audit.record(
            self,
            action,
            entity,
            entity_id,
            customer_id=customer_id,
            before=before,
            after=after,
            changes=changes,
        )

    @property
    def settings(self) -> dict[str, Any]:
        """All settings by table; yours are ``ctx.settings["<plugin>"]``."""
        return self.crm.settings
