"""Personal data: a person's export (core and every plugin) and erasure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import delete, update

from crmkit.core import tables as t
from crmkit.core.entities import Customer
from crmkit.core.serialize import jsonable
from crmkit.errors import CrmError

if TYPE_CHECKING:
    from crmkit.crm import CRM


def export(crm: CRM, customer_id: int) -> dict[str, Any]:
    """Everything held on a customer, core and plugins, as JSON-ready data."""

    with crm.transaction() as ctx:
        customer = crm.customers.get(customer_id)
        data: dict[str, Any] = {
            "customer": attrs.asdict(customer),
            "contacts": [attrs.asdict(c) for c in crm.customers.contacts(customer_id)],
            "interactions": [
                attrs.asdict(i) for i in crm.interactions.list(customer_id=customer_id, limit=None)
            ],
            "orders": [
                attrs.asdict(o) for o in crm.orders.list(customer_id=customer_id, limit=None)
            ],
            "workflows": [
                {
                    **attrs.asdict(w),
                    "history": [attrs.asdict(h) for h in crm.workflows.history(w.id)],
                }
                for w in crm.workflows.list(customer_id=customer_id)
            ],
            "plugins": {},
        }
        # called one by one so each part is filed under the plugin that gave it
        for impl in crm.pm.hook.crmkit_export_personal_data.get_hookimpls():
            try:
                part = impl.function(ctx=ctx, customer=customer)
            except Exception as exc:
                raise CrmError(
                    f"plugin {impl.plugin_name!r} failed to export customer {customer_id}: {exc}"
                ) from exc
            if part:
                data["plugins"][impl.plugin_name] = part
        return jsonable(data)


def erase(crm: CRM, customer_id: int, *, actor: str | None = None) -> Customer:
    """Erase a person's data everywhere; order totals stay (anonymised) for statistics."""
    with crm.transaction(actor=actor) as ctx:
        before = crm.customers.get(customer_id)
        crm.call("crmkit_erase_personal_data", ctx=ctx, customer=before)
        connection = ctx.connection
        connection.execute(delete(t.contacts).where(t.contacts.c.customer_id == customer_id))
        connection.execute(delete(t.consents).where(t.consents.c.customer_id == customer_id))
        connection.execute(
            delete(t.interactions).where(t.interactions.c.customer_id == customer_id)
        )
        connection.execute(
            update(t.workflow_instances)
            .where(t.workflow_instances.c.customer_id == customer_id)
            .values(title="(erased)", fields={})
        )
        connection.execute(
            update(t.customers)
            .where(t.customers.c.id == customer_id)
            .values(
                name=f"erased customer {customer_id}",
                external_id=None,
                email=None,
                phone=None,
                address=None,
                birth_date=None,
                occupation=None,
                city=None,
                attributes={},
                status="inactive",
                updated_at=ctx.now,
                erased_at=ctx.now,
            )
        )
        after = crm.customers.get(customer_id)
        crm.fire(ctx, "crmkit_after_customers_updated", customers=[after], previous=[before])
        ctx.changes.customers_updated.append(after)
        return after
