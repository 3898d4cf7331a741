"""crmkit segmentation plugin: hooks and CLI."""

from __future__ import annotations

import csv
import datetime as dt
import weakref
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

import crmkit
from crmkit.core.tables import orders
from crmkit.core.types import Money

from . import analyses_cli, clv_cli
from . import settings as seg_settings
from . import snapshots as snaps
from .output import FORMATS, auto_charts, emit_report
from .packs import BUILTIN, all_packs, run_pack
from .schemes import builtin, known_labels, rfm_rows
from .scope import parse_scope
from .tables import memberships, snapshots

CRMKIT_API = ">=1.0,<2"


class Specs:
    @staticmethod
    @crmkit.hookspec(firstresult=True)
    def crmkit_segmentation_current_segments(crm, customer_ids):
        """Each customer's current segment per scheme, from the latest snapshots.

        When: on demand (e.g. the complaints plugin asks for ``pyramid`` to give VIPs
        priority). Transaction: none (reads through ``crm.reading()``, so it joins a running
        transaction). Returns: ``{customer_id: {scheme: segment}}`` for every id asked
        (``{}`` for a customer in no snapshot); pyramid tiers are ``vip``, ``major``,
        ``ordinary``, ``small``.
        """

    @staticmethod
    @crmkit.hookspec
    def crmkit_segmentation_segments_changed(ctx, changes):
        """Event: customers whose segment changed between two snapshots of a scheme.

        When: ``crmkit segment snapshot`` (or ``take_snapshot``), once per snapshot, only when
        a previous snapshot of the same scheme and scope exists and only for the customers
        whose segment differs. Transaction: the snapshot's; raising stores nothing.
        ``changes`` is a list of :class:`crmkit_segmentation.snapshots.SegmentChange`
        (``customer_id, scheme, from_segment, to_segment, snapshot_id,
        previous_snapshot_id, as_of``; ``None`` means not in that snapshot).
        """

    @staticmethod
    @crmkit.hookspec
    def crmkit_segmentation_packs():
        """Contribute industry packs (a pack or a list of them).

        When: whenever packs are listed or run (``crmkit segment pack``). Transaction: none.
        Returns: objects or dicts with ``name``, ``title``, ``description``,
        ``classify(crm, as_of, scope) -> list[dict]`` (each row has ``customer_id`` and
        ``segment``) and optionally ``labels`` (segment names, best first). Pack names are
        also snapshot schemes.

        Example::

            @crmkit.hookimpl(optionalhook=True)
            def crmkit_segmentation_packs():
                return [{"name": "education", "title": "Education",
                         "description": "...", "classify": classify_students}]
        """


@crmkit.hookimpl
def crmkit_register_hookspecs():
    return Specs


@crmkit.hookimpl
def crmkit_register_migrations() -> str:
    return str(Path(__file__).parent / "migrations" / "versions")


@crmkit.hookimpl
def crmkit_register_settings() -> crmkit.SettingsSpec:
    return seg_settings.spec()


@crmkit.hookimpl
def crmkit_register_template_dirs():
    return [str(Path(__file__).parent / "templates")]


@crmkit.hookimpl
def crmkit_segmentation_current_segments(crm, customer_ids):
    return snaps.current_segments(crm, customer_ids)


@crmkit.hookimpl
def crmkit_segmentation_packs():
    return BUILTIN


def _historical_value(crm: Any, customer_id: int) -> dict[str, Any]:
    query = sa.select(
        sa.func.count(),
        sa.type_coerce(sa.func.sum(orders.c.amount), Money),
        sa.type_coerce(sa.func.sum(orders.c.amount - sa.func.coalesce(orders.c.cost, 0)), Money),
    ).where(orders.c.customer_id == customer_id, orders.c.status.in_(("placed", "paid")))
    with crm.reading() as conn:
        count, revenue, margin = conn.execute(query).one()
    return {"orders": int(count), "revenue": revenue or 0, "margin": margin or 0}


CLV_FIELDS = (
    ("clv", "CLV (discounted)"),
    ("expected_purchases", "expected purchases"),
    ("p_alive", "P(alive)"),
    ("expected_spend", "expected spend per purchase"),
    ("historical_clv", "historical CLV"),
)


#: the CLV model fitted for each open CRM, with the day it was fitted for
_CLV_MODELS: weakref.WeakKeyDictionary[Any, tuple[dt.date, Any]] = weakref.WeakKeyDictionary()


def _clv_figures(crm: Any, customer: Any) -> dict[str, Any] | None:
    """Per-customer lifetime value from the CLV module when it offers one."""
    try:
        from . import clv
    except ImportError:
        return None
    fn = getattr(clv, "customer_clv", None)
    if fn is None:
        return None
    today = dt.datetime.now(dt.UTC).date()
    cached = _CLV_MODELS.get(crm)
    try:
        if cached is None or cached[0] != today:
            # one fit per CRM and day (a pass over every customer's summary): a process
            # showing many 360 pages, such as a web front end, fits once and scores each view
            cached = (today, clv.fit_model(crm, today, sample=10_000))
            _CLV_MODELS[crm] = cached
        found = fn(crm, customer.id, model=cached[1])
    except crmkit.CrmError:
        return None  # too few customers, no convergence: show the historical value only
    if not found:
        return None
    figures = {label: str(found[key]) for key, label in CLV_FIELDS if key in found}
    if "horizon" in found and "time_unit" in found:
        figures["horizon"] = f"{float(found['horizon']):g} {found['time_unit']}s"
    if "as_of" in found:
        figures["as of"] = str(found["as_of"])
    return figures


@crmkit.hookimpl
def crmkit_customer_360_section(crm: Any, customer: Any) -> crmkit.Section | None:
    segments = snaps.latest_memberships(crm, [customer.id])
    history = _historical_value(crm, customer.id)
    if not segments and not history["orders"]:
        return None
    return crmkit.Section(
        title="Segments and value",
        name="segmentation",
        template="segmentation/section.html",
        data={
            "segments": [
                {
                    "scheme": s["scheme"],
                    "segment": s["segment"],
                    "as_of": s["as_of"].isoformat(),
                    "snapshot_id": s["snapshot_id"],
                }
                for s in segments
            ],
            "historical": {k: str(v) for k, v in history.items()},
            "clv": _clv_figures(crm, customer),
        },
    )


@crmkit.hookimpl
def crmkit_export_personal_data(ctx: Any, customer: Any) -> dict[str, Any] | None:
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


@crmkit.hookimpl
def crmkit_erase_personal_data(ctx: Any, customer: Any) -> None:
    """Segment memberships are profiling data about the person: they go with the erasure.

    Snapshots keep their counts (``customers`` per snapshot) for statistics; later diffs
    simply no longer see the erased customer.
    """
    ctx.connection.execute(memberships.delete().where(memberships.c.customer_id == customer.id))


@crmkit.hookimpl
def crmkit_generate_demo_data(crm: Any, rng: Any) -> str | None:
    """Two snapshots per scheme (a quarter apart) so ``segment diff`` has movement to show."""
    with crm.reading() as conn:
        last = conn.scalar(sa.select(sa.func.max(orders.c.occurred_at)))
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


# -- command line ----------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_register_commands(cli):
    from crmkit.cli import pass_crm
    from crmkit.cli.output import format_option

    @cli.group()
    def segment():
        "Customer segmentation: RFM, snapshots, movement, campaign lists, industry packs."

    clv_cli.add_commands(segment)
    analyses_cli.add_commands(segment)

    @segment.command("rfm")
    @analyses_cli.as_of_option
    @analyses_cli.scope_option
    @click.option("--bins", type=click.IntRange(2, 100), help="Score bins [setting rfm_bins: 5].")
    @format_option(*FORMATS)
    @pass_crm
    def rfm_cmd(crm, as_of, scope, bins, fmt):
        "RFM scores (quintiles by default) computed in SQL, named through the RFM map."
        rows = rfm_rows(crm, as_of.date(), parse_scope(scope), bins)
        chart = auto_charts(rows, known_labels(crm, "rfm")) if fmt == "html" else None
        title = f"RFM as of {as_of.date().isoformat()}"
        emit_report(rows, fmt, title=title, chart=chart, crm=crm)

    @segment.command("snapshot")
    @click.argument("scheme")
    @analyses_cli.as_of_option
    @analyses_cli.scope_option
    @format_option(*FORMATS)
    @pass_crm
    def snapshot_cmd(crm, scheme, as_of, scope, fmt):
        "Save SCHEME's segments as of a date (rfm, abc, pyramid or a pack name)."
        snap = snaps.take_snapshot(crm, scheme, as_of.date(), parse_scope(scope))
        row = {
            "snapshot": snap.id,
            "scheme": snap.scheme,
            "as_of": snap.as_of,
            "customers": snap.customers,
            "changed": snap.changed,
        }
        emit_report([row], fmt, title=f"Snapshot {snap.id}", chart=False, crm=crm)

    @segment.command("snapshots")
    @click.option("--scheme", help="Only this scheme.")
    @format_option(*FORMATS)
    @pass_crm
    def snapshots_cmd(crm, scheme, fmt):
        "List the saved snapshots."
        rows = [
            {"snapshot": s.id, "scheme": s.scheme, "as_of": s.as_of, "customers": s.customers,
             "created_at": s.created_at, "scope": s.params.get("scope") or {}}
            for s in snaps.list_snapshots(crm, scheme)
        ]  # fmt: skip
        emit_report(rows, fmt, title="Snapshots", chart=False, crm=crm)

    @segment.command("diff")
    @click.argument("snap_a", type=int)
    @click.argument("snap_b", type=int)
    @format_option(*FORMATS)
    @pass_crm
    def diff_cmd(crm, snap_a, snap_b, fmt):
        "Movement matrix: customers per (segment in SNAP_A, segment in SNAP_B)."
        report = snaps.movement(crm, snap_a, snap_b)
        chart = {
            "title": "customers moved (from → to)",
            "bars": [(f"{m['from']} → {m['to']}", m["customers"]) for m in report["moves"][:30]],
        }
        emit_report(report, fmt, title=f"Movement {snap_a} → {snap_b}", chart=chart, crm=crm)

    @segment.command("export")
    @click.argument("segment_name", metavar="SEGMENT")
    @click.option("--scheme", required=True, help="rfm, abc, pyramid or a pack name.")
    @click.option("--snapshot", "snapshot_id", type=int, help="Default: the scheme's latest.")
    @click.option(
        "--output", required=True, type=click.Path(dir_okay=False, writable=True), help="CSV file"
    )
    @pass_crm
    def export_cmd(crm, segment_name, scheme, snapshot_id, output):
        "Campaign list: the segment's customers who consented to marketing, as CSV."
        found = snaps.campaign_list(crm, segment_name, scheme, snapshot_id)
        with open(output, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, [*snaps.CAMPAIGN_COLUMNS, "segment"])
            writer.writeheader()
            writer.writerows(found["rows"])
        snap = found["snapshot"]
        click.echo(
            f"{len(found['rows'])} customers of {segment_name!r} (snapshot {snap.id}, "
            f"{snap.scheme} as of {snap.as_of.isoformat()}) written to {output}; "
            f"{found['left_out']} left out without {found['purpose']!r} consent"
        )

    @segment.command("packs")
    @format_option(*FORMATS)
    @pass_crm
    def packs_cmd(crm, fmt):
        "List the industry packs (built in and from other plugins)."
        rows = [
            {"pack": p.name, "title": p.title, "description": p.description}
            for p in all_packs(crm).values()
        ]
        emit_report(rows, fmt, title="Industry packs", chart=False, crm=crm)

    @segment.command("pack")
    @click.argument("name")
    @analyses_cli.as_of_option
    @analyses_cli.scope_option
    @click.option("--snapshot", "save", is_flag=True, help="Also save the result as a snapshot.")
    @format_option(*FORMATS)
    @pass_crm
    def pack_cmd(crm, name, as_of, scope, save, fmt):
        "Run industry pack NAME (see 'segment packs')."
        filters = parse_scope(scope)
        rows = run_pack(crm, name, as_of.date(), filters)
        if save:
            snap = snaps.take_snapshot(crm, name, as_of.date(), filters, rows=rows)
            click.echo(f"saved snapshot {snap.id} ({snap.changed} changed)", err=True)
        pack = all_packs(crm)[name]
        chart = auto_charts(rows, pack.labels) if fmt == "html" else None
        title = f"{pack.title} as of {as_of.date().isoformat()}"
        emit_report(rows, fmt, title=title, chart=chart, crm=crm)
