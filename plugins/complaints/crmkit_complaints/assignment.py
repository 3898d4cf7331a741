"""Who handles a complaint: the assignee, the department its category routes to, and the
department's responsible staff member who gets the alerts of unassigned complaints.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, literal, null, update

import crmkit.plugin as ck
from crmkit_complaints import records
from crmkit_complaints import tables as t

if TYPE_CHECKING:
    from crmkit_complaints.records import Complaint
    from crmkit_complaints.service import ComplaintService


def department_for(settings: Mapping[str, Any], category: str) -> str | None:
    """The department a category routes to (the ``routing`` setting), or None."""
    return settings["routing"].get(category)


def assign(
    svc: ComplaintService, complaint_id: int, username: str, *, actor: str | None = None
) -> Complaint:
    with svc.crm.transaction(actor=actor) as ctx:
        complaint = records.lock_writable(ctx, complaint_id)
        svc.crm.staff.get(username)
        svc.crm.staff.refuse_inactive(username, "take complaints")
        ctx.connection.execute(
            update(t.complaints).where(t.complaints.c.id == complaint.id).values(assignee=username)
        )
        if complaint.workflow_instance_id:
            svc.crm.workflows.update(complaint.workflow_instance_id, owner=username)
        ctx.audit(
            "complaints.assign",
            "complaint",
            complaint.id,
            customer_id=complaint.customer_id,
            changes={"assignee": [complaint.assignee, username]},
        )
        return records.get(svc.crm, complaint_id)


def responsible_sql(settings: Mapping[str, Any], department: Any) -> Any:
    """SQL for the ``responsible`` setting: department -> username, ``*`` for the rest."""
    table: Mapping[str, str] = settings["responsible"]
    default = table.get("*")
    username = ck.staff.c.username.type
    otherwise = literal(default, username) if default else null()
    whens = [
        (department == name, literal(user, username))
        for name, user in sorted(table.items())
        if name != "*"
    ]
    return case(*whens, else_=otherwise) if whens else otherwise
