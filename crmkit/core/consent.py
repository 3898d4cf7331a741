"""Consent: each customer's latest answer per purpose, and the history of every change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, bindparam, delete, insert, select

from crmkit.core import access, prebuilt
from crmkit.core import tables as t
from crmkit.core.bulk import chunks
from crmkit.errors import ValidationError

if TYPE_CHECKING:
    from crmkit.core.entities import Customer
    from crmkit.crm import CRM


@attrs.frozen
class ConsentChange:
    """One grant or withdrawal of consent, as ``crm.customers.consent_history`` lists it."""

    purpose: str
    granted: bool
    changed_at: dt.datetime
    source: str | None = None  # where it was given: "web form", "create", "import" ...
    actor: str | None = None  # who recorded it (a staff username), None for the system


def consent_row(
    customer_id: int, purpose: str, granted: bool, now: dt.datetime, source: str | None
) -> dict[str, Any]:
    """One ``consents`` row (the latest answer for ``purpose``); validates the purpose."""
    if not purpose or not isinstance(purpose, str):
        raise ValidationError("consent purpose must be a non-empty name such as 'marketing'")
    return {
        "customer_id": customer_id,
        "purpose": purpose,
        "granted": bool(granted),
        "changed_at": now,
        "source": source,
    }


def set_consent(
    crm: CRM,
    customer_id: int,
    purpose: str,
    granted: bool,
    *,
    source: str | None = None,
    actor: str | None = None,
) -> Customer:
    """Record one answer: replace the latest in ``consents``, append to ``consent_changes``.

    Needs ``customers.write`` on the customer; audited as ``consent.change``
    (``consents.<purpose>`` before and after, and the source). A consent change does not
    bump the customer's ``version`` (the consent history is its own record).
    """
    access.require(crm, "customers.write")
    with crm.transaction(actor=actor) as ctx:
        before = crm.customers.writable_for(customer_id, "customers.write")
        row = consent_row(customer_id, purpose, granted, ctx.now, source or actor)
        ctx.connection.execute(
            delete(t.consents).where(
                and_(t.consents.c.customer_id == customer_id, t.consents.c.purpose == purpose)
            )
        )
        ctx.connection.execute(insert(t.consents), row)
        change = {**row, "source": source, "actor": actor or ctx.actor.label}
        ctx.connection.execute(insert(t.consent_changes), change)
        ctx.audit(
            "consent.change",
            "customer",
            customer_id,
            customer_id=customer_id,
            changes={
                f"consents.{purpose}": [before.consents.get(purpose), bool(granted)],
                "source": [None, source],
            },
        )
        after = crm.customers._get(customer_id)
        crm.fire(ctx, "crmkit_after_customers_updated", customers=[after], previous=[before])
        ctx.changes.customers_updated.append(after)
        return after


def history(crm: CRM, customer_id: int, *, purpose: str | None = None) -> list[ConsentChange]:
    """Every grant and withdrawal by the customer, oldest first (one purpose if given)."""
    if not access.is_trusted(crm):  # a trusted caller (the 360) has the customer already
        crm.customers.get(customer_id)  # customers.read on it
    with crm.reading() as connection:
        if purpose:
            query = _HISTORY.where(t.consent_changes.c.purpose == purpose)
            rows = connection.execute(query, {"customer_id": customer_id}).all()
        else:
            rows = prebuilt.rows(connection, _HISTORY, {"customer_id": customer_id})
        return [ConsentChange(**row._asdict()) for row in rows]


# built once (the 360 reads it on every call): see crmkit.core.customers._GET
_HISTORY = (
    select(
        t.consent_changes.c.purpose,
        t.consent_changes.c.granted,
        t.consent_changes.c.changed_at,
        t.consent_changes.c.source,
        t.consent_changes.c.actor,
    )
    .where(t.consent_changes.c.customer_id == bindparam("customer_id"))
    .order_by(t.consent_changes.c.changed_at, t.consent_changes.c.id)
)


def withdrawn(crm: CRM, purpose: str, customer_ids: Iterable[int] | None = None) -> set[int]:
    """Ids with an explicit withdrawal (``granted = false``) for ``purpose``."""
    query = select(t.consents.c.customer_id).where(
        and_(t.consents.c.purpose == purpose, t.consents.c.granted.is_(False))
    )
    with crm.reading() as connection:
        if customer_ids is None:
            return set(connection.scalars(query))
        found: set[int] = set()
        for chunk in chunks(iter(customer_ids), 5000):
            found |= set(connection.scalars(query.where(t.consents.c.customer_id.in_(chunk))))
        return found
