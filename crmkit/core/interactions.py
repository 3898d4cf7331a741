"""Interaction service: every contact with a customer, on any channel.

Logging needs ``interactions.write`` on the customer, reading ``interactions.read``
(lists keep the interactions of customers the actor may see). ``staff`` is data (who
handled the contact), not who records it: a staff member may log a call another member
took. Audited as ``interaction.log`` (one entry per interaction) or
``interaction.log_many`` (one per batch).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import bindparam, select

from crmkit.core import access, prebuilt
from crmkit.core import tables as t
from crmkit.core.bulk import check_values, chunks, existing_values, insert_many, lock_inserts
from crmkit.core.entities import Interaction
from crmkit.core.personal import erased_or_merged, refusal, write_state
from crmkit.core.prebuilt import with_optional_limit
from crmkit.errors import Conflict, NotFound

#: the key an interaction logged without an external id gets (``auto-`` and 32 hex digits)
AUTO_KEY_PREFIX = "auto-"


def auto_key() -> str:
    """A fresh, unique external id for an interaction logged without one."""
    return AUTO_KEY_PREFIX + uuid.uuid4().hex


if TYPE_CHECKING:
    from crmkit.crm import CRM


def audited(interaction: Interaction) -> dict[str, Any]:
    """An interaction's values as its audit entry records them."""
    return {
        key: getattr(interaction, key)
        for key in (
            "channel", "direction", "occurred_at", "subject", "body", "staff", "external_id"
        )
    }  # fmt: skip


class InteractionService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    @staticmethod
    def build(data: Interaction | Mapping[str, Any], now: dt.datetime | None = None) -> Interaction:
        """An :class:`Interaction` from a mapping (validated), without storing it."""
        if isinstance(data, Interaction):
            return attrs.evolve(data)  # made again: a field set by assignment is checked
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

        ``staff`` names who handled it; the local operator's write is recorded on their
        behalf (audit ``on_behalf_of``). A staff member logging without ``staff`` is
        recorded as the one who handled it.
        """
        access.require(self.crm, "interactions.write")
        current = self.crm.actor
        if staff is None and not current.is_operator and current.username:
            staff = current.username
        with self.crm.transaction(actor=staff if current.is_operator else None) as ctx:
            owner, refused = self._customer(ctx, customer_id)
            access.authorise(self.crm, "interactions.write", customer_id, owner=owner)
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
            stored = self._insert(ctx, [entity], refused=refused)
            if not stored:
                raise Conflict(
                    f"an interaction with external_id {external_id!r} is already stored; "
                    "choose another external_id"
                )
            done = stored[0]
            ctx.audit(
                "interaction.log",
                "interaction",
                done.id,
                customer_id=customer_id,
                after=audited(done),
            )
            return done

    @staticmethod
    def _customer(ctx: Any, customer_id: int) -> tuple[str | None, dict[int, str]]:
        """The customer's owner and, if it takes no new data, why (one query for what the
        permission check and :meth:`_insert`'s writability check need)."""
        row = write_state(ctx.connection, customer_id)
        if row is None:
            raise NotFound(
                f"customer {customer_id} not found; interactions need an existing customer"
            )
        reason = refusal(customer_id, row.erased_at, row.merged_into)
        return row.owner, {customer_id: reason} if reason else {}

    def log_many(
        self, interactions: Iterable[Interaction | Mapping[str, Any]], *, batch_size: int = 2000
    ) -> int:
        """Record many interactions, one transaction and one event per batch; return how many
        were stored.

        Interactions whose ``external_id`` is already stored are skipped (so
        importing the same file twice stores nothing new); those without one
        get a unique ``auto-...`` key. Needs ``interactions.write`` on every customer of
        the batch (own/team scopes: one query per batch); one audit entry per batch.
        """
        stored = 0
        for batch in chunks((self.build(i) for i in interactions), batch_size):
            with self.crm.transaction() as ctx:
                self._authorise_batch(ctx, batch)
                done = self._insert(ctx, batch)
                if done:
                    ids = [i.id for i in done]
                    ctx.audit(
                        "interaction.log_many",
                        "interaction",
                        changes={"stored": [None, len(ids)], "ids": [None, [min(ids), max(ids)]]},
                    )
                stored += len(done)
        return stored

    def _authorise_batch(self, ctx: Any, batch: list[Interaction]) -> None:
        """``interactions.write`` on each customer of ``batch``: out of scope is NotFound."""
        scope = access.require(self.crm, "interactions.write")
        access.authorise(self.crm, "interactions.write")
        if scope == "all":
            return
        owners = access.visible_owners(self.crm, "interactions.write") or frozenset()
        ids = {i.customer_id for i in batch}
        seen = existing_values(ctx.connection, t.customers.c.id, ids)
        inside = {
            row.id
            for chunk in chunks(iter(sorted(ids)), 5000)
            for row in ctx.connection.execute(
                select(t.customers.c.id).where(
                    t.customers.c.id.in_(chunk), t.customers.c.owner.in_(owners)
                )
            )
        }
        if outside := (ids & seen) - inside:
            raise NotFound(f"no customer {min(outside)}")

    def _store_many(self, ctx: Any, batch: list[Interaction]) -> int:
        """One batch of an import in its transaction: no check, no audit entry of its own."""
        return len(self._insert(ctx, batch))

    def _insert(
        self, ctx: Any, batch: list[Interaction], *, refused: dict[int, str] | None = None
    ) -> list[Interaction]:
        """Store ``batch`` (external ids already stored are skipped); return the stored ones.
        ``refused``: the batch's customers were read in this transaction (they exist), with
        the reasons of those that take no new data; else they are looked up here."""
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
        if refused is None:
            ids = {i.customer_id for i in batch}
            if missing := ids - existing_values(connection, t.customers.c.id, ids):
                raise NotFound(
                    f"customer {sorted(missing)[0]} not found; "
                    "interactions need an existing customer"
                )
            refused = erased_or_merged(connection, ids)  # crm.customers.require_writable
        if refused:
            raise Conflict(refused[min(refused)])
        new_ids = insert_many(connection, t.interactions, rows)
        stored = [attrs.evolve(i, id=n) for i, n in zip(batch, new_ids, strict=True)]
        self.crm.fire(ctx, "crmkit_after_interactions_created", interactions=stored)
        ctx.changes.interactions_created.extend(stored)
        return stored

    def get(self, interaction_id: int) -> Interaction:
        """The interaction with this id; :class:`NotFound` when there is none or it is
        outside the actor's ``interactions.read`` scope."""
        access.require(self.crm, "interactions.read")
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.interactions).where(t.interactions.c.id == interaction_id)
            ).first()
        if row is None:
            raise NotFound(f"interaction {interaction_id} not found")
        access.authorise(
            self.crm, "interactions.read", row.customer_id, kind="interaction", id=interaction_id
        )
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
        """Interactions, newest first; ``since`` is inclusive, ``until`` exclusive. Only
        those of customers the actor may see (``interactions.read``); with
        ``customer_id``, a customer outside the scope is :class:`NotFound`."""
        if customer_id is not None:
            access.authorise(self.crm, "interactions.read", customer_id)
        scoped = access.owners_filter(self.crm, "interactions.read", t.interactions.c.customer_id)
        filtered = direction or since or until or channel or staff or text or offset
        if customer_id is not None and scoped is None and not filtered:
            # one customer's latest (the 360's read): the statement built once
            with self.crm.reading() as connection:
                rows = prebuilt.rows(
                    connection,
                    _OF_CUSTOMER[limit is not None],
                    {"customer_id": customer_id, "limit": limit},
                )
                return [Interaction(**row._asdict()) for row in rows]
        query = select(t.interactions)
        if scoped is not None:
            query = query.where(scoped)
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


# one customer's latest interactions, with and without a limit: what list() builds for
# them, built once (crmkit.core.prebuilt)
_OF_CUSTOMER = with_optional_limit(
    select(t.interactions)
    .where(t.interactions.c.customer_id == bindparam("customer_id"))
    .order_by(t.interactions.c.occurred_at.desc(), t.interactions.c.id.desc())
)
