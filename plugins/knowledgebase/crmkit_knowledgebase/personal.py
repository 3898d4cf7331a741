"""What the knowledge base holds about a customer: export, erasure, merge, timeline, catch-up.

Two tables hold data about a person (their columns marked ``info={"personal": True}`` in
:mod:`crmkit_knowledgebase.tables`):

* ``kb_sends`` — a template or article sent to a customer. ``body`` is personal: a rendered
  reply names the person and quotes what they wrote. ``title`` (the template's or the
  article's title, the same for everyone), ``channel``, ``staff`` and the links are not.
* ``kb_votes`` — a was-this-helpful vote, optionally by a customer. ``comment`` is personal
  (the person's own words); ``helpful`` and ``at`` are not.

Erasure blanks the send bodies (the rows stay, linked to the anonymised customer, so the
counts of what was sent stay) and unlinks the customer's votes, blanking their comments
(the article's helpful counts stay). Every function here is idempotent: re-running an
erasure, a merge or a catch-up changes nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, select, update

from crmkit.plugin import TimelineEntry, customers
from crmkit_knowledgebase import tables as t

SOURCE = "knowledgebase"
#: the timeline's kinds of entries, by the kind of send
TIMELINE_KINDS = {"template": "kb_reply", "article": "kb_article"}


def export(connection: Any, customer_id: int) -> dict[str, Any] | None:
    """Every send to the customer (with its text) and every vote they left (with the
    article it was about), oldest first; None when there is none."""
    s = t.sends
    sends = [
        dict(row._mapping)
        for row in connection.execute(
            select(s).where(s.c.customer_id == customer_id).order_by(s.c.at, s.c.id)
        )
    ]
    v, a = t.votes, t.articles
    votes = [
        dict(row._mapping)
        for row in connection.execute(
            select(v, a.c.slug.label("article_slug"), a.c.title.label("article_title"))
            .join(a, a.c.id == v.c.article_id)
            .where(v.c.customer_id == customer_id)
            .order_by(v.c.at, v.c.id)
        )
    ]
    if not sends and not votes:
        return None
    return {"sends": sends, "votes": votes}


def erase(connection: Any, customer_ids: Sequence[int] | Select[Any]) -> dict[str, int]:
    """Blank the send bodies of ``customer_ids``; unlink their votes, blanking the comments.
    Idempotent (a second run finds nothing left to change)."""
    s, v = t.sends, t.votes
    sends = connection.execute(
        update(s).where(and_(s.c.customer_id.in_(customer_ids), s.c.body != "")).values(body="")
    ).rowcount
    votes = connection.execute(
        update(v).where(v.c.customer_id.in_(customer_ids)).values(customer_id=None, comment="")
    ).rowcount
    return {"sends": sends, "votes": votes}


def merge(connection: Any, kept_id: int, merged_id: int) -> dict[str, int] | None:
    """Re-link the merged customer's sends and votes to ``kept_id``; None when there was none."""
    moved = {
        name: connection.execute(
            update(table).where(table.c.customer_id == merged_id).values(customer_id=kept_id)
        ).rowcount
        for name, table in (("sends", t.sends), ("votes", t.votes))
    }
    return moved if any(moved.values()) else None


def timeline(connection: Any, customer_id: int, limit: int | None) -> list[TimelineEntry]:
    """The replies (templates) and articles sent to the customer, newest first, at most
    ``limit``."""
    if limit is not None and limit <= 0:
        return []
    s = t.sends
    query = select(s).where(s.c.customer_id == customer_id).order_by(s.c.at.desc(), s.c.id.desc())
    return [_entry(row) for row in connection.execute(query.limit(limit))]


def _entry(row: Any) -> TimelineEntry:
    what = "Reply" if row.kind == "template" else "Article"
    how = " by ".join(x for x in (row.channel, row.staff) if x)
    how = f" ({how})" if how else ""
    case = f", complaint #{row.complaint_id}" if row.complaint_id is not None else ""
    return TimelineEntry(
        at=row.at,
        kind=TIMELINE_KINDS.get(row.kind, "kb_send"),
        title=f"{what} sent: {row.title}{how}{case}",
        body=row.body,
        source=SOURCE,
    )


def catch_up(connection: Any) -> str | None:
    """Complete what was done to customers while this plugin was off: sends and votes of a
    customer merged into another are re-linked to the one kept (along a chain of merges),
    those of an erased customer erased. Found from the tables as they are, so it needs no
    date and a re-run does nothing."""
    c = customers
    merged = dict(
        connection.execute(
            select(c.c.id, c.c.merged_into).where(c.c.merged_into.is_not(None))
        ).all()
    )
    relinked = 0
    for merged_id in sorted(merged):
        kept_id = _last(merged, merged_id)
        moved = merge(connection, kept_id, merged_id) if kept_id != merged_id else None
        relinked += sum((moved or {}).values())
    erased = erase(connection, select(c.c.id).where(c.c.erased_at.is_not(None)))
    done = []
    if relinked:
        done.append(f"re-linked {relinked} send(s) and vote(s) of merged customers")
    if erased["sends"] or erased["votes"]:
        done.append(
            f"erased {erased['sends']} send text(s) and {erased['votes']} vote(s) "
            "of erased customers"
        )
    return "; ".join(done) or None


def _last(merged_into: dict[int, int], customer_id: int) -> int:
    """The customer a chain of merges ends at (a cycle, which merges refuse, stops it)."""
    seen = {customer_id}
    while customer_id in merged_into and merged_into[customer_id] not in seen:
        customer_id = merged_into[customer_id]
        seen.add(customer_id)
    return customer_id
