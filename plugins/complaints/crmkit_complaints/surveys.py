"""The satisfaction survey after resolution: CSAT 1-5 and likelihood to recommend 0-10.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from crmkit.plugin import Conflict, NotFound, ValidationError
from crmkit_complaints import records
from crmkit_complaints import tables as t

if TYPE_CHECKING:
    from crmkit_complaints.service import ComplaintService


def _check_answers(csat: int, nps: int, comment: str) -> None:
    if isinstance(csat, bool) or not isinstance(csat, int) or not 1 <= csat <= 5:
        raise ValidationError(
            f"CSAT must be a whole number from 1 to 5, got {csat!r}", field="csat"
        )
    if isinstance(nps, bool) or not isinstance(nps, int) or not 0 <= nps <= 10:
        raise ValidationError(
            f"likelihood to recommend must be a whole number from 0 to 10, got {nps!r}",
            field="nps",
        )
    if not isinstance(comment, str):
        raise ValidationError("the comment must be text", field="comment")


def _record(ctx: Any, c: Any, csat: int, nps: int, comment: str) -> dict[str, Any]:
    if c.resolved_at is None and c.closed_at is None:
        raise ValidationError(f"complaint #{c.id} is {c.stage}; survey it after resolution")
    if ctx.connection.scalar(
        select(t.surveys.c.complaint_id).where(t.surveys.c.complaint_id == c.id)
    ):
        raise Conflict(f"complaint #{c.id} already has a survey")
    values = {"complaint_id": c.id, "csat": csat, "nps": nps, "comment": comment, "at": ctx.now}
    ctx.connection.execute(insert(t.surveys), values)
    ctx.audit(
        "complaints.survey",
        "complaint",
        c.id,
        customer_id=c.customer_id,
        after={"csat": csat, "nps": nps, "comment": comment},
    )
    return values


def survey(
    svc: ComplaintService,
    complaint_id: int,
    *,
    csat: int,
    nps: int,
    comment: str = "",
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    _check_answers(csat, nps, comment)
    with svc.crm.transaction(now=at) as ctx:
        c = records.lock_writable(ctx, complaint_id)
        return _record(ctx, c, csat, nps, comment)


def survey_by_code(
    svc: ComplaintService,
    tracking_code: str,
    *,
    csat: int,
    nps: int,
    comment: str = "",
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    _check_answers(csat, nps, comment)
    with svc.crm.transaction(now=at) as ctx:
        complaint_id = ctx.connection.scalar(
            select(t.complaints.c.id).where(t.complaints.c.tracking_code == tracking_code)
        )
        if complaint_id is None:
            raise NotFound(
                f"no complaint has tracking code {tracking_code!r}; check the code you received"
            )
        c = records.lock_writable(ctx, complaint_id)
        values = _record(ctx, c, csat, nps, comment)
        return {k: v for k, v in values.items() if k != "complaint_id"}
