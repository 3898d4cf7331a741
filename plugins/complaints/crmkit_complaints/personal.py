"""A customer's complaints as personal data: the export, the erasure, moving them to the
record a duplicate was merged into, and the customer's timeline.

The personal columns are those marked ``info={"personal": True}`` in ``tables``; the export
gives every one of their values and the erasure blanks each of them except the survey
scores, which stay as anonymous figures for the reports (as order totals and loyalty
balances do). Erasure and merge are idempotent and work on plain SQL conditions, so
:mod:`crmkit_complaints.catchup` can complete them after the plugin was off.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from crmkit.plugin import TimelineEntry, workflow_instances
from crmkit_complaints import tables as t

#: what an erased description or reply says
ERASED = "(erased)"
#: erased complaints get a new random tracking code with this prefix (new ones start "C-")
ERASED_CODE_PREFIX = "E-"
SOURCE = "complaints"
#: customers per statement of an erasure (well under SQLite's bound-parameter limit)
CHUNK = 5000


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def export(connection: Any, customer_id: int) -> dict[str, Any] | None:
    """Every complaint of the customer with all its personal values: description, root
    cause, resolution, tracking code, replies and internal notes, survey; None if none."""
    c = t.complaints
    rows = connection.execute(select(c).where(c.c.customer_id == customer_id).order_by(c.c.id))
    rows = rows.all()
    if not rows:
        return None
    ids = [row.id for row in rows]
    replies: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for r in connection.execute(
        select(t.replies)
        .where(t.replies.c.complaint_id.in_(ids))
        .order_by(t.replies.c.at, t.replies.c.id)
    ):
        replies[r.complaint_id].append(
            {
                "at": _iso(r.at),
                "kind": "reply" if r.public else "internal note",
                "public": r.public,
                # staff are named as the status page names them: only when shown
                "author": r.author if r.public and r.show_author else None,
                "body": r.body,
            }
        )
    surveys = {
        s.complaint_id: {"at": _iso(s.at), "csat": s.csat, "nps": s.nps, "comment": s.comment}
        for s in connection.execute(select(t.surveys).where(t.surveys.c.complaint_id.in_(ids)))
    }
    return {
        "complaints": [
            {
                "id": row.id,
                "tracking_code": row.tracking_code,
                "channel": row.channel,
                "category": row.category,
                "department": row.department,
                "severity": row.severity,
                "priority": row.priority,
                "stage": row.stage,
                "description": row.description,
                "root_cause": row.root_cause,
                "resolution": row.resolution,
                "received_at": _iso(row.received_at),
                "first_response_at": _iso(row.first_response_at),
                "resolved_at": _iso(row.resolved_at),
                "closed_at": _iso(row.closed_at),
                "replies": replies[row.id],
                "survey": surveys.get(row.id),
            }
            for row in rows
        ]
    }


def erase(connection: Any, customer_ids: Collection[int]) -> int:
    """Blank the personal values of these customers' complaints; returns how many rows
    changed (0 when they were erased already: re-running completes a partial erasure)."""
    ids = sorted(customer_ids)
    return sum(_erase(connection, ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK))


def _erase(connection: Any, customer_ids: list[int]) -> int:
    c = t.complaints
    mine = c.c.customer_id.in_(customer_ids)
    ids = select(c.c.id).where(mine)
    changed = connection.execute(
        update(c)
        .where(
            and_(mine, or_(c.c.description != ERASED, c.c.root_cause != "", c.c.resolution != ""))
        )
        .values(description=ERASED, root_cause="", resolution="")
    ).rowcount
    # a new random code: the one the person holds (and may have shared) shows nothing any more
    codes = connection.scalars(
        select(c.c.id).where(and_(mine, ~c.c.tracking_code.startswith(ERASED_CODE_PREFIX)))
    ).all()
    if codes:
        connection.execute(
            update(c).where(c.c.id == bindparam("_id")).values(tracking_code=bindparam("code")),
            [{"_id": i, "code": ERASED_CODE_PREFIX + secrets.token_urlsafe(12)} for i in codes],
        )
    changed += len(codes)
    changed += connection.execute(
        update(t.replies)
        .where(and_(t.replies.c.complaint_id.in_(ids), t.replies.c.body != ERASED))
        .values(body=ERASED)
    ).rowcount
    changed += connection.execute(
        update(t.surveys)
        .where(and_(t.surveys.c.complaint_id.in_(ids), t.surveys.c.comment != ""))
        .values(comment="")
    ).rowcount
    return changed


def not_erased(connection: Any, customer_ids: Any) -> set[int]:
    """Ids among ``customer_ids`` (a collection or a SELECT of ids) whose complaints still
    hold a personal value the erasure blanks."""
    c = t.complaints
    theirs = c.c.customer_id.in_(customer_ids)
    found = set(
        connection.scalars(
            select(c.c.customer_id).where(
                and_(
                    theirs,
                    or_(
                        c.c.description != ERASED,
                        c.c.root_cause != "",
                        c.c.resolution != "",
                        ~c.c.tracking_code.startswith(ERASED_CODE_PREFIX),
                    ),
                )
            )
        )
    )
    for table, column, value in ((t.replies, "body", ERASED), (t.surveys, "comment", "")):
        found |= set(
            connection.scalars(
                select(c.c.customer_id)
                .join(table, table.c.complaint_id == c.c.id)
                .where(and_(theirs, table.c[column] != value))
            )
        )
    return found


def merge(connection: Any, kept_id: int, merged_id: int) -> dict[str, int] | None:
    """Re-link the merged customer's complaints (their surveys, replies and tracking codes
    follow) and their workflow instances to ``kept_id``; None when there was none."""
    c = t.complaints
    theirs = select(c.c.workflow_instance_id).where(c.c.customer_id == merged_id)
    w = workflow_instances
    # the core may have moved the instances already; then this changes nothing
    connection.execute(
        update(w)
        .where(and_(w.c.id.in_(theirs), w.c.customer_id == merged_id))
        .values(customer_id=kept_id)
    )
    moved = connection.execute(
        update(c).where(c.c.customer_id == merged_id).values(customer_id=kept_id)
    ).rowcount
    return {"complaints": moved} if moved else None


def timeline(connection: Any, customer_id: int, limit: int | None) -> Sequence[TimelineEntry]:
    """The customer's complaints opened and public replies sent, newest first, at most
    ``limit``; internal notes are not sent to the customer and stay off the timeline."""
    if limit is not None and limit <= 0:
        return []
    c, r = t.complaints, t.replies
    opened = select(c).where(c.c.customer_id == customer_id)
    opened = opened.order_by(c.c.received_at.desc(), c.c.id.desc()).limit(limit)
    sent = (
        select(r.c.at, r.c.body, c.c.id, c.c.category)
        .join(c, c.c.id == r.c.complaint_id)
        .where(and_(c.c.customer_id == customer_id, r.c.public.is_(True)))
        .order_by(r.c.at.desc(), r.c.id.desc())
        .limit(limit)
    )
    entries = [
        TimelineEntry(
            at=row.received_at,
            kind="complaint",
            title=f"Complaint #{row.id} opened: {row.category} ({row.channel}), {row.stage}",
            body=row.description,
            source=SOURCE,
        )
        for row in connection.execute(opened)
    ]
    entries += [
        TimelineEntry(
            at=row.at,
            kind="complaint_reply",
            title=f"Reply to complaint #{row.id} ({row.category})",
            body=row.body,
            source=SOURCE,
        )
        for row in connection.execute(sent)
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit] if limit is not None else entries
