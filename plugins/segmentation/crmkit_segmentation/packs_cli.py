"""``crmkit segment packs|pack``: list and run the industry packs."""

from __future__ import annotations

import click

from . import access
from . import snapshots as snaps
from .analyses_cli import as_of_option, scope_option
from .output import FORMATS, auto_charts, emit_report
from .packs import all_packs, run_pack_counted
from .profiling import notes
from .scope import parse_scope


def add_commands(segment: click.Group) -> None:
    """Add ``packs`` and ``pack`` to the ``segment`` group."""
    from crmkit.plugin import format_option, pass_crm

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
    @as_of_option
    @scope_option
    @click.option("--snapshot", "save", is_flag=True, help="Also save the result as a snapshot.")
    @format_option(*FORMATS)
    @pass_crm
    def pack_cmd(crm, name, as_of, scope, save, fmt):
        "Run industry pack NAME (see 'segment packs')."
        filters = parse_scope(scope)
        owners = access.visible_owners(crm, access.RUN)
        rows, left_out = run_pack_counted(crm, name, as_of.date(), filters)
        if save:
            snap = snaps.take_snapshot(
                crm, name, as_of.date(), filters, rows=rows, left_out=left_out
            )
            click.echo(f"saved snapshot {snap.id} ({snap.changed} changed)", err=True)
            left_out = snap.left_out or 0
        rows = access.keep_visible(crm, rows, owners)  # the snapshot took every row
        pack = all_packs(crm)[name]
        chart = auto_charts(rows, pack.labels) if fmt == "html" else None
        title = f"{pack.title} as of {as_of.date().isoformat()}"
        emit_report(rows, fmt, title=title, chart=chart, crm=crm, notes=notes(left_out))
