"""Who may do what with complaints: the plugin's permissions, their default grants, and
the checks the service's methods share.

Every public method of :class:`~crmkit_complaints.service.ComplaintService` authorises the
current actor (``crm.actor``) before it reads or writes: a complaint is a record of its
customer, so ``own``/``team`` scopes follow the customer's owner and another rep's
customer's complaint is :class:`~crmkit.plugin.NotFound` (as if there were none). The
customer's own view — the status page and the survey reached with the tracking code —
needs no sign-in: the tracking code is the credential, and it shows only what the
customer may see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crmkit.plugin import PermissionSpec, Resource

if TYPE_CHECKING:
    from crmkit.plugin import CRM, HookContext

READ = "complaints.read"
WRITE = "complaints.write"
ASSIGN = "complaints.assign"
ADMIN = "complaints.admin"
REPORT = "complaints.report"

_SERVICE = {"technical_support": "all", "complaint_handler": "all", "manager": "all"}

#: the plugin's permissions and which default roles hold them (``admin`` holds all)
PERMISSIONS: tuple[PermissionSpec, ...] = (
    PermissionSpec(
        READ,
        "see complaints, their replies, internal notes and SLA figures",
        default_grants={**_SERVICE, "sales_rep": "own", "sales_manager": "team"},
    ),
    PermissionSpec(
        WRITE,
        "log complaints, reply, add internal notes, move them through their stages and "
        "record satisfaction surveys",
        default_grants={**_SERVICE, "sales_rep": "own", "sales_manager": "team"},
    ),
    PermissionSpec(
        ASSIGN,
        "assign complaints to staff members",
        default_grants={"complaint_handler": "all", "sales_manager": "team", "manager": "all"},
    ),
    PermissionSpec(
        ADMIN,
        "set SLA policies, recompute SLA targets and raise SLA alerts",
        scoped=False,
        default_grants={"manager": "all"},
    ),
    PermissionSpec(
        REPORT,
        "see complaint reports: counts, CSAT, NPS, SLA compliance, departments' root causes",
        scoped=False,
        default_grants={"complaint_handler": "all", "manager": "all"},
    ),
)


def require(crm: CRM, action: str) -> None:
    """Authorise ``action`` on no record in particular (Forbidden without it)."""
    crm.authorise(action)


def on_customer(crm: CRM, action: str, customer_id: int) -> None:
    """Authorise ``action`` on a record of customer ``customer_id`` (NotFound outside the
    actor's scope)."""
    crm.authorise(action, Resource.customer(customer_id))


def on_complaint(crm: CRM, action: str, complaint_id: int, customer_id: int) -> None:
    """Authorise ``action`` on complaint ``complaint_id`` of customer ``customer_id``
    (NotFound "no complaint N" outside the actor's scope)."""
    crm.authorise(action, Resource.customer(customer_id, kind="complaint", id=complaint_id))


def visible_owners(crm: CRM, action: str) -> frozenset[str] | None:
    """``None`` when the actor sees every customer's complaints, else the owners whose
    customers' complaints they see (Forbidden without the permission)."""
    return crm.visible_owners(action)


def audit_batch(
    ctx: HookContext, action: str, entity: str, entity_id: Any = None, *,
    counts: Mapping[str, Any],
) -> None:  # fmt: skip
    """One audit entry for a batch run (``{"alerts": 3}``), never one per row."""
    ctx.audit(action, entity, entity_id, changes={k: [None, v] for k, v in counts.items()})
