"""Logging a complaint: validating it, linking (or logging) its interaction, giving VIP
customers the VIP priority, starting its workflow and setting its SLA targets.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, insert, select

from crmkit.plugin import CHANNELS, CrmError, ValidationError, customers
from crmkit_complaints import policies, records, sla
from crmkit_complaints import tables as t
from crmkit_complaints.assignment import department_for
from crmkit_complaints.records import WORKFLOW, Complaint

if TYPE_CHECKING:
    from crmkit.plugin import CRM, Customer, HookContext
    from crmkit_complaints.service import ComplaintService

#: the segmentation plugin's query hook: which of these customers are in its top value tier
VIP_HOOK = "crmkit_segmentation_vip_customers"
#: the customer attribute this plugin declares (boolean)
VIP_ATTRIBUTE = "vip"

logger = logging.getLogger(__name__)


def check_choice(field: str, value: str, allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValidationError(
            f"{field} {value!r} is not valid; use one of: {', '.join(allowed)} "
            f"(configure in [complaints] of crmkit.toml)",
            field=field,
        )


def log(
    svc: ComplaintService,
    customer_id: int,
    *,
    channel: str,
    category: str,
    description: str,
    severity: str = "medium",
    priority: str = "normal",
    assignee: str | None = None,
    interaction_id: int | None = None,
    actor: str | None = None,
    at: dt.datetime | None = None,
) -> Complaint:
    check_choice("channel", channel, CHANNELS)
    check_choice("category", category, svc.settings["categories"])
    check_choice("severity", severity, svc.settings["severities"])
    check_choice("priority", priority, svc.settings["priorities"])
    if not description or not description.strip():
        raise ValidationError("a complaint needs a description", field="description")
    crm = svc.crm
    with crm.transaction(actor=actor, now=at) as ctx:
        customer = crm.customers.require_writable(customer_id)  # not erased, not merged
        if assignee:
            crm.staff.get(assignee)
            crm.staff.refuse_inactive(assignee, "take complaints")
        if actor:
            crm.staff.get(actor)
        if interaction_id is None:
            interaction_id = crm.interactions.log(
                customer_id,
                channel,
                occurred_at=ctx.now,
                subject=f"Complaint: {category}",
                body=description,
                staff=actor,
            ).id
        else:
            _check_interaction(crm, interaction_id, customer_id)
        if is_vip(crm, customer):
            priority = svc.settings["vip_priority"]
        instance = crm.workflows.start(
            WORKFLOW,
            customer_id,
            f"Complaint: {category}",
            owner=assignee,
            actor=actor or ctx.actor.username,
            fields={"category": category, "channel": channel},
        )
        row = {
            "customer_id": customer_id,
            "interaction_id": interaction_id,
            "workflow_instance_id": instance.id,
            "tracking_code": "C-" + secrets.token_urlsafe(12),
            "channel": channel,
            "category": category,
            "department": department_for(svc.settings, category),
            "severity": severity,
            "priority": priority,
            "assignee": assignee,
            "description": description.strip(),
            "stage": instance.stage,
            "created_by": ctx.actor.label,
        }
        complaint = _store(svc, ctx, row)
        ctx.audit(
            "complaints.log",
            "complaint",
            complaint.id,
            customer_id=customer_id,
            after={
                "channel": channel,
                "category": category,
                "severity": severity,
                "priority": complaint.priority,
                "assignee": assignee,
                "stage": complaint.stage,
                "interaction_id": interaction_id,
            },
        )
        return complaint


def _check_interaction(crm: CRM, interaction_id: int, customer_id: int) -> None:
    """An existing interaction given to link: it must be the same customer's."""
    interaction = crm.interactions.get(interaction_id)
    if interaction.customer_id != customer_id:
        raise ValidationError(
            f"interaction {interaction_id} belongs to customer "
            f"{interaction.customer_id}, not {customer_id}",
            field="interaction_id",
        )


def _store(svc: ComplaintService, ctx: HookContext, row: dict[str, Any]) -> Complaint:
    """Insert a new complaint received now, with its policy's targets and due moments."""
    policy = policies.policy_for(svc, row["priority"], row["channel"], ctx.connection)
    row = {
        **row,
        "root_cause": "",
        "resolution": "",
        "received_at": ctx.now,
        "paused_us": 0,
        **policies.targets(policy),
    }
    row.update(sla.dues(svc, Complaint(id=0, **row)))
    new_id = ctx.connection.scalar(insert(t.complaints).returning(t.complaints.c.id), row)
    ctx.changes.other.setdefault("complaints", []).append(new_id)
    return records.get(svc.crm, new_id)


def is_vip(crm: CRM, customer: Customer) -> bool:
    """The ``vip`` attribute, or the segmentation plugin's answer when it is installed.

    Contract (optional): ``crmkit_segmentation_vip_customers(crm, customer_ids)``, declared
    by segmentation with ``firstresult=True``, returns the ids among ``customer_ids`` that
    are in its top value tier. Only that answer counts: no tier name is compared here. No
    hook, no answer (``None``) or an id not in the answer: the attribute alone decides.
    """
    flag = customer.attributes.get(VIP_ATTRIBUTE)
    if flag is True:
        return True
    if flag is not None and flag is not False:  # stored before the attribute was declared
        logger.warning(
            "customer %s: %s; it counts as not VIP (see 'crmkit complaints check')",
            customer.id,
            _vip_problem(flag),
        )
    if not crm.has_hook(VIP_HOOK):
        return False
    found = crm.call(VIP_HOOK, crm=crm, customer_ids=[customer.id])
    if isinstance(found, str) or not isinstance(found, Collection):  # None: no answer
        return False
    return customer.id in found


@attrs.frozen
class VipProblem:
    """A customer whose stored ``vip`` value is not a boolean (stored before complaints
    declared the attribute, e.g. ``maybe``): not treated as VIP until fixed."""

    customer_id: int
    name: str
    value: Any

    @property
    def message(self) -> str:
        return (
            f"customer {self.customer_id} ({self.name}): {_vip_problem(self.value)}; fix it "
            f"with 'crmkit customer edit {self.customer_id} --attr vip=true' (or false), "
            f"or remove it with '--unset-attr vip'"
        )


def _vip_problem(value: Any) -> str:
    return f"attribute vip is {value!r}, not true or false"


def vip_problems(crm: CRM, connection: Any) -> list[VipProblem]:
    """Customers (not erased, not merged) whose stored ``vip`` value is not a boolean.

    Their complaints get the normal priority, and the value is kept as stored: an edit of
    other fields leaves it alone, an edit of ``vip`` must give true or false.
    """
    definition = crm.attribute_definitions.get(VIP_ATTRIBUTE)
    if definition is None:
        return []
    c = customers.c
    query = (
        select(c.id, c.name, c.attributes)
        .where(
            and_(
                c.attributes[VIP_ATTRIBUTE].is_not(None),
                c.erased_at.is_(None),
                c.merged_into.is_(None),
            )
        )
        .order_by(c.id)
    )
    found = []
    for row in connection.execute(query):
        value = (row.attributes or {}).get(VIP_ATTRIBUTE)
        try:
            definition.convert(value)
        except CrmError:
            found.append(VipProblem(row.id, row.name, value))
    return found
