"""How the core services authorise the current actor (see :mod:`crmkit.core.permissions`).

Every public service method calls :func:`authorise` (or :func:`require` then
:func:`authorise` once it knows the record's customer) at its top, reads included, and
list queries filter by :func:`owners_filter`. A service method that has authorised its
actor runs the rest of its work :func:`trusted`: the service calls it makes on the way
(``customers.update`` reading the customer back, an export reading the orders, an
import storing its batches, a merge reading both records) are not checked again, so one
operation costs one check, and an import needs ``import.run`` only, never a check per
batch or row. Plugins' own services authorise with ``crm.authorise`` as before; this
module's trust covers only the core's services.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, select

from crmkit.core import tables as t
from crmkit.core.permissions import Resource, Scope

if TYPE_CHECKING:
    from crmkit.crm import CRM

#: ids of the CRMs whose core services are inside an authorised operation (this context)
_trusted: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "crmkit_authorised", default=frozenset()
)


def is_trusted(crm: CRM) -> bool:
    """True inside an operation of ``crm`` that already authorised its actor."""
    return id(crm) in _trusted.get()


@contextmanager
def trusted(crm: CRM) -> Iterator[None]:
    """Run the block without checking the actor again (it was authorised already)."""
    token = _trusted.set(_trusted.get() | {id(crm)})
    try:
        yield
    finally:
        _trusted.reset(token)


def require(crm: CRM, action: str) -> Scope:
    """The scope the current actor holds ``action`` at; :class:`Forbidden` when none (no
    database access: call it before looking a record up, so a missing permission is 403
    whether or not the record exists)."""
    if is_trusted(crm):
        return "all"
    return crm.permissions.require(crm.actor, action)


def authorise(
    crm: CRM,
    action: str,
    customer_id: int | None = None,
    *,
    owner: Any = ...,
    kind: str = "customer",
    id: Any = None,  # noqa: A002 - the record's id, as Resource names it
) -> None:
    """Authorise the current actor for ``action`` on the record ``kind``/``id`` of customer
    ``customer_id`` (``owner`` when already known saves the lookup), or on nothing."""
    if is_trusted(crm):
        return
    if customer_id is None and owner is ...:
        crm.authorise(action, None)
        return
    crm.authorise(action, Resource.customer(customer_id, owner=owner, kind=kind, id=id))


def visible_owners(crm: CRM, action: str) -> frozenset[str] | None:
    """``None`` when the actor sees every customer for ``action``, else the owners whose
    customers they see; :class:`Forbidden` without the permission."""
    if is_trusted(crm):
        return None
    return crm.visible_owners(action)


def owners_filter(crm: CRM, action: str, customer_id: Any) -> ColumnElement[bool] | None:
    """A condition keeping the rows whose customer (``customer_id``: the column holding it)
    the actor may see for ``action``; ``None`` when they see all. One ``IN`` on customers'
    owners: ``customer_id IN (SELECT id FROM customers WHERE owner IN (...))``."""
    owners = visible_owners(crm, action)
    if owners is None:
        return None
    return customer_id.in_(select(t.customers.c.id).where(t.customers.c.owner.in_(owners)))


def may(crm: CRM, action: str, customer_id: int | None = None, *, owner: Any = ...) -> bool:
    """True when the actor may do ``action`` (on the customer), without raising."""
    from crmkit.errors import Forbidden, NotFound

    try:
        authorise(crm, action, customer_id, owner=owner)
    except (Forbidden, NotFound):
        return False
    return True
