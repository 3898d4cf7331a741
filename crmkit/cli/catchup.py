"""``crmkit plugins catch-up NAME``: a plugin reconciles with everything in the core."""

from __future__ import annotations

from typing import Any

import click

from crmkit.cli import UserError, pass_crm
from crmkit.cli.admin import plugins


@plugins.command("catch-up")
@click.argument("name")
@pass_crm
def plugins_catch_up(crm: Any, name: str) -> None:
    """Let plugin NAME reconcile with the core's records (all of them, not only the
    changes made while it was off); safe to repeat.

    crmkit does this by itself on the first write after a plugin comes back; this
    command is for doing it on demand.
    """
    from crmkit.core import catchup  # SQLAlchemy: imported when the command runs

    if name not in crm.plugin_names:
        loaded = ", ".join(crm.plugin_names) or "none"
        raise UserError(
            f"plugin {name!r} is not enabled and loaded in this configuration (loaded: "
            f"{loaded}); enable it, then run 'crmkit plugins catch-up {name}'"
        )
    if not catchup.implements_catch_up(crm, name):
        catchup.catch_up(crm, name)  # records it as enabled and up to date
        click.echo(f"plugin {name!r} has nothing to catch up (it implements no crmkit_catch_up)")
        return
    said = catchup.catch_up(crm, name)
    click.echo(f"plugin {name!r} caught up: {said or 'nothing needed reconciling'}")
