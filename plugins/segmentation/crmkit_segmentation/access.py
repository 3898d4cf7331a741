"""Who may do what with segmentation, and which customers' rows they see.

Permissions (declared through ``crmkit_register_permissions``; the README has the table):

* ``segmentation.read`` (scoped) — the saved snapshots (scheme, date, counts), the
  movement between two, and the members of a segment: a sales rep sees their own
  customers among the members, a sales manager their team's, cost accounting and
  managers everyone's.
* ``segmentation.run`` (scoped) — run an analysis (RFM, ABC, pyramid, matrix, clusters,
  breakdown, CLV, industry packs). The analysis is computed over the whole customer base
  (quantiles, classes and models are relative to everyone, as on the CLI), so its
  figures and summaries are company-wide; the rows that name a customer are only those of
  customers the actor may see (sales managers: their team's). Sales managers, managers.
* ``segmentation.snapshot`` — save a snapshot (a write that fires
  ``crmkit_segmentation_after_segments_changed`` for every customer whose segment moved):
  company-wide data other plugins act on, so managers only.

Rows of customers are filtered by the intersection of the action's scope and the actor's
``customers.read`` scope (:func:`visible_owners`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import PermissionSpec, customers

READ = "segmentation.read"
RUN = "segmentation.run"
SNAPSHOT = "segmentation.snapshot"

PERMISSIONS: tuple[PermissionSpec, ...] = (
    PermissionSpec(
        READ,
        "see segmentation snapshots and the members of segments",
        scoped=True,
        default_grants={
            "sales_rep": "own",
            "sales_manager": "team",
            "cost_accounting": "all",
            "manager": "all",
        },  # fmt: skip
        declared_by="segmentation",
    ),
    PermissionSpec(
        RUN,
        "run segmentation analyses (RFM, ABC, pyramid, clusters, CLV, packs)",
        scoped=True,
        default_grants={"sales_manager": "team", "manager": "all"},
        declared_by="segmentation",
    ),
    PermissionSpec(
        SNAPSHOT,
        "save segmentation snapshots",
        scoped=False,
        default_grants={"manager": "all"},
        declared_by="segmentation",
    ),
)

CHUNK = 5000


def visible_owners(crm: Any, action: str) -> frozenset[str] | None:
    """Authorise ``action`` and return the owners whose customers' rows the actor sees
    (``None``: everyone's): the action's scope narrowed by ``customers.read``'s."""
    crm.authorise(action)
    mine = crm.visible_owners(action)
    theirs = crm.visible_owners("customers.read")
    if mine is None:
        return theirs
    return mine if theirs is None else mine & theirs


def owner_clause(owners: frozenset[str] | None) -> sa.ColumnElement[bool]:
    """SQL on ``customers``: owned by one of ``owners`` (true when ``None``)."""
    if owners is None:
        return sa.true()
    return customers.c.owner.in_(sorted(owners))


def keep_visible(
    crm: Any, rows: Sequence[dict[str, Any]], owners: frozenset[str] | None
) -> list[dict[str, Any]]:
    """The rows (each with ``customer_id``) of customers owned by one of ``owners``."""
    if owners is None:
        return list(rows)
    seen = visible_ids(crm, (r["customer_id"] for r in rows), owners)
    return [r for r in rows if int(r["customer_id"]) in seen]


def visible_ids(crm: Any, ids: Iterable[Any], owners: frozenset[str]) -> set[int]:
    wanted = sorted({int(i) for i in ids})
    found: set[int] = set()
    with crm.reading() as conn:
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            found |= set(
                conn.scalars(
                    sa.select(customers.c.id).where(customers.c.id.in_(chunk), owner_clause(owners))
                )
            )
    return found
