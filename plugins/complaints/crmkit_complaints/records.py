"""The complaint records: what the service returns, how stored rows become them, and
reading and locking one complaint row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from sqlalchemy import and_, case, or_, select

from crmkit.plugin import Conflict, NotFound, customers
from crmkit_complaints import tables as t
from crmkit_complaints.hookspecs import ComplaintFacts

WORKFLOW = "complaint"
OPEN_STAGES = ("received", "acknowledged", "investigating", "waiting_on_customer")
#: stages that stop the SLA clock; each stay in one is a row of the pause log
PAUSING = ("waiting_on_customer", "resolved", "closed")
SLA_TARGETS = ("first_response", "resolution")
LEVELS = ("warning", "breach")
DUE_COLUMNS = (
    "first_response_warn_at",
    "first_response_due_at",
    "resolution_warn_at",
    "resolution_due_at",
)


@attrs.define
class Complaint:
    """A complaint as the service hands it to users (other plugins get
    :class:`crmkit_complaints.hookspecs.ComplaintFacts`)."""

    id: int
    customer_id: int
    category: str
    channel: str
    description: str
    tracking_code: str
    severity: str
    priority: str
    stage: str
    received_at: dt.datetime
    department: str | None = None
    assignee: str | None = None
    interaction_id: int | None = None
    workflow_instance_id: int | None = None
    root_cause: str = ""
    resolution: str = ""
    first_response_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    paused_us: int = 0
    paused_since: dt.datetime | None = None
    first_response_target_s: int = 0
    resolution_target_s: int = 0
    warn_ratio: float = 0.75
    clock: str = "business"
    first_response_warn_at: dt.datetime | None = None
    first_response_due_at: dt.datetime | None = None
    resolution_warn_at: dt.datetime | None = None
    resolution_due_at: dt.datetime | None = None
    created_by: str | None = None


@attrs.frozen
class Policy:
    """An SLA policy: targets for complaints of a priority and channel (``*``: any)."""

    priority: str
    channel: str
    first_response_hours: float
    resolution_hours: float
    warn_ratio: float = 0.75
    clock: str = "business"


@attrs.frozen
class Alert:
    """One SLA warning or breach, raised once per complaint, target and level."""

    id: int
    complaint_id: int
    target: str
    level: str
    due_at: dt.datetime
    raised_at: dt.datetime
    assignee: str | None
    manager: str | None
    responsible: str | None = None
    tracking_code: str = ""

    @property
    def recipients(self) -> list[str]:
        """The assignee (or, unassigned, the department's responsible staff member from the
        ``responsible`` setting), then for a breach that person's manager."""
        first = self.assignee or self.responsible or "(unassigned)"
        people = [first]
        if self.level == "breach" and self.manager and self.manager != first:
            people.append(self.manager)
        return people

    @property
    def message(self) -> str:
        what = "first response" if self.target == "first_response" else "resolution"
        verb = "is due" if self.level == "warning" else "was due"
        return (
            f"SLA {self.level}: complaint #{self.complaint_id} {what} {verb} at "
            f"{self.due_at.isoformat(timespec='minutes')}"
        )


def as_complaint(row: Any) -> Complaint:
    """A ``complaints`` row as a :class:`Complaint`."""
    return Complaint(**row._mapping)


def complaint_facts(complaint: Complaint) -> ComplaintFacts:
    """The fields of ``complaint`` other plugins may read (see ``ComplaintFacts``)."""
    return ComplaintFacts(
        **{f.name: getattr(complaint, f.name) for f in attrs.fields(ComplaintFacts)}
    )


def not_found(complaint_id: int) -> NotFound:
    # the same words as a complaint outside the actor's scope: nothing tells them apart
    return NotFound(f"no complaint {complaint_id}")


def lock(ctx: Any, complaint_id: int) -> Complaint:
    """Read a complaint inside a write, locking its row on PostgreSQL (no lost update)."""
    query = select(t.complaints).where(t.complaints.c.id == complaint_id)
    if ctx.connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = ctx.connection.execute(query).first()
    if row is None:
        raise not_found(complaint_id)
    return as_complaint(row)


def lock_writable(ctx: Any, complaint_id: int) -> Complaint:
    """:func:`lock` for a write about the complaint's customer: :class:`Conflict` naming the
    complaint when that customer was erased or merged into another (the core's check)."""
    complaint = lock(ctx, complaint_id)
    try:
        ctx.crm.customers.require_writable(complaint.customer_id)
    except Conflict as exc:
        raise Conflict(f"complaint #{complaint_id} takes no writes: {exc}") from None
    return complaint


def get(crm: Any, complaint_id: int) -> Complaint:
    with crm.reading() as connection:
        row = connection.execute(
            select(t.complaints).where(t.complaints.c.id == complaint_id)
        ).first()
    if row is None:
        raise not_found(complaint_id)
    return as_complaint(row)


def _filtered(
    query: Any,
    owners: frozenset[str] | None,
    *,
    customer_id: int | None = None,
    stage: str | None = None,
    open_only: bool = False,
    department: str | None = None,
    assignee: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    category: str | None = None,
) -> Any:
    c = t.complaints.c
    if owners is not None:  # own/team scope: the complaints of the customers they see
        query = query.where(
            c.customer_id.in_(select(customers.c.id).where(customers.c.owner.in_(sorted(owners))))
        )
    if customer_id is not None:
        query = query.where(c.customer_id == customer_id)
    if stage:
        query = query.where(c.stage == stage)
    if open_only:
        query = query.where(c.stage.in_(OPEN_STAGES))
    for column, value in (
        (c.department, department),
        (c.assignee, assignee),
        (c.priority, priority),
        (c.channel, channel),
        (c.category, category),
    ):
        if value:
            query = query.where(column == value)
    return query


def list_complaints(
    crm: Any,
    *,
    owners: frozenset[str] | None = None,
    limit: int | None = 100,
    **filters: Any,
) -> list[Complaint]:
    query = _filtered(select(t.complaints).order_by(t.complaints.c.id), owners, **filters)
    if limit:
        query = query.limit(limit)
    with crm.reading() as connection:
        return [as_complaint(r) for r in connection.execute(query)]


def next_due(table: Any = None) -> Any:
    """SQL for a complaint's next SLA due moment: the earlier of its first-response and
    resolution due moments (NULL when neither is running)."""
    c = (table if table is not None else t.complaints).c
    first, resolution = c.first_response_due_at, c.resolution_due_at
    return case(
        (first.is_(None), resolution),
        (resolution.is_(None), first),
        (first <= resolution, first),
        else_=resolution,
    )


def due_of(complaint: Complaint) -> dt.datetime | None:
    """The next SLA due moment of ``complaint`` (as :func:`next_due`)."""
    found = [d for d in (complaint.first_response_due_at, complaint.resolution_due_at) if d]
    return min(found) if found else None


def queue(
    crm: Any,
    *,
    owners: frozenset[str] | None = None,
    after: tuple[dt.datetime | None, int] | None = None,
    limit: int = 50,
    **filters: Any,
) -> list[Complaint]:
    c = t.complaints.c
    due = next_due()
    query = _filtered(select(t.complaints), owners, **filters)
    if after is not None:
        last_due, last_id = after
        if last_due is None:  # inside the tail of complaints with nothing due
            query = query.where(due.is_(None), c.id > last_id)
        else:
            query = query.where(
                or_(
                    due.is_(None),
                    due > last_due,
                    and_(due == last_due, c.id > last_id),
                )
            )
    query = query.order_by(due.is_(None), due, c.id).limit(limit)
    with crm.reading() as connection:
        return [as_complaint(r) for r in connection.execute(query)]
