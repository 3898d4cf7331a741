"""The satisfaction survey after resolution: CSAT 1-5 and likelihood to recommend 0-10.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from crmkit.plugin import Conflict, ValidationError
from crmkit_complaints import records
from crmkit_complaints import tables as t

if TYPE_CHECKING:
    from crmkit_complaints.service import ComplaintService


def survey(
    svc: ComplaintService,
    complaint_id: int,
    *,
    csat: int,
    nps: int,
    comment: str = "",
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    if not isinstance(csat, int) or not 1 <= csat <= 5:
        raise ValidationError(f"CSAT must be a whole number from 1 to 5, got {csat!r}")
    if not isinstance(nps, int) or not 0 <= nps <= 10:
        raise ValidationError(
            f"likelihood to recommend must be a whole number from 0 to 10, got {nps!r}"
        )
    with svc.crm.transaction(now=at) as ctx:
        c = records.lock_writable(ctx, complaint_id)
        if c.resolved_at is None and c.closed_at is None:
            raise ValidationError(
                f"complaint #{complaint_id} is {c.stage}; survey it after resolution"
            )
        if ctx.connection.scalar(
            select(t.surveys.c.complaint_id).where(t.surveys.c.complaint_id == c.id)
        ):
            raise Conflict(f"complaint #{complaint_id} already has a survey")
        values = {
            "complaint_id": c.id,
            "csat": csat,
            "nps": nps,
            "comment": comment,
            "at": ctx.now,
        }
        ctx.connection.execute(insert(t.surveys), values)
        return values
