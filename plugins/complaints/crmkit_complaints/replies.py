"""Talking to the customer: public replies and internal notes, what the customer sees for a
tracking code (no internal notes), and reply proposals from other plugins.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import insert, select, update

from crmkit.plugin import NotFound, ValidationError, staff
from crmkit_complaints import records, sla
from crmkit_complaints import tables as t
from crmkit_complaints.records import WORKFLOW

if TYPE_CHECKING:
    from crmkit_complaints.service import ComplaintService

#: the contribution hook asked for reply proposals
PROPOSALS_HOOK = "crmkit_complaints_reply_proposals"


def reply(
    svc: ComplaintService,
    complaint_id: int,
    body: str,
    *,
    public: bool = True,
    show_author: bool = False,
    actor: str | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    if not body or not body.strip():
        raise ValidationError("a reply needs a text", field="body")
    with svc.crm.transaction(actor=actor, now=at) as ctx:
        c = records.lock_writable(ctx, complaint_id)
        if actor:
            svc.crm.staff.get(actor)
        values = {
            "complaint_id": c.id,
            "at": ctx.now,
            "author": ctx.actor.label,
            "body": body.strip(),
            "public": public,
            "show_author": show_author,
        }
        new_id = ctx.connection.scalar(insert(t.replies).returning(t.replies.c.id), values)
        if public and c.first_response_at is None:
            updated = attrs.evolve(c, first_response_at=ctx.now)
            ctx.connection.execute(
                update(t.complaints)
                .where(t.complaints.c.id == c.id)
                .values(first_response_at=ctx.now, **sla.dues(svc, updated))
            )
        ctx.changes.other.setdefault("complaints_replies", []).append(new_id)
        ctx.audit(
            "complaints.reply" if public else "complaints.note",
            "complaint",
            c.id,
            customer_id=c.customer_id,
            after={"reply_id": new_id, "public": public, "show_author": show_author},
        )
        return {"id": new_id, **values}


def replies(
    svc: ComplaintService, complaint_id: int, *, public_only: bool = False
) -> list[dict[str, Any]]:
    query = select(t.replies).where(t.replies.c.complaint_id == complaint_id)
    if public_only:
        query = query.where(t.replies.c.public.is_(True))
    with svc.crm.reading() as connection:
        rows = connection.execute(query.order_by(t.replies.c.at, t.replies.c.id)).all()
    return [dict(r._mapping) for r in rows]


def status(svc: ComplaintService, tracking_code: str) -> dict[str, Any]:
    with svc.crm.reading() as connection:
        row = connection.execute(
            select(t.complaints).where(t.complaints.c.tracking_code == tracking_code)
        ).first()
    if row is None:
        raise NotFound(
            f"no complaint has tracking code {tracking_code!r}; check the code you received"
        )
    c = records.as_complaint(row)
    definition = svc.crm.workflows.definition(WORKFLOW)
    public = replies(svc, c.id, public_only=True)
    # the display names of the staff who chose to sign their replies (read here, not
    # through the staff service: the customer reading this is nobody's staff member)
    signed = {r["author"] for r in public if r["show_author"] and r["author"]}
    with svc.crm.reading() as connection:
        names = dict(
            connection.execute(
                select(staff.c.username, staff.c.name).where(staff.c.username.in_(signed))
            ).all()
        ) if signed else {}  # fmt: skip
        answered = connection.scalar(
            select(t.surveys.c.complaint_id).where(t.surveys.c.complaint_id == c.id)
        )
    shown = [
        {
            "at": r["at"],
            "author": names.get(r["author"]) if r["show_author"] else None,
            "body": r["body"],
        }
        for r in public
    ]
    resolved = c.resolved_at is not None or c.closed_at is not None
    return {
        "tracking_code": c.tracking_code,
        "category": c.category,
        "stage": c.stage,
        "stage_title": definition.stage(c.stage).title,
        "received_at": c.received_at,
        "resolved_at": c.resolved_at,
        "closed_at": c.closed_at,
        "replies": shown,
        # the satisfaction survey can be answered (resolved, not answered yet)
        "survey_open": resolved and answered is None,
    }


def status_page(svc: ComplaintService, tracking_code: str) -> str:
    return svc.crm.templates.get_template("complaints/status.html").render(
        status=status(svc, tracking_code), stages=svc.crm.workflows.definition(WORKFLOW)
    )


def propose(svc: ComplaintService, complaint_id: int) -> list[dict[str, Any]] | None:
    c = records.get(svc.crm, complaint_id)
    if not svc.crm.has_hook(PROPOSALS_HOOK):
        return None
    batches = svc.crm.call(
        PROPOSALS_HOOK, crm=svc.crm, complaint=records.complaint_facts(c), text=c.description
    )
    found = [p for batch in batches or [] for p in batch or []]
    return sorted(found, key=lambda p: -float(p.get("score", 0)))
