"""SLA alerts: raising every warning and breach due by a moment exactly once, the default
notifier (the outbox), and the ``crmkit_complaints_after_sla_alerts_raised`` event.

Functions named like a ComplaintService method are their bodies; their docstrings are on
the service.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, func, insert, literal, null, select

import crmkit.plugin as ck
from crmkit_complaints import tables as t
from crmkit_complaints.access import audit_batch
from crmkit_complaints.assignment import responsible_sql
from crmkit_complaints.records import LEVELS, SLA_TARGETS, Alert

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_complaints.service import ComplaintService

#: the event fired with the new alerts
ALERTS_HOOK = "crmkit_complaints_after_sla_alerts_raised"
ALERT_COLUMNS = [
    "complaint_id",
    "target",
    "level",
    "due_at",
    "raised_at",
    "assignee",
    "manager",
    "responsible",
]


def check_sla(svc: ComplaintService, as_of: dt.datetime) -> list[Alert]:
    if as_of.tzinfo is None:
        raise ck.ValidationError("--as-of needs a time zone, e.g. 2026-11-23T09:00+00:00")
    a = t.sla_alerts
    with svc.crm.transaction(now=as_of) as ctx:
        before = ctx.connection.scalar(select(func.coalesce(func.max(a.c.id), 0)))
        for target in SLA_TARGETS:
            for level in LEVELS:
                ctx.connection.execute(
                    insert(a).from_select(ALERT_COLUMNS, _due(svc, target, level, as_of))
                )
        alerts = _raised_since(ctx, before)
        _notify(svc, ctx, alerts, as_of)
        if alerts:
            audit_batch(
                ctx,
                "complaints.check_sla",
                "sla_alerts",
                None,
                counts={
                    "as_of": as_of.isoformat(),
                    "warnings": sum(1 for a in alerts if a.level == "warning"),
                    "breaches": sum(1 for a in alerts if a.level == "breach"),
                },
            )
        return alerts


def _due(svc: ComplaintService, target: str, level: str, as_of: dt.datetime) -> Any:
    """SELECT of the alert rows of ``target`` and ``level`` due by ``as_of`` and not raised
    yet: the complaint, its due moment, assignee, the responsible fallback when unassigned,
    and the manager of whoever gets it first."""
    c, a, s = t.complaints, t.sla_alerts, ck.staff
    # unassigned complaints go to their department's responsible staff member
    fallback = responsible_sql(svc.settings, c.c.department)
    responsible = case((c.c.assignee.is_(None), fallback), else_=null())
    first = func.coalesce(c.c.assignee, fallback)
    column = c.c[f"{target}_{'warn' if level == 'warning' else 'due'}_at"]
    already = exists().where(
        and_(a.c.complaint_id == c.c.id, a.c.target == target, a.c.level == level)
    )
    return (
        select(
            c.c.id,
            literal(target),
            literal(level),
            c.c[f"{target}_due_at"],
            literal(as_of, a.c.raised_at.type),
            c.c.assignee,
            s.c.manager,
            responsible,
        )
        .select_from(c.outerjoin(s, s.c.username == first))
        .where(and_(column <= as_of, ~already))
    )


def _raised_since(ctx: HookContext, before: int) -> list[Alert]:
    """The alerts stored after id ``before``, per complaint, in a stable order."""
    c, a = t.complaints, t.sla_alerts
    rows = ctx.connection.execute(
        select(a, c.c.tracking_code)
        .join(c, c.c.id == a.c.complaint_id)
        .where(a.c.id > before)
        .order_by(a.c.id)
    ).all()
    return sorted(
        (Alert(**row._mapping) for row in rows),
        key=lambda x: (x.complaint_id, SLA_TARGETS.index(x.target), LEVELS.index(x.level)),
    )


def _notify(
    svc: ComplaintService, ctx: HookContext, alerts: list[Alert], as_of: dt.datetime
) -> None:
    """The default notifier (one outbox row per recipient), then the event."""
    outbox = [
        {"alert_id": al.id, "recipient": who, "message": al.message, "created_at": as_of}
        for al in alerts
        for who in al.recipients
    ]
    if outbox:
        ctx.connection.execute(insert(t.outbox), outbox)
    if alerts and svc.crm.has_hook(ALERTS_HOOK):
        svc.crm.call(ALERTS_HOOK, ctx=ctx, alerts=alerts)
    ctx.changes.other.setdefault("complaints_sla_alerts", []).extend(alerts)
