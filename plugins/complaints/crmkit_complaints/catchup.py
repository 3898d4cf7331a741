"""Catching up with the core after complaints was off (``crmkit_catch_up``).

What complaints keeps follows its own writes (SLA clock, pause log, alerts) and its
workflow ``complaint``, which only exists while the plugin is loaded, so no complaint can
move while it is off. Three things come from core records that can change meanwhile:

* a customer **erased** without this plugin (not installed or failed to load): their
  complaints still hold text; the erasure is completed;
* a customer **merged** into another without it: their complaints still point to the
  merged record; they are re-linked to the customer it was merged into (following chains);
* ``vip`` values that are not booleans (stored while the attribute was undeclared): they
  are reported, never changed (see :func:`crmkit_complaints.intake.vip_problems`).

Each condition is read from the tables as they are now, so ``since`` is not needed to find
the work, and running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from crmkit.plugin import customers
from crmkit_complaints import personal
from crmkit_complaints import tables as t
from crmkit_complaints.intake import vip_problems

log = logging.getLogger(__name__)

#: longest chain of merges followed (A merged into B, B into C ...)
MAX_CHAIN = 100


def catch_up(ctx: Any) -> str | None:
    """Complete erasures and merges made while complaints was off, report invalid ``vip``
    values; one line saying what was done, or None when nothing needed it."""
    connection = ctx.connection
    done = []
    erased = personal.not_erased(
        connection, select(customers.c.id).where(customers.c.erased_at.is_not(None))
    )
    if erased:
        personal.erase(connection, erased)
        done.append(f"completed the erasure of {len(erased)} customer(s)")
    moved = relink_merged(connection)
    if moved:
        done.append(f"re-linked {moved} complaint(s) of merged customers")
    problems = vip_problems(ctx.crm, connection)
    if problems:
        ids = ", ".join(str(p.customer_id) for p in problems[:10])
        more = ", ..." if len(problems) > 10 else ""
        line = (
            f"{len(problems)} customer(s) have a vip value that is not true or false "
            f"({ids}{more}); they are not treated as VIP: see 'crmkit complaints check'"
        )
        log.warning(line)
        done.append(line)
    return "; ".join(done) or None


def relink_merged(connection: Any) -> int:
    """Move complaints still on a merged customer to the customer it ends up merged into."""
    c = customers.c
    stale = select(t.complaints.c.customer_id).where(
        t.complaints.c.customer_id.in_(select(c.id).where(c.merged_into.is_not(None)))
    )
    sources = set(connection.scalars(stale.distinct()))
    if not sources:
        return 0
    targets = dict(
        connection.execute(select(c.id, c.merged_into).where(c.merged_into.is_not(None))).all()
    )
    moved = 0
    for merged_id in sorted(sources):
        kept_id = targets[merged_id]
        for _ in range(MAX_CHAIN):
            if kept_id not in targets:
                break
            kept_id = targets[kept_id]
        summary = personal.merge(connection, kept_id, merged_id)
        moved += summary["complaints"] if summary else 0
    return moved
