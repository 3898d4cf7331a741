"""Contact persons of organisation customers: edit and remove.

:meth:`CustomerService.add_contact` adds them; :meth:`CustomerService.update_contact`
and :meth:`CustomerService.remove_contact` delegate here. Both go through
``crm.customers.require_writable``: the contacts of an erased customer, or of one
merged into another, are not edited. Values are validated as on adding (a name, an
e-mail address that looks like one) and against the column sizes of the ``contacts``
table (no text longer than its column, no NUL character), so what one backend would
refuse is refused on both, before anything is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy import delete, select

from crmkit.core import access
from crmkit.core import tables as t
from crmkit.core.entities import Contact
from crmkit.errors import NotFound, ValidationError

if TYPE_CHECKING:
    from crmkit.crm import CRM

#: the fields of a contact that can be changed
EDITABLE = ("name", "role", "email", "phone")


def audited(contact: Contact) -> dict[str, Any]:
    """A contact's values as its audit entries record them."""
    return {key: getattr(contact, key) for key in EDITABLE}


def get(crm: CRM, contact_id: int) -> Contact:
    """The contact with this id; :class:`NotFound` when there is none (no check: the
    callers authorise)."""
    with crm.reading() as connection:
        row = connection.execute(select(t.contacts).where(t.contacts.c.id == contact_id)).first()
    if row is None:
        raise NotFound(
            f"contact {contact_id} not found; list a customer's contacts with "
            "'crmkit contact list CUSTOMER'"
        )
    return Contact(**row._mapping)


def update(crm: CRM, contact_id: int, **changes: Any) -> Contact:
    """Change a contact's name, role, email or phone (None clears role, email, phone)."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationError(
            f"a contact has no field {unknown[0]!r}; the fields are {', '.join(EDITABLE)}",
            field=unknown[0],
        )
    access.require(crm, "customers.write")
    with crm.transaction() as ctx:
        before = get(crm, contact_id)
        crm.customers.writable_for(before.customer_id, "customers.write")
        cleaned = {key: _clean(key, value) for key, value in changes.items()}
        after = attrs.evolve(before, **cleaned)  # the entity validates name and email
        if after != before:
            ctx.connection.execute(
                sa.update(t.contacts)
                .where(t.contacts.c.id == contact_id)
                .values({key: getattr(after, key) for key in cleaned})
            )
            ctx.audit(
                "contact.update",
                "contact",
                contact_id,
                customer_id=before.customer_id,
                before=audited(before),
                after=audited(after),
            )
    return after


def remove(crm: CRM, contact_id: int) -> Contact:
    """Delete a contact person; returns what was removed."""
    access.require(crm, "customers.write")
    with crm.transaction() as ctx:
        found = get(crm, contact_id)
        crm.customers.writable_for(found.customer_id, "customers.write")
        ctx.connection.execute(delete(t.contacts).where(t.contacts.c.id == contact_id))
        ctx.audit(
            "contact.remove",
            "contact",
            contact_id,
            customer_id=found.customer_id,
            before=audited(found),
        )
    return found


def _clean(field: str, value: Any) -> Any:
    """``value`` checked against the column: text, no NUL, not longer than its size."""
    if value is None:
        if field == "name":
            raise ValidationError("a contact needs a name", field="name")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"contact {field} must be text, got {value!r}", field=field)
    value = value.strip()
    if "\x00" in value:
        raise ValidationError(f"contact {field} contains a NUL character", field=field)
    size = getattr(t.contacts.c[field].type, "length", None)
    if size is not None and len(value) > size:
        raise ValidationError(
            f"contact {field} is {len(value)} characters long; at most {size} fit", field=field
        )
    if field != "name" and value == "":
        return None  # an empty role, email or phone clears it
    return value
