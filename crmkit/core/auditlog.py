"""Reading the audit log: ``crm.audit_log.list(...)`` (``crmkit audit list``, the 360's
activity part, the personal-data export).

The log itself is written by :mod:`crmkit.core.audit` (``ctx.audit``). Listing it needs
``audit.read``. A customer's entries include those of the records merged into it: a
merge leaves each entry on the id it was recorded for (the history stays true), and the
kept customer's activity and export gather both.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Integer, Select, bindparam, select

from crmkit.core import access, prebuilt
from crmkit.core import tables as t
from crmkit.core.audit import AuditEntry
from crmkit.core.prebuilt import with_optional_limit

if TYPE_CHECKING:
    from crmkit.crm import CRM

#: entries a list returns when no limit is given, and the most it returns
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def customer_ids(connection: Connection, customer_id: int) -> list[int]:
    """``customer_id`` and the ids of the records merged into it (directly or not)."""
    found, todo = [customer_id], [customer_id]
    while todo:
        # customer_merges is indexed by the kept record (customers.merged_into is not)
        m = t.customer_merges.c
        merged = list(connection.scalars(select(m.merged_id).where(m.kept_id.in_(todo))))
        todo = [i for i in merged if i not in found]
        found += todo
    return found


def _customer_ids_query() -> Select[Any]:
    """What :func:`customer_ids` finds for the bound ``customer_id``, as a subquery (a
    recursive CTE over customer_merges): a read of a customer's entries in one round trip
    instead of one per level of merges. UNION, not UNION ALL: it stops on ids found."""
    m = t.customer_merges.c
    start = bindparam("customer_id", type_=Integer)
    tree = select(start.label("id")).cte("merged", recursive=True)
    tree = tree.union(select(m.merged_id).where(m.kept_id == tree.c.id))
    return select(tree.c.id)


# of_customer's statements, built once (crmkit.core.prebuilt)
_OF_CUSTOMER = with_optional_limit(
    select(t.audit_log)
    .where(t.audit_log.c.customer_id.in_(_customer_ids_query()))
    .order_by(t.audit_log.c.id.desc())
)


def entries(
    connection: Connection,
    *,
    customer_ids: list[int] | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    before_id: int | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> list[AuditEntry]:
    """Entries newest first; ``customer_ids`` keeps those concerning one of them, ``actor``
    those by that actor or on their behalf, ``action`` a prefix (``"customer."``)."""
    a = t.audit_log.c
    query = select(t.audit_log).order_by(a.id.desc())
    if limit is not None:
        query = query.limit(limit)
    if customer_ids is not None:
        query = query.where(a.customer_id.in_(customer_ids))
    if actor is not None:
        query = query.where((a.actor == actor) | (a.on_behalf_of == actor))
    if action is not None:
        query = query.where(a.action.startswith(action, autoescape=True))
    if since is not None:
        query = query.where(a.at >= since)
    if before_id is not None:
        query = query.where(a.id < before_id)
    return [_entry(row) for row in connection.execute(query)]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
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


def of_customer(crm: CRM, customer_id: int, *, limit: int | None = None) -> list[AuditEntry]:
    """The customer's entries (and those of records merged into it), newest first; no
    check (the 360 and the export authorise their own actor)."""
    query = _OF_CUSTOMER[limit is not None]
    with crm.reading() as connection:
        rows = prebuilt.rows(connection, query, {"customer_id": customer_id, "limit": limit})
        return [_entry(row) for row in rows]


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    """An entry as JSON-ready data (the CLI's JSON and CSV, the export, the 360)."""
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "on_behalf_of": entry.on_behalf_of,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "customer_id": entry.customer_id,
        "changes": entry.changes,
        "request_id": entry.request_id,
    }


class AuditService:
    """The audit log, read: ``crm.audit_log.list(customer_id=7)``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def list(
        self,
        *,
        customer_id: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        before_id: int | None = None,
        limit: int | None = DEFAULT_LIMIT,
    ) -> list[AuditEntry]:
        """Entries newest first (needs ``audit.read``).

        ``customer_id`` keeps the entries about that customer and the records merged into
        it; ``actor`` those recorded by that actor (a staff username, ``cli:root``,
        ``token:3:wang.lei``) or on their behalf; ``action`` an action or a prefix of
        one (``"customer."``, ``"import"``); ``since`` entries at or after that time;
        ``before_id`` pages (entries older than that id). ``limit`` at most 10,000.
        """
        access.authorise(self.crm, "audit.read")
        if limit is not None:
            limit = max(0, min(int(limit), MAX_LIMIT))
        if since is not None and since.tzinfo is None:
            from crmkit.errors import ValidationError

            raise ValidationError("since must be a timezone-aware time", field="since")
        with self.crm.reading() as connection:
            ids = customer_ids(connection, customer_id) if customer_id is not None else None
            return entries(
                connection,
                customer_ids=ids,
                actor=actor,
                action=action,
                since=since,
                before_id=before_id,
                limit=limit,
            )


__all__ = ["AuditService", "as_dict", "customer_ids", "entries", "of_customer"]
