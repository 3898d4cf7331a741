"""Who may do what in loyalty: the plugin's permissions, their default grants, and the
checks and audit entries the service's methods share.

Every public method of :class:`~crmkit_loyalty.service.LoyaltyService` authorises the
current actor (``crm.actor``: a staff member, an API token, a job or the local operator)
before it reads or writes: a member's records with the permission on that customer
(``own``/``team`` scopes: another rep's customer is :class:`~crmkit.plugin.NotFound`),
the programme's configuration and the batch runs with ``loyalty.admin``. Work done on
behalf of a core write (points earned when an order is paid, reversed when it is
refunded, moved in a merge) is part of that write and checks nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from crmkit.plugin import PermissionSpec, Resource

if TYPE_CHECKING:
    from crmkit.plugin import CRM, HookContext

READ = "loyalty.read"
EARN = "loyalty.earn"
REDEEM = "loyalty.redeem"
ADJUST = "loyalty.adjust"
ADMIN = "loyalty.admin"
REPORT = "loyalty.report"

#: the plugin's permissions and which default roles hold them (``admin`` holds all)
PERMISSIONS: tuple[PermissionSpec, ...] = (
    PermissionSpec(
        READ,
        "see loyalty members, balances, statements, tiers and the rewards catalogue",
        default_grants={
            "sales_rep": "own",
            "sales_manager": "team",
            "technical_support": "all",
            "complaint_handler": "all",
            "manager": "all",
        },
    ),
    PermissionSpec(
        EARN,
        "enrol customers in loyalty programs and earn points on their paid orders",
        default_grants={"sales_rep": "own", "sales_manager": "team", "manager": "all"},
    ),
    PermissionSpec(
        REDEEM,
        "redeem members' points for rewards",
        default_grants={"sales_rep": "own", "sales_manager": "team", "manager": "all"},
    ),
    PermissionSpec(
        ADJUST,
        "grant or take loyalty points by hand",
        default_grants={"manager": "all"},
    ),
    PermissionSpec(
        ADMIN,
        "load, enable and disable loyalty programs and run expiry, birthdays, tier reviews, "
        "bulk enrolment and catch-up",
        scoped=False,
        default_grants={"manager": "all"},
    ),
    PermissionSpec(
        REPORT,
        "see the loyalty liability report and replay what-if programs",
        scoped=False,
        default_grants={"cost_accounting": "all", "manager": "all"},
    ),
)


def on_customer(crm: CRM, action: str, customer_id: int) -> None:
    """Authorise ``action`` on customer ``customer_id``'s loyalty records (Forbidden without
    the permission, NotFound for a customer outside the actor's scope or none at all)."""
    crm.authorise(action, Resource.customer(customer_id, kind="customer"))


def require(crm: CRM, action: str) -> None:
    """Authorise ``action`` on no record in particular (configuration, batch runs)."""
    crm.authorise(action)


def visible_owners(crm: CRM, action: str) -> frozenset[str] | None:
    """``None`` when the actor sees every member for ``action``, else the customers'
    owners whose members they see (Forbidden without the permission)."""
    return crm.visible_owners(action)


def audit_batch(
    ctx: HookContext,
    action: str,
    entity: str,
    entity_id: Any = None,
    *,
    customer_id: int | None = None,
    counts: Mapping[str, Any],
) -> None:
    """One audit entry for a batch (``{"entries": 12, "points": 480}``), never one per row."""
    ctx.audit(
        action,
        entity,
        entity_id,
        customer_id=customer_id,
        changes={key: [None, value] for key, value in counts.items()},
    )
