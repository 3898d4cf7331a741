"""The SLA clock: due moments, the pause log, and measuring the time a complaint accrued.

Time counted toward a target ("accrued") is working time on the complaint's clock (the
business calendar or the wall clock) from receipt, minus its pauses. A complaint stores
its targets, its paused time and the due moments that follow from them: a due moment is
``add(received, target + paused)``, NULL when the target is met or the clock stopped.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmkit_complaints import tables as t
from crmkit_complaints.businesshours import Calendar
from crmkit_complaints.records import DUE_COLUMNS, Complaint

if TYPE_CHECKING:
    from crmkit_complaints.service import ComplaintService

ZERO = dt.timedelta(0)

#: a complaint's pause log: ``[(started_at, ended_at or None, stage)]``, ordered by start
PauseLog = list[tuple[dt.datetime, dt.datetime | None, str]]


def clock(svc: ComplaintService, name: str) -> Calendar:
    return Calendar.always() if name == "wall" else svc.calendar


def dues(svc: ComplaintService, c: Complaint) -> dict[str, dt.datetime | None]:
    """Warning and due moments of both targets (None when met, paused or closed)."""
    running = c.paused_since is None and c.closed_at is None
    paused = dt.timedelta(microseconds=c.paused_us)
    names, amounts = [], []
    for target, done in (
        ("first_response", c.first_response_at),
        ("resolution", c.resolved_at),
    ):
        if running and done is None:
            seconds = getattr(c, f"{target}_target_s")
            warn = dt.timedelta(seconds=round(seconds * c.warn_ratio))
            names += [f"{target}_warn_at", f"{target}_due_at"]
            amounts += [warn + paused, dt.timedelta(seconds=seconds) + paused]
    out: dict[str, dt.datetime | None] = dict.fromkeys(DUE_COLUMNS)
    if names:  # one walk over the calendar for all four moments
        moments = clock(svc, c.clock).add_many(c.received_at, amounts)
        out.update(zip(names, moments, strict=True))
    return out


def pause_log(
    conn: Any, first_id: int, last_id: int, *, ended_only: bool = False
) -> dict[int, PauseLog]:
    """Pause rows of complaints ``first_id..last_id``: ``{id: [(start, end, stage)]}``."""
    p = t.pauses
    query = (
        select(p.c.complaint_id, p.c.started_at, p.c.ended_at, p.c.stage)
        .where(p.c.complaint_id.between(first_id, last_id))
        .order_by(p.c.complaint_id, p.c.started_at, p.c.id)
    )
    if ended_only:
        query = query.where(p.c.ended_at.is_not(None))
    found: dict[int, PauseLog] = defaultdict(list)
    for complaint_id, started, ended, stage in conn.execute(query):
        found[complaint_id].append((started, ended, stage))
    return found


def durations(svc: ComplaintService, c: Complaint) -> dict[str, float | None]:
    with svc.crm.reading() as connection:
        log = pause_log(connection, c.id, c.id).get(c.id, [])
    found = measure(svc, c, log)
    return {k: v for k, v in found.items() if k.endswith("_h")}


def measure(
    svc: ComplaintService,
    c: Complaint,
    log: Iterable[tuple[dt.datetime, dt.datetime | None, str]],
    as_of: dt.datetime | None = None,
) -> dict[str, Any]:
    cal = clock(svc, c.clock)
    log = list(log)

    def accrued(until: dt.datetime) -> dt.timedelta:
        total = cal.duration(c.received_at, until)
        for start, end, _ in log:
            a, b = max(start, c.received_at), until if end is None else min(end, until)
            if b > a:
                total -= cal.duration(a, b)
        return total

    if as_of is None:
        responded, resolved = c.first_response_at, c.resolved_at
    else:
        responded = _at_or_before(c.first_response_at, as_of)
        resolved = _resolved_as_of(log, as_of)
    out: dict[str, Any] = {}
    for name, end in (("first_response", responded), ("resolution", resolved)):
        target = dt.timedelta(seconds=getattr(c, f"{name}_target_s"))
        used = accrued(end) if end is not None else None
        out[f"{name}_business_h"] = None if used is None else _hours(used)
        out[f"{name}_wall_h"] = None if end is None else _hours(end - c.received_at)
        if as_of is not None:
            late = used > target if used is not None else accrued(as_of) >= target
            out[f"{name}_breached"] = late
    out["open"] = resolved is None
    return out


def microseconds(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _at_or_before(moment: dt.datetime | None, as_of: dt.datetime) -> dt.datetime | None:
    return moment if moment is not None and moment <= as_of else None


def _resolved_as_of(
    log: Iterable[tuple[dt.datetime, dt.datetime | None, str]], as_of: dt.datetime
) -> dt.datetime | None:
    """When the resolution in force at ``as_of`` was given (None when not resolved then)."""
    resolved_at = None
    for start, end, stage in log:  # ordered by start
        if start > as_of:
            break
        if stage == "resolved":
            resolved_at = start
        if end is None or end > as_of:  # the stay at as_of
            return resolved_at if stage in ("resolved", "closed") else None
    return None
