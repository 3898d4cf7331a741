"""Entities into the API's response shapes (:mod:`crmkit.server.api.schemas`), and query
values into what the services take."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING, Any

from crmkit.errors import ValidationError
from crmkit.server.api import common
from crmkit.server.api import schemas as s

if TYPE_CHECKING:
    from crmkit.core.audit import AuditEntry
    from crmkit.core.entities import Contact, Customer, Interaction, Order, Staff
    from crmkit.core.workflow import Transition, WorkflowInstance
    from crmkit.crm import CRM


def customer_version(crm: CRM, customer: Customer) -> int:
    """The customer's version (its ETag ``"v<version>"``), bumped by every change."""
    return int(customer.version)


def customer_etag(version: int) -> str:
    return f"v{version}"


def customer_out(crm: CRM, customer: Customer, version: int | None = None) -> s.CustomerOut:
    assert customer.id is not None
    c = customer
    # by position, in CustomerOut's order (a test holds it): a call naming 23 fields
    # costs three times as much, and a page of customers makes fifty
    return s.CustomerOut(
        c.id, c.name, c.type, c.kind, c.status, c.external_id, c.email, c.phone, c.address,
        c.region, c.province, c.city, c.industry, c.occupation, c.birth_date, c.owner,
        dict(c.attributes), dict(c.consents), c.created_at, c.updated_at, c.erased_at,
        c.merged_into, version if version is not None else customer_version(crm, c),
    )  # fmt: skip


def contact_etag(contact: Contact) -> str:
    """The contact's ETag: a hash of every field it has."""
    return common.content_etag(contact)


def contact_out(contact: Contact) -> s.ContactOut:
    assert contact.id is not None
    return s.ContactOut(
        id=contact.id,
        customer_id=contact.customer_id,
        name=contact.name,
        role=contact.role,
        email=contact.email,
        phone=contact.phone,
        etag=contact_etag(contact),
    )


def interaction_out(item: Interaction) -> s.InteractionOut:
    assert item.id is not None
    return s.InteractionOut(
        id=item.id,
        customer_id=item.customer_id,
        channel=item.channel,
        occurred_at=item.occurred_at,
        direction=item.direction,
        subject=item.subject,
        body=item.body,
        staff=item.staff,
        external_id=item.external_id,
    )


def order_out(order: Order) -> s.OrderOut:
    assert order.id is not None
    return s.OrderOut(
        id=order.id,
        customer_id=order.customer_id,
        external_id=order.external_id,
        occurred_at=order.occurred_at,
        amount=order.amount,
        cost=order.cost,
        margin=order.margin,
        currency=order.currency,
        status=order.status,
        channel=order.channel,
        lines=[
            s.OrderLineOut(
                product=line.product,
                quantity=line.quantity,
                price=line.price,
                category=line.category,
            )
            for line in order.lines
        ],
    )


def staff_etag(member: Staff) -> str:
    """The staff member's ETag: a hash of every field they have (never the password)."""
    return common.content_etag(member)


def staff_out(member: Staff) -> s.StaffOut:
    assert member.id is not None
    return s.StaffOut(
        id=member.id,
        username=member.username,
        name=member.name,
        email=member.email,
        roles=list(member.roles),
        department=member.department,
        manager=member.manager,
        active=member.active,
        etag=staff_etag(member),
    )


def instance_values(instance: WorkflowInstance) -> dict[str, Any]:
    assert instance.id is not None
    return {
        "id": instance.id,
        "workflow": instance.workflow,
        "customer_id": instance.customer_id,
        "title": instance.title,
        "stage": instance.stage,
        "created_at": instance.created_at,
        "stage_entered_at": instance.stage_entered_at,
        "value": instance.value,
        "due_on": instance.due_on,
        "owner": instance.owner,
        "fields": dict(instance.fields or {}),
        "closed_at": instance.closed_at,
    }


def instance_out(instance: WorkflowInstance) -> s.WorkflowInstanceOut:
    return s.WorkflowInstanceOut(**instance_values(instance))


def transition_out(transition: Transition) -> s.TransitionOut:
    return s.TransitionOut(
        id=transition.id,
        from_stage=transition.from_stage,
        to_stage=transition.to_stage,
        actor=transition.actor,
        at=transition.at,
        reason=transition.reason,
    )


def audit_out(entry: AuditEntry) -> s.AuditEntryOut:
    return s.AuditEntryOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        actor_kind=entry.actor_kind,
        action=entry.action,
        entity=entry.entity,
        entity_id=entry.entity_id,
        customer_id=entry.customer_id,
        changes=dict(entry.changes or {}),
        request_id=entry.request_id,
        on_behalf_of=entry.on_behalf_of,
    )


def moment(crm: CRM, text: str | None, field: str) -> dt.datetime | None:
    """A query's ISO date or datetime (as the CLI's ``--since``): without an offset it is
    in the configured time zone; a date alone is its midnight there."""
    if text is None or text == "":
        return None
    value = text.strip()
    zone = zoneinfo.ZoneInfo(crm.config.timezone)
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return common.storable(dt.datetime(day.year, day.month, day.day, tzinfo=zone), field)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{field} {text!r} is not an ISO date or datetime such as 2026-03-01T14:30+08:00",
            field=field,
        ) from None
    return common.storable(parsed if parsed.tzinfo else parsed.replace(tzinfo=zone), field)


def choice(value: str | None, field: str, allowed: tuple[str, ...] | list[str]) -> None:
    """A filter value outside its allowed values is a 422 naming them."""
    if value is not None and value not in allowed:
        raise ValidationError(
            f"{field} {value!r} is not valid; use one of: {', '.join(allowed)}", field=field
        )


def customer_id_of(crm: CRM, ref: str | None) -> int | None:
    """A customer filter given as id or external id (NotFound when there is none)."""
    if ref is None or ref == "":
        return None
    return crm.customers.resolve(ref).id
