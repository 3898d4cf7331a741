"""Segmentation's HTTP routes, mounted under ``/api/v1/segmentation``.

The handlers call the functions the ``crmkit segment`` commands call, which authorise
the request's actor (:mod:`.access`) and audit snapshots; they only translate shapes
(:mod:`.schemas`) and cursors.
"""

from __future__ import annotations

from typing import Any

from crmkit import plugin
from crmkit.plugin import ApiRequest, Page, Route

from . import schemas as s
from . import snapshots as snaps
from .service import run_analysis

TAGS = ("segmentation",)


def encode_cursor(after: int) -> str:
    return plugin.encode_cursor({"after": after})


def decode_cursor(cursor: str | None) -> int | None:
    state = plugin.decode_cursor(cursor, "after")
    return None if state is None else plugin.cursor_int(state, "after")


def analyse(req: ApiRequest) -> s.AnalysisResult:
    return run_analysis(req.crm, req.path["kind"], req.body)


def _snapshot_out(snap: Any) -> s.SnapshotOut:
    return s.SnapshotOut(snap.id, snap.scheme, snap.as_of, snap.created_at, snap.params,
                         snap.customers)  # fmt: skip


def list_snapshots(req: ApiRequest) -> Page:
    q: s.SnapshotQuery = req.query
    limit = plugin.page_limit(q.limit)
    found = snaps.list_snapshots(
        req.crm, q.scheme, after_id=decode_cursor(q.cursor) or 0, limit=limit + 1
    )
    items = found[:limit]
    cursor = encode_cursor(items[-1].id) if len(found) > limit else None
    return Page([_snapshot_out(x) for x in items], cursor)


def get_snapshot(req: ApiRequest) -> s.SnapshotDetail:
    snap = snaps.get_snapshot(req.crm, req.path["snapshot_id"])
    counts = [s.SegmentCount(seg, n) for seg, n in snaps.segment_counts(req.crm, snap.id)]
    return s.SnapshotDetail(snap.id, snap.scheme, snap.as_of, snap.created_at, snap.params,
                            sum(c.customers for c in counts), counts)  # fmt: skip


def members(req: ApiRequest) -> Page:
    q: s.MembersQuery = req.query
    limit = plugin.page_limit(q.limit)
    found = snaps.campaign_list(
        req.crm, req.path["segment"], q.scheme, q.snapshot,
        after_id=decode_cursor(q.cursor), limit=limit + 1,
    )  # fmt: skip
    rows = found["rows"][:limit]
    snap_id = found["snapshot"].id
    items = [
        s.Member(
            r["customer_id"],
            r["external_id"],
            r["name"],
            r["email"],
            r["phone"],
            r["region"],
            r["city"],
            r["segment"],
            snap_id,
        )  # fmt: skip
        for r in rows
    ]
    cursor = encode_cursor(rows[-1]["customer_id"]) if len(found["rows"]) > limit else None
    return Page(items, cursor)


def routes() -> list[Route]:
    """The routes ``crmkit_register_routes`` returns."""
    return [
        Route("POST", "/analyses/{kind}", analyse,
              "Run an analysis (rfm, abc, pyramid, matrix, clusters, breakdown, clv, a pack)",
              body=s.AnalysisRun, response=s.AnalysisResult, tags=TAGS, errors=(422,)),
        Route("GET", "/snapshots", list_snapshots, "The saved snapshots, oldest first",
              query=s.SnapshotQuery, response=list[s.SnapshotOut], tags=TAGS),
        Route("GET", "/snapshots/{snapshot_id:int}", get_snapshot,
              "A snapshot with its segments' sizes", response=s.SnapshotDetail, tags=TAGS,
              errors=(404,)),
        Route("GET", "/segments/{segment}/members", members,
              "A segment's customers who consented to campaigns (the CLI's export)",
              query=s.MembersQuery, response=list[s.Member], tags=TAGS, errors=(404, 422)),
    ]  # fmt: skip
