"""``crmkit segment snapshot|snapshots|diff|export``: dated snapshots and campaign lists."""

from __future__ import annotations

from typing import Any

import click

from crmkit.plugin import csv_writer

from . import snapshots as snaps
from .analyses_cli import as_of_option, scope_option
from .output import FORMATS, emit_report
from .profiling import note, notes
from .scope import parse_scope


def snapshot_row(snap: snaps.Snapshot) -> dict[str, Any]:
    """What ``segment snapshot`` prints about the snapshot it took."""
    return {
        "snapshot": snap.id,
        "scheme": snap.scheme,
        "as_of": snap.as_of,
        "customers": snap.customers,
        "changed": snap.changed,
        "left_out": snap.left_out,
    }


def snapshot_rows(crm: Any, scheme: str | None) -> list[dict[str, Any]]:
    """One row per saved snapshot (of ``scheme`` when given), oldest first."""
    return [
        {"snapshot": s.id, "scheme": s.scheme, "as_of": s.as_of, "customers": s.customers,
         "created_at": s.created_at, "scope": s.params.get("scope") or {}}
        for s in snaps.list_snapshots(crm, scheme)
    ]  # fmt: skip


def movement_chart(report: dict[str, Any]) -> dict[str, Any]:
    """The bars of a movement report: the 30 largest from → to moves."""
    return {
        "title": "customers moved (from → to)",
        "bars": [(f"{m['from']} → {m['to']}", m["customers"]) for m in report["moves"][:30]],
    }


def write_campaign_list(found: dict[str, Any], output: str) -> None:
    """Write :func:`.snapshots.campaign_list`'s rows to ``output`` as CSV with a header.

    Through :func:`crmkit.plugin.csv_writer`: the list goes to spreadsheets, so a cell that
    would run as a formula there (a name ``=HYPERLINK(...)``) gets a leading quote."""
    columns = [*snaps.CAMPAIGN_COLUMNS, "segment"]
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv_writer(handle, lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows([row.get(c) for c in columns] for row in found["rows"])


def campaign_summary(found: dict[str, Any], segment_name: str, output: str) -> str:
    """The line ``segment export`` ends with: how many were written and left out."""
    snap = found["snapshot"]
    line = (
        f"{len(found['rows'])} customers of {segment_name!r} (snapshot {snap.id}, "
        f"{snap.scheme} as of {snap.as_of.isoformat()}) written to {output}; "
        f"{found['left_out']} left out without {found['purpose']!r} consent"
    )
    if found.get("left_out_profiling"):
        line += f"; {note(found['left_out_profiling'])}"
    return line


def add_commands(segment: click.Group) -> None:
    """Add ``snapshot``, ``snapshots``, ``diff`` and ``export`` to the ``segment`` group."""
    from crmkit.plugin import format_option, pass_crm

    @segment.command("snapshot")
    @click.argument("scheme")
    @as_of_option
    @scope_option
    @format_option(*FORMATS)
    @pass_crm
    def snapshot_cmd(crm, scheme, as_of, scope, fmt):
        "Save SCHEME's segments as of a date (rfm, abc, pyramid or a pack name)."
        snap = snaps.take_snapshot(crm, scheme, as_of.date(), parse_scope(scope))
        title = f"Snapshot {snap.id}"
        left = notes(snap.left_out or 0)
        emit_report([snapshot_row(snap)], fmt, title=title, chart=False, crm=crm, notes=left)

    @segment.command("snapshots")
    @click.option("--scheme", help="Only this scheme.")
    @format_option(*FORMATS)
    @pass_crm
    def snapshots_cmd(crm, scheme, fmt):
        "List the saved snapshots."
        emit_report(snapshot_rows(crm, scheme), fmt, title="Snapshots", chart=False, crm=crm)

    @segment.command("diff")
    @click.argument("snap_a", type=int)
    @click.argument("snap_b", type=int)
    @format_option(*FORMATS)
    @pass_crm
    def diff_cmd(crm, snap_a, snap_b, fmt):
        "Movement matrix: customers per (segment in SNAP_A, segment in SNAP_B)."
        report = snaps.movement(crm, snap_a, snap_b)
        title = f"Movement {snap_a} → {snap_b}"
        emit_report(report, fmt, title=title, chart=movement_chart(report), crm=crm)

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
        write_campaign_list(found, output)
        click.echo(campaign_summary(found, segment_name, output))
