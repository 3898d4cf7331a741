"""crmkit segmentation plugin: hook implementations and the ``crmkit segment`` commands.

The hooks this plugin publishes for others are in :mod:`.hookspecs`; the commands are in
the ``*_cli`` modules (grouped in :mod:`.commands`), the customer 360 section in
:mod:`.customer360`. The plugin's other modules (SQLAlchemy tables, the analyses, numpy)
are imported inside the hooks that use them: loading the plugin for ``crmkit --help``
stays cheap.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import crmkit.plugin as ck

from . import hookspecs

if TYPE_CHECKING:
    import click
    import sqlalchemy as sa

    from .packs import Pack

CRMKIT_API = ">=1.4,<2"  # lazy_command (1.4); permissions, audit, routes (1.3)


@ck.hookimpl
def crmkit_register_hookspecs() -> ModuleType:
    return hookspecs


@ck.hookimpl
def crmkit_register_migrations() -> str:
    return str(Path(__file__).parent / "migrations" / "versions")


@ck.hookimpl
def crmkit_register_settings() -> ck.SettingsSpec:
    from . import settings as seg_settings

    return seg_settings.spec()


@ck.hookimpl
def crmkit_register_permissions() -> tuple[ck.PermissionSpec, ...]:
    """segmentation.read / run / snapshot (see :mod:`.access`)."""
    from .access import PERMISSIONS

    return PERMISSIONS


@ck.hookimpl
def crmkit_register_routes() -> list[ck.Route]:
    """Analyses, snapshots and the members of a segment (see :mod:`.api`)."""
    from .api import routes

    return routes()


@ck.hookimpl
def crmkit_register_template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]


@ck.hookimpl
def crmkit_segmentation_current_segments(
    crm: ck.CRM, customer_ids: Sequence[int]
) -> dict[int, dict[str, str]]:
    from . import snapshots as snaps

    return snaps.current_segments(crm, customer_ids)


@ck.hookimpl
def crmkit_segmentation_vip_customers(crm: ck.CRM, customer_ids: Sequence[int]) -> set[int]:
    from . import snapshots as snaps

    return snaps.vip_customers(crm, customer_ids)


@ck.hookimpl
def crmkit_segmentation_register_packs() -> list[Pack]:
    from .packs import BUILTIN

    return BUILTIN


@ck.hookimpl
def crmkit_customer_360_section(crm: ck.CRM, customer: ck.Customer) -> ck.Section | None:
    from . import customer360

    return customer360.section(crm, customer)


@ck.hookimpl
def crmkit_export_personal_data(
    ctx: ck.HookContext, customer: ck.Customer
) -> dict[str, Any] | None:
    import sqlalchemy as sa

    from .tables import memberships, snapshots

    rows = ctx.connection.execute(
        sa.select(snapshots.c.id, snapshots.c.scheme, snapshots.c.as_of, memberships.c.segment)
        .join(memberships, memberships.c.snapshot_id == snapshots.c.id)
        .where(memberships.c.customer_id == customer.id)
        .order_by(snapshots.c.as_of, snapshots.c.id)
    ).all()
    if not rows:
        return None
    return {
        "segments": [
            {
                "snapshot_id": r.id,
                "scheme": r.scheme,
                "as_of": r.as_of.isoformat(),
                "segment": r.segment,
            }
            for r in rows
        ]  # fmt: skip
    }


@ck.hookimpl
def crmkit_erase_personal_data(ctx: ck.HookContext, customer: ck.Customer) -> None:
    """Segment memberships are profiling data about the person: they go with the erasure.

    The snapshots themselves (scheme, date, settings) stay; their customer counts and
    movement matrices, counted from the memberships, no longer include the erased
    customer. Idempotent: a re-run finds nothing more to delete.
    """
    from .tables import memberships

    ctx.connection.execute(memberships.delete().where(memberships.c.customer_id == customer.id))


@ck.hookimpl
def crmkit_merge_customers(
    ctx: ck.HookContext, kept: ck.Customer, merged: ck.Customer
) -> dict[str, Any] | None:
    """Drop the merged record's memberships: segments are derived from orders, which the core
    has just moved to ``kept``, so the next snapshot classifies ``kept`` on the joined
    history. ``kept``'s memberships in past snapshots stay as they were computed."""
    dropped = _drop_memberships(ctx.connection, [merged.id])
    if not dropped:
        return None
    return {
        "memberships_dropped": dropped,
        "note": f"segments are recomputed: the next snapshot classifies customer {kept.id} "
        "on the joined orders",
    }


@ck.hookimpl
def crmkit_catch_up(ctx: ck.HookContext, since: dt.datetime | None) -> str | None:
    """Snapshots are computed on demand from the core's orders and consent records, so
    nothing derived goes stale while the plugin is off, except memberships of customers
    merged (or erased) meanwhile: those are dropped, as the merge and erasure hooks would
    have. Idempotent; ``since`` is not needed (the check covers every customer cheaply)."""
    import sqlalchemy as sa

    from .tables import memberships

    gone = sa.select(ck.customers.c.id).where(
        sa.or_(ck.customers.c.merged_into.is_not(None), ck.customers.c.erased_at.is_not(None))
    )
    dropped = ctx.connection.execute(
        memberships.delete().where(memberships.c.customer_id.in_(gone))
    ).rowcount
    if not dropped:
        return None
    return f"dropped {dropped} segment memberships of customers merged or erased meanwhile"


def _drop_memberships(conn: sa.Connection, customer_ids: Sequence[int]) -> int:
    from .tables import memberships

    found = conn.execute(memberships.delete().where(memberships.c.customer_id.in_(customer_ids)))
    return int(found.rowcount or 0)


@ck.hookimpl
def crmkit_generate_demo_data(crm: ck.CRM, rng: random.Random) -> str | None:
    """Two snapshots per scheme (a quarter apart) so ``segment diff`` has movement to show."""
    import sqlalchemy as sa

    from . import settings as seg_settings
    from . import snapshots as snaps
    from .schemes import builtin

    with crm.reading() as conn:
        last = conn.scalar(sa.select(sa.func.max(ck.orders.c.occurred_at)))
    if last is None:
        return None
    available = builtin(crm)
    wanted = [s for s in seg_settings.settings_of(crm)["demo_snapshot_schemes"] if s in available]
    as_of = last.date()
    made = []
    for scheme in wanted:
        snaps.take_snapshot(crm, scheme, as_of - dt.timedelta(days=91))
        made.append(snaps.take_snapshot(crm, scheme, as_of))
    if not made:
        return None
    ids = ", ".join(f"{s.scheme} #{s.id}" for s in made)
    return f"segmentation: snapshots as of {as_of.isoformat()} and a quarter before ({ids})"


@ck.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    # imported when a segment command runs, not for ``crmkit --help``
    help = "Customer segmentation: RFM, snapshots, movement, campaign lists, industry packs."
    cli.add_command(ck.lazy_command("segment", "crmkit_segmentation.commands:segment", help))
