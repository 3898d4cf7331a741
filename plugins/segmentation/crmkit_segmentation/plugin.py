"""crmkit segmentation plugin: hooks and CLI."""

from __future__ import annotations

from pathlib import Path

import click

import crmkit

from . import rfm
from .output import FORMATS, emit_report

CRMKIT_API = ">=1.0,<2"


class Specs:
    @staticmethod
    @crmkit.hookspec(firstresult=True)
    def crmkit_segmentation_current_segments(crm, customer_ids):
        """Return ``{customer_id: {scheme: segment_label}}`` from the latest snapshots."""

    @staticmethod
    @crmkit.hookspec
    def crmkit_segmentation_segments_changed(ctx, changes):
        """Event: customers whose segment changed (fired inside the snapshot transaction)."""


@crmkit.hookimpl
def crmkit_register_hookspecs():
    return Specs


@crmkit.hookimpl
def crmkit_register_template_dirs():
    return [str(Path(__file__).parent / "templates")]


@crmkit.hookimpl
def crmkit_register_commands(cli):
    from crmkit.cli import pass_crm
    from crmkit.cli.output import format_option

    @cli.group()
    def segment():
        "Customer segmentation (RFM)."

    @segment.command("rfm")
    @click.option("--as-of", "as_of", required=True, type=click.DateTime(["%Y-%m-%d"]))
    @click.option("--scope", multiple=True, help="field=value filter, e.g. region=North")
    @click.option("--bins", default=5, show_default=True)
    @format_option(*FORMATS)
    @pass_crm
    def rfm_cmd(crm, as_of, scope, bins, fmt):
        "RFM scores (quintiles by default) computed in SQL."
        filters = {}
        for item in scope:
            if "=" not in item:
                raise crmkit.errors.ValidationError(f"--scope {item!r}: expected field=value")
            key, value = item.split("=", 1)
            filters[key] = value
        rows = rfm.name_segments(rfm.rfm_scores(crm, as_of.date(), filters, bins), bins)
        for row in rows:
            row["monetary"] = str(row["monetary"])
        emit_report(rows, fmt, title=f"RFM as of {as_of.date().isoformat()}", crm=crm)
