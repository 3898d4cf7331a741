"""Interaction service: every contact with a customer, on any channel."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import select

from crmkit.core import tables as t
from crmkit.core.bulk import check_values, chunks, existing_values, insert_many, lock_inserts
from crmkit.core.entities import Interaction
from crmkit.core.personal import erased_or_merged
from crmkit.errors import Conflict, NotFound

#: the key an interaction logged without an external id gets (``auto-`` and 32 hex digits)
AUTO_KEY_PREFIX = "auto-"


def auto_key() -> str:
    """A fresh, unique external id for an interaction logged without one."""
    return AUTO_KEY_PREFIX + uuid.uuid4().hex


if TYPE_CHECKING:
    from crmkit.crm import CRM


class InteractionService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    @staticmethod
    def build(data: Interaction | Mapping[str, Any], now: dt.datetime | None = None) -> Interaction:
        """An :class:`Interaction` from a mapping (validated), without storing it."""
        if isinstance(data, Interaction):
            return data
        values = dict(data)
        if values.get("occurred_at") is None:
            values["occurred_at"] = now or dt.datetime.now(dt.UTC)
        return Interaction(**values)

    def log(
        self,
        customer_id: int,
        channel: str,
        *,
        occurred_at: dt.datetime | None = None,
        direction: str = "inbound",
        subject: str = "",
        body: str = "",
        staff: str | None = None,
        external_id: str | None = None,
    ) -> Interaction:
        """Record one interaction; fires ``crmkit_after_interactions_created``.

        ``external_id`` (the id in the system it came from) makes logging it
        again a :class:`Conflict`; without one it gets a unique ``auto-...`` key,
        so an export of it imports back exactly once.
        """
        with self.crm.transaction(actor=staff) as ctx:
            entity = Interaction(
                customer_id=customer_id,
                channel=channel,
                occurred_at=occurred_at or ctx.now,
                direction=direction,
                subject=subject,
                body=body,
                staff=staff,
                external_id=external_id,
            )
            stored = self._insert(ctx, [entity])
            if not stored:
                raise Conflict(
                    f"an interaction with external_id {external_id!r} is already stored; "
                    "choose another external_id"
                )
            return stored[0]

    def log_many(
        self, interactions: Iterable[Interaction | Mapping[str, Any]], *, batch_size: int = 2000
    ) -> int:
        """Record many interactions, one transaction and one event per batch; return how many
        were stored.

        Interactions whose ``external_id`` is already stored are skipped (so
        importing the same file twice stores nothing new); those without one
        get a unique ``auto-...`` key.
        """
        stored = 0
        for batch in chunks((self.build(i) for i in interactions), batch_size):
            with self.crm.transaction() as ctx:
                stored += len(self._insert(ctx, batch))
        return stored

    def _insert(self, ctx: Any, batch: list[Interaction]) -> list[Interaction]:
        """Store ``batch`` (external ids already stored are skipped); return the stored ones."""
        connection = ctx.connection
        keys = [i.external_id for i in batch if i.external_id is not None]
        if len(set(keys)) != len(keys):
            seen: set[str] = set()
            dupes = sorted({k for k in keys if k in seen or seen.add(k)})
            raise Conflict(f"interaction external_id {dupes[0]!r} appears twice in the same batch")
        if keys:
            lock_inserts(connection, t.interactions)
            existing = existing_values(connection, t.interactions.c.external_id, keys)
            if existing:
                batch = [i for i in batch if i.external_id not in existing]
        if not batch:
            return []
        for interaction in batch:
            if interaction.external_id is None:
                interaction.external_id = auto_key()
        rows = [{k: v for k, v in attrs.asdict(i).items() if k != "id"} for i in batch]
        for row in rows:
            check_values(t.interactions, row)
        ids = {i.customer_id for i in batch}
        if missing := ids - existing_values(connection, t.customers.c.id, ids):
            raise NotFound(
                f"customer {sorted(missing)[0]} not found; interactions need an existing customer"
            )
        if refused := erased_or_merged(connection, ids):  # crm.customers.require_writable
            raise Conflict(refused[min(refused)])
        new_ids = insert_many(connection, t.interactions, rows)
        stored = [attrs.evolve(i, id=n) for i, n in zip(batch, new_ids, strict=True)]
        self.crm.fire(ctx, "crmkit_after_interactions_created", interactions=stored)
        ctx.changes.interactions_created.extend(stored)
        return stored

    def get(self, interaction_id: int) -> Interaction:
        """The interaction with this id; :class:`NotFound` when there is none."""
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.interactions).where(t.interactions.c.id == interaction_id)
            ).first()
        if row is None:
            raise NotFound(f"interaction {interaction_id} not found")
        return Interaction(**row._mapping)

    def list(
        self,
        *,
        customer_id: int | None = None,
        channel: str | None = None,
        staff: str | None = None,
        text: str | None = None,
        direction: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[Interaction]:
        """Interactions, newest first; ``since`` is inclusive, ``until`` exclusive."""
        query = select(t.interactions)
        if direction:
            query = query.where(t.interactions.c.direction == direction)
        if since is not None:
            query = query.where(t.interactions.c.occurred_at >= since)
        if until is not None:
            query = query.where(t.interactions.c.occurred_at < until)
        if customer_id is not None:
            query = query.where(t.interactions.c.customer_id == customer_id)
        if channel:
            query = query.where(t.interactions.c.channel == channel)
        if staff:
            query = query.where(t.interactions.c.staff == staff)
        if text:  # a case-insensitive substring; % and _ are plain characters
            query = query.where(
                t.interactions.c.subject.icontains(text, autoescape=True)
                | t.interactions.c.body.icontains(text, autoescape=True)
            )
        query = query.order_by(
            t.interactions.c.occurred_at.desc(), t.interactions.c.id.desc()
        ).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.crm.reading() as connection:
            return [Interaction(**row._mapping) for row in connection.execute(query)]
