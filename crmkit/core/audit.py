"""The audit log: every write appends who, when, what, the fields before and after, and
the request, in the write's own transaction (so no write exists without its entry).

Services record precise entries with :meth:`HookContext.audit` (``ctx.audit("customer.update",
"customer", 7, customer_id=7, before={...}, after={...})``); plugins do the same through
their ``ctx``. As a safety net, a transaction that wrote rows but recorded no entry gets
one naming the tables it wrote (action ``"write"``), so even a plugin that forgets leaves a
trace. Bulk imports record one entry per import (the file, the counts), not one per row.

Erasure of a person scrubs the values in their entries (``"[erased]"``), keeping the
skeleton: who did what, when, to which fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection, insert, select, update

from crmkit.core import prebuilt
from crmkit.core import tables as t
from crmkit.core.serialize import jsonable

if TYPE_CHECKING:
    from crmkit.core.context import HookContext

ERASED = "[erased]"

#: Tables whose writes are bookkeeping, not business data: no safety-net entry for them.
BOOKKEEPING = frozenset(
    {"audit_log", "plugin_states", "sessions", "login_failures", "idempotency_keys"}
)

_WRITE = re.compile(
    r'^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE
)


@attrs.frozen
class AuditEntry:
    """One entry of the audit log."""

    id: int
    at: dt.datetime
    actor: str
    actor_kind: str
    action: str
    entity: str
    entity_id: str | None = None
    customer_id: int | None = None
    changes: dict[str, Any] = attrs.field(factory=dict)
    request_id: str | None = None
    on_behalf_of: str | None = None


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{field: [before, after]}`` for the fields that differ (JSON-ready values)."""
    old = jsonable(dict(before or {}))
    new = jsonable(dict(after or {}))
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def record(
    ctx: HookContext,
    action: str,
    entity: str,
    entity_id: Any = None,
    *,
    customer_id: int | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry in ``ctx``'s transaction (see :meth:`HookContext.audit`)."""
    actor = ctx.actor
    values = jsonable(dict(changes)) if changes is not None else diff(before, after)
    prebuilt.write(
        ctx.connection,
        _INSERT,
        {
            "at": ctx.now,
            "actor": actor.name,
            "actor_kind": actor.kind,
            "on_behalf_of": actor.on_behalf_of,
            "action": action,
            "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "customer_id": customer_id,
            "changes": values,
            "request_id": actor.request_id,
        },
    )
    ctx.audited = True


#: the entry's INSERT, built once (crmkit.core.prebuilt)
_INSERT = insert(t.audit_log)


def note_statement(ctx: HookContext, statement: str) -> None:
    """Remember the table a data-changing statement writes (for the safety net)."""
    match = _WRITE.match(statement)
    if match and match.group(1).lower() not in BOOKKEEPING:
        ctx.written_tables.add(match.group(1).lower())


def close(ctx: HookContext) -> None:
    """Before the commit: a transaction that wrote and recorded nothing gets an entry."""
    if ctx.written_tables and not ctx.audited:
        record(ctx, "write", "tables", changes={"tables": [None, sorted(ctx.written_tables)]})


def entries(
    connection: Connection,
    *,
    customer_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries newest first, filtered; ``before_id`` pages (entries older than that id)."""
    a = t.audit_log.c
    query = select(t.audit_log).order_by(a.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(a.customer_id == customer_id)
    if actor is not None:
        # a staff member's own entries, those made through their API tokens
        # ("token:<id>:<username>") and those an operator recorded on their behalf
        query = query.where(
            (a.actor == actor)
            | (a.on_behalf_of == actor)
            | ((a.actor_kind == "token") & a.actor.endswith(f":{actor}", autoescape=True))
        )
    if action is not None:
        query = query.where(a.action.startswith(action, autoescape=True))
    if since is not None:
        query = query.where(a.at >= since)
    if before_id is not None:
        query = query.where(a.id < before_id)
    return [
        AuditEntry(
            id=row.id,
            at=row.at,
            actor=row.actor,
            actor_kind=row.actor_kind,
            action=row.action,
            entity=row.entity,
            entity_id=row.entity_id,
            customer_id=row.customer_id,
            changes=row.changes or {},
            request_id=row.request_id,
            on_behalf_of=row.on_behalf_of,
        )
        for row in connection.execute(query)
    ]


def scrub_customer(connection: Connection, customer_id: int) -> int:
    """Erasure: replace every value in the customer's entries with ``"[erased]"``, keeping
    who did what, when, to which fields. Returns the number of entries scrubbed."""
    a = t.audit_log.c
    rows = connection.execute(select(a.id, a.changes).where(a.customer_id == customer_id)).all()
    for row in rows:
        scrubbed = {
            field: [None if v is None else ERASED for v in values]
            if isinstance(values, list)
            else ERASED
            for field, values in (row.changes or {}).items()
        }
        connection.execute(update(t.audit_log).where(a.id == row.id).values(changes=scrubbed))
    return len(rows)
