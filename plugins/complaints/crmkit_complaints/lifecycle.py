"""A complaint's lifecycle: moving it through the core workflow ``complaint``, and the
complaint row following every transition (stage, first response, pause log, resolution,
due moments), however the move was made.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, insert, select, update

from crmkit.plugin import TransitionRefused
from crmkit_complaints import records, sla
from crmkit_complaints import tables as t
from crmkit_complaints.records import PAUSING, WORKFLOW, Complaint

if TYPE_CHECKING:
    from crmkit.plugin import HookContext, Transition
    from crmkit_complaints.service import ComplaintService


def move(
    svc: ComplaintService,
    complaint_id: int,
    to_stage: str,
    *,
    actor: str | None = None,
    reason: str = "",
    root_cause: str | None = None,
    resolution: str | None = None,
    at: dt.datetime | None = None,
) -> Complaint:
    with svc.crm.transaction(actor=actor, now=at) as ctx:
        complaint = records.lock_writable(ctx, complaint_id)
        changes: dict[str, Any] = {}
        if root_cause is not None:
            changes["root_cause"] = root_cause
        if resolution is not None:
            changes["resolution"] = resolution
        if to_stage == "resolved" and not (resolution or complaint.resolution):
            raise TransitionRefused(
                f"complaint #{complaint_id} cannot be resolved without a resolution; "
                "give --resolution TEXT"
            )
        if changes:
            ctx.connection.execute(
                update(t.complaints).where(t.complaints.c.id == complaint_id).values(changes)
            )
        svc.crm.workflows.move(
            complaint.workflow_instance_id,
            to_stage,
            actor=actor or ctx.actor.username,  # the stage's roles apply to staff
            reason=reason,
            at=ctx.now,
        )
        after = records.get(svc.crm, complaint_id)
        ctx.audit(
            "complaints.move",
            "complaint",
            complaint_id,
            customer_id=complaint.customer_id,
            before={"stage": complaint.stage, **{k: getattr(complaint, k) for k in changes}},
            after={"stage": after.stage, **changes},
        )
        return after


def on_transitions(
    svc: ComplaintService, ctx: HookContext, transitions: Iterable[Transition]
) -> None:
    for tr in transitions:
        if tr.workflow != WORKFLOW or tr.from_stage is None:
            continue
        query = select(t.complaints).where(t.complaints.c.workflow_instance_id == tr.instance_id)
        if ctx.connection.dialect.name == "postgresql":  # as records.lock: no lost update
            query = query.with_for_update()
        row = ctx.connection.execute(query).first()
        if row is not None:
            _follow(svc, ctx, records.as_complaint(row), tr)


def _follow(svc: ComplaintService, ctx: HookContext, c: Complaint, tr: Transition) -> None:
    """Update complaint ``c`` for one transition of its workflow instance."""
    at = tr.at
    values: dict[str, Any] = {"stage": tr.to_stage}
    if c.paused_since is not None:  # the stay in a pausing stage ends: accrue it
        paused = sla.clock(svc, c.clock).duration(c.paused_since, at)
        values["paused_us"] = c.paused_us + sla.microseconds(paused)
        values["paused_since"] = None
        ctx.connection.execute(
            update(t.pauses)
            .where(and_(t.pauses.c.complaint_id == c.id, t.pauses.c.ended_at.is_(None)))
            .values(ended_at=at)
        )
    if tr.to_stage in PAUSING:  # closed too, so a reopen never counts the quiet time
        values["paused_since"] = at
        ctx.connection.execute(
            insert(t.pauses),
            {"complaint_id": c.id, "stage": tr.to_stage, "started_at": at},
        )
    if c.first_response_at is None:
        values["first_response_at"] = at
    if tr.to_stage == "resolved":
        values["resolved_at"] = at
    elif tr.to_stage == "closed":
        values["closed_at"] = at
    elif tr.from_stage in ("resolved", "closed"):  # reopened
        values["resolved_at"] = None
        values["closed_at"] = None
    updated = attrs.evolve(c, **values)
    values.update(sla.dues(svc, updated))
    ctx.connection.execute(update(t.complaints).where(t.complaints.c.id == c.id).values(values))
