"""Dated snapshots of a scheme (customer → segment), movement matrices, current segments.

A snapshot stores what a scheme (``rfm``, ``abc``, ``pyramid`` or any pack) said about each
customer as of a date. Taking one compares it with the previous snapshot of the same scheme
and scope (the latest one as of the same date or earlier) and announces every customer whose
segment changed through ``crmkit_segmentation_after_segments_changed``, inside the snapshot's
transaction, so a listener's failure stores nothing.

Profiling consent (:mod:`.profiling`): a customer who withdrew it is in no new snapshot
(the next one announces them as leaving their segment), and the readers that act on stored
memberships — current segments, VIPs, campaign lists, the 360 section — answer nothing
about them from then on. Their memberships in older snapshots stay as the record of what
was computed while they consented: exported with their personal data, deleted when they
are erased, counted in the movement matrices of those snapshots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from crmkit.plugin import NotFound, ValidationError, consents, customers

from . import access, profiling, schemes
from .hookspecs import SegmentChange
from .settings import settings_of
from .tables import memberships, snapshots

BATCH = 5000
NONE = "(none)"


@attrs.frozen
class Snapshot:
    id: int
    scheme: str
    as_of: dt.date
    created_at: dt.datetime
    params: dict[str, Any]
    customers: int = 0
    changed: int = 0
    #: customers left out because they withdrew profiling consent (known when the snapshot
    #: is taken; not stored)
    left_out: int | None = None


def _snapshot(
    row: Any, customers_: int = 0, changed: int = 0, left_out: int | None = None
) -> Snapshot:
    return Snapshot(
        row.id, row.scheme, row.as_of, row.created_at, dict(row.params), customers_, changed,
        left_out,
    )  # fmt: skip


def take_snapshot(
    crm: Any,
    scheme: str,
    as_of: dt.date,
    scope: dict[str, str] | None = None,
    *,
    actor: str | None = None,
    rows: Sequence[dict[str, Any]] | None = None,
    left_out: int = 0,
) -> Snapshot:
    """Classify every in-scope customer with ``scheme`` as of ``as_of`` and store it.

    ``rows`` lets a caller that has just run the scheme (``segment pack --snapshot``) store
    that result instead of computing it again (with ``left_out``, the customers it left out
    for withdrawn profiling consent). Rows of customers who withdrew profiling consent are
    dropped inside the snapshot's transaction, whoever computed them. Needs
    ``segmentation.snapshot``; audited as ``segmentation.snapshot`` with the counts."""
    crm.authorise(access.SNAPSHOT)
    if rows is None:
        rows, params, left_out = schemes.classify(crm, scheme, as_of, scope or {})
    else:
        schemes.check_scheme(crm, scheme)
        params = schemes.params_of(crm, scheme)
    labels = {int(r["customer_id"]): str(r["segment"]) for r in rows}
    params = {"scope": dict(scope or {}), **params}
    with crm.transaction(actor=actor) as ctx:
        conn = ctx.connection
        withdrawn = profiling.withdrawn_ids(conn, labels)  # also those who withdrew just now
        for cid in withdrawn:
            del labels[cid]
        previous = _previous(conn, scheme, as_of, params["scope"])
        snap_id = conn.scalar(
            sa.insert(snapshots).returning(snapshots.c.id),
            {"scheme": scheme, "as_of": as_of, "created_at": ctx.now, "params": params},
        )
        items = sorted(labels.items())
        for start in range(0, len(items), BATCH):
            conn.execute(
                sa.insert(memberships),
                [
                    {"snapshot_id": snap_id, "customer_id": cid, "segment": seg}
                    for cid, seg in items[start : start + BATCH]
                ],
            )
        changes: list[SegmentChange] = []
        if previous is not None:
            old = dict(
                conn.execute(
                    sa.select(memberships.c.customer_id, memberships.c.segment).where(
                        memberships.c.snapshot_id == previous
                    )
                ).all()
            )
            changes = [
                SegmentChange(cid, scheme, old.get(cid), labels.get(cid), snap_id, previous, as_of)
                for cid in sorted(old.keys() | labels.keys())
                if old.get(cid) != labels.get(cid)
            ]
        if changes:
            crm.fire(ctx, "crmkit_segmentation_after_segments_changed", changes=changes)
        ctx.audit(
            "segmentation.snapshot",
            "segmentation_snapshot",
            snap_id,
            changes={
                "scheme": [None, scheme],
                "as_of": [None, as_of.isoformat()],
                "scope": [None, params["scope"]],
                "customers": [None, len(labels)],
                "changed": [None, len(changes)],
            },
        )
        ctx.changes.other.setdefault("segmentation_snapshots", []).append(snap_id)
        row = conn.execute(sa.select(snapshots).where(snapshots.c.id == snap_id)).one()
        return _snapshot(row, len(labels), len(changes), left_out + len(withdrawn))


def _previous(conn: Any, scheme: str, as_of: dt.date, scope: dict[str, str]) -> int | None:
    candidates = conn.execute(
        sa.select(snapshots.c.id, snapshots.c.params)
        .where(snapshots.c.scheme == scheme, snapshots.c.as_of <= as_of)
        .order_by(snapshots.c.as_of.desc(), snapshots.c.id.desc())
    )
    for snap_id, params in candidates:
        if dict((params or {}).get("scope") or {}) == scope:
            return int(snap_id)
    return None


def get_snapshot(crm: Any, snapshot_id: int) -> Snapshot:
    crm.authorise(access.READ)
    with crm.reading() as conn:
        row = conn.execute(sa.select(snapshots).where(snapshots.c.id == snapshot_id)).first()
        if row is None:
            raise NotFound(
                f"segmentation: no snapshot {snapshot_id}; 'crmkit segment snapshots' lists them"
            )
        count = conn.scalar(
            sa.select(sa.func.count()).where(memberships.c.snapshot_id == snapshot_id)
        )
    return _snapshot(row, int(count or 0))


def list_snapshots(
    crm: Any, scheme: str | None = None, *, after_id: int | None = None, limit: int | None = None
) -> list[Snapshot]:
    """Saved snapshots (of ``scheme``), oldest first; ``after_id``/``limit`` page by id."""
    crm.authorise(access.READ)
    counts = (
        sa.select(memberships.c.snapshot_id, sa.func.count().label("n"))
        .group_by(memberships.c.snapshot_id)
        .subquery()
    )
    query = (
        sa.select(snapshots, counts.c.n)
        .outerjoin(counts, counts.c.snapshot_id == snapshots.c.id)
        .order_by(snapshots.c.as_of, snapshots.c.id)
    )
    if scheme:
        query = query.where(snapshots.c.scheme == scheme)
    if after_id is not None:
        query = query.order_by(None).order_by(snapshots.c.id).where(snapshots.c.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    with crm.reading() as conn:
        return [_snapshot(r, int(r.n or 0)) for r in conn.execute(query)]


def latest_snapshot(crm: Any, scheme: str) -> Snapshot:
    crm.authorise(access.READ)
    with crm.reading() as conn:
        row = conn.execute(
            sa.select(snapshots)
            .where(snapshots.c.scheme == scheme)
            .order_by(snapshots.c.as_of.desc(), snapshots.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        schemes.check_scheme(crm, scheme)
        raise NotFound(
            f"segmentation: no snapshot of scheme {scheme!r} yet; "
            f"run 'crmkit segment snapshot {scheme} --as-of YYYY-MM-DD' first"
        )
    return get_snapshot(crm, row.id)


def movement(crm: Any, snapshot_a: int, snapshot_b: int) -> dict[str, Any]:
    """How many customers moved from each segment of A to each segment of B (SQL counts),
    counting the customers the actor may see (``segmentation.read``)."""
    a, b = get_snapshot(crm, snapshot_a), get_snapshot(crm, snapshot_b)
    owners = access.visible_owners(crm, access.READ)
    if a.scheme != b.scheme:
        raise ValidationError(
            f"segmentation: snapshot {a.id} is {a.scheme!r} and {b.id} is {b.scheme!r}; "
            "compare two snapshots of the same scheme"
        )
    ma, mb = memberships.alias("ma"), memberships.alias("mb")
    stayed_or_left = (
        sa.select(ma.c.segment, mb.c.segment, sa.func.count())
        .select_from(
            ma.outerjoin(
                mb, sa.and_(mb.c.customer_id == ma.c.customer_id, mb.c.snapshot_id == b.id)
            )
        )
        .where(ma.c.snapshot_id == a.id, *_visible(ma, owners))
        .group_by(ma.c.segment, mb.c.segment)
    )
    entered = (
        sa.select(mb.c.segment, sa.func.count())
        .where(
            mb.c.snapshot_id == b.id,
            *_visible(mb, owners),
            ~sa.exists().where(ma.c.snapshot_id == a.id, ma.c.customer_id == mb.c.customer_id),
        )
        .group_by(mb.c.segment)
    )
    with crm.reading() as conn:
        moves = [(f, t or NONE, int(n)) for f, t, n in conn.execute(stayed_or_left)]
        moves += [(NONE, t, int(n)) for t, n in conn.execute(entered)]
    order = _label_order(crm, a.scheme, {f for f, _, _ in moves} | {t for _, t, _ in moves})
    cells = {(f, t): n for f, t, n in moves}
    matrix = []
    for f in order:
        if not any(k[0] == f for k in cells):
            continue
        row: dict[str, Any] = {"from": f}
        row.update({t: cells.get((f, t), 0) for t in order})
        row["total"] = sum(n for (ff, _), n in cells.items() if ff == f)
        matrix.append(row)
    moved = sum(n for (f, t), n in cells.items() if f != t)
    return {
        "snapshots": {
            "from": f"{a.id} ({a.scheme} as of {a.as_of.isoformat()})",
            "to": f"{b.id} ({b.scheme} as of {b.as_of.isoformat()})",
            "moved": moved,
            "stayed": sum(n for (f, t), n in cells.items() if f == t),
        },
        "moves": [
            {"from": f, "to": t, "customers": n}
            for (f, t), n in sorted(cells.items(), key=lambda kv: (-kv[1], kv[0]))
            if f != t
        ],
        "rows": matrix,
    }


def _visible(members: Any, owners: frozenset[str] | None) -> list[Any]:
    """WHERE clauses keeping the memberships of customers owned by ``owners`` (none: all)."""
    if owners is None:
        return []
    seen = sa.select(customers.c.id).where(access.owner_clause(owners))
    return [members.c.customer_id.in_(seen)]


def _label_order(crm: Any, scheme: str, labels: set[str]) -> list[str]:
    known = schemes.known_labels(crm, scheme)
    ordered = [x for x in known if x in labels]
    rest = sorted(x for x in labels if x not in ordered and x != NONE)
    return ordered + rest + ([NONE] if NONE in labels else [])


def latest_memberships(
    crm: Any, customer_ids: Iterable[int], *, scheme: str | None = None
) -> list[dict[str, Any]]:
    """Each customer's segment in the latest snapshot (by as-of) of every scheme they are in.

    Rows: ``customer_id, segment, scheme, as_of, snapshot_id``; ``scheme`` limits them to
    that scheme's snapshots. A customer who withdrew profiling consent has no rows: their
    stored memberships are not used any more."""
    ids = sorted({int(c) for c in customer_ids})
    out: list[dict[str, Any]] = []
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        wanted = [
            memberships.c.customer_id.in_(chunk),
            profiling.allowed(memberships.c.customer_id),
        ]
        if scheme is not None:
            wanted.append(snapshots.c.scheme == scheme)
        ranked = (
            sa.select(
                memberships.c.customer_id,
                memberships.c.segment,
                snapshots.c.scheme,
                snapshots.c.as_of,
                snapshots.c.id.label("snapshot_id"),
                sa.func.row_number()
                .over(
                    partition_by=(memberships.c.customer_id, snapshots.c.scheme),
                    order_by=(snapshots.c.as_of.desc(), snapshots.c.id.desc()),
                )
                .label("rank"),
            )
            .select_from(memberships.join(snapshots, snapshots.c.id == memberships.c.snapshot_id))
            .where(*wanted)
            .subquery()
        )
        query = (
            sa.select(ranked)
            .where(ranked.c.rank == 1)
            .order_by(ranked.c.customer_id, ranked.c.scheme)
        )
        with crm.reading() as conn:
            out += [dict(r._mapping) for r in conn.execute(query)]
    for row in out:
        row.pop("rank", None)
    return out


def current_segments(crm: Any, customer_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    """``{customer_id: {scheme: segment}}`` from the latest snapshots ({} when in none)."""
    found: dict[int, dict[str, str]] = {int(c): {} for c in customer_ids}
    for row in latest_memberships(crm, customer_ids):
        found[row["customer_id"]][row["scheme"]] = row["segment"]
    return found


def vip_customers(crm: Any, customer_ids: Iterable[int]) -> set[int]:
    """The ids whose tier in their latest ``pyramid`` snapshot is that snapshot's top tier.

    The latest snapshot is the one :func:`current_segments` reads (by as-of, then id, among
    those that include the customer); its top tier is the first of the ``pyramid_shares``
    it was taken with, whatever that tier is called."""
    latest = latest_memberships(crm, customer_ids, scheme="pyramid")
    tops = _top_tiers(crm, {row["snapshot_id"] for row in latest})
    return {row["customer_id"] for row in latest if row["segment"] == tops[row["snapshot_id"]]}


def _top_tiers(crm: Any, snapshot_ids: set[int]) -> dict[int, str]:
    """The top tier label of each pyramid snapshot, from the shares stored with it."""
    if not snapshot_ids:
        return {}
    configured = next(iter(settings_of(crm)["pyramid_shares"]))
    with crm.reading() as conn:
        rows = conn.execute(
            sa.select(snapshots.c.id, snapshots.c.params).where(
                snapshots.c.id.in_(sorted(snapshot_ids))
            )
        ).all()
    tops = {}
    for snap_id, params in rows:
        shares = (params or {}).get("shares") or {}
        tops[int(snap_id)] = next(iter(shares), configured)
    return tops


CAMPAIGN_COLUMNS = ("customer_id", "external_id", "name", "email", "phone", "region", "city")


def campaign_list(
    crm: Any,
    segment: str,
    scheme: str,
    snapshot_id: int | None = None,
    *,
    after_id: int | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Customers of ``segment`` in a snapshot who granted the campaign consent purpose.

    Erased or merged customers are never listed, nor those who withdrew profiling consent
    (a segment is a profiling result, even in a snapshot taken before they withdrew).
    Returns ``rows``, ``left_out`` (in the segment, without the campaign consent) and
    ``left_out_profiling`` (in the segment, profiling consent withdrawn), so the caller can
    say how many were dropped and why.

    Needs ``segmentation.read``: only the customers the actor may see are listed or counted
    (a sales rep's own, a sales manager's team's). ``after_id``/``limit`` page the rows by
    customer id (the counts are the whole segment's).
    """
    owners = access.visible_owners(crm, access.READ)
    snap = latest_snapshot(crm, scheme) if snapshot_id is None else get_snapshot(crm, snapshot_id)
    if snap.scheme != scheme:
        raise ValidationError(
            f"segmentation: snapshot {snap.id} is of scheme {snap.scheme!r}, not {scheme!r}"
        )
    purpose = settings_of(crm)["campaign_consent"]
    with crm.reading() as conn:
        present = list(
            conn.scalars(
                sa.select(memberships.c.segment)
                .where(memberships.c.snapshot_id == snap.id)
                .distinct()
                .order_by(memberships.c.segment)
            )
        )
        if segment not in present and segment not in schemes.known_labels(crm, scheme):
            raise ValidationError(
                f"segmentation: segment {segment!r} is not in snapshot {snap.id} ({scheme} as of "
                f"{snap.as_of.isoformat()}); its segments: {', '.join(present) or '(none)'}"
            )
        members = (
            sa.select(memberships.c.customer_id)
            .where(memberships.c.snapshot_id == snap.id, memberships.c.segment == segment)
            .scalar_subquery()
        )
        consented = (
            sa.select(consents.c.customer_id)
            .where(consents.c.purpose == purpose, consents.c.granted.is_(True))
            .scalar_subquery()
        )
        in_segment = sa.and_(
            customers.c.id.in_(members),
            customers.c.erased_at.is_(None),
            customers.c.merged_into.is_(None),
            access.owner_clause(owners),
        )
        base = sa.and_(in_segment, profiling.allowed(customers.c.id))
        listed = sa.and_(base, customers.c.id.in_(consented))
        query = sa.select(*(customers.c[c] for c in CAMPAIGN_COLUMNS[1:]), customers.c.id)
        if after_id is not None:
            query = query.where(customers.c.id > after_id)
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query.where(listed).order_by(customers.c.id)).all()
        consenting = conn.scalar(sa.select(sa.func.count()).where(listed))
        profiled = conn.scalar(sa.select(sa.func.count()).where(base))
        everyone = conn.scalar(sa.select(sa.func.count()).where(in_segment))
    out = [
        {
            "customer_id": r.id,
            **{c: getattr(r, c) for c in CAMPAIGN_COLUMNS[1:]},
            "segment": segment,
        }
        for r in rows
    ]
    return {
        "snapshot": snap,
        "purpose": purpose,
        "rows": out,
        "left_out": profiled - consenting,
        "left_out_profiling": everyone - profiled,
    }


def segment_counts(crm: Any, snapshot_id: int) -> list[tuple[str, int]]:
    """(segment, customers) of a snapshot, counting only customers the actor may see
    (``segmentation.read``), in the scheme's display order."""
    snap = get_snapshot(crm, snapshot_id)
    owners = access.visible_owners(crm, access.READ)
    query = (
        sa.select(memberships.c.segment, sa.func.count())
        .select_from(memberships.join(customers, customers.c.id == memberships.c.customer_id))
        .where(memberships.c.snapshot_id == snap.id, access.owner_clause(owners))
        .group_by(memberships.c.segment)
    )
    with crm.reading() as conn:
        counts = {str(seg): int(n) for seg, n in conn.execute(query)}
    return [(seg, counts[seg]) for seg in _label_order(crm, snap.scheme, set(counts))]
