"""The ``crmkit segment`` command group, built from the ``*_cli`` modules.

The plugin registers it as a lazy command (:func:`crmkit.plugin.lazy_command`): this
module, and the analysis code the commands use, load only when a ``segment`` command runs.
"""

from __future__ import annotations

import click

from . import analyses_cli, clv_cli, packs_cli, snapshots_cli

#: the group's help, also what ``crmkit --help`` lists (the plugin's hook passes it)
HELP = "Customer segmentation: RFM, snapshots, movement, campaign lists, industry packs."


@click.group(help=HELP)
def segment() -> None:
    pass


for commands in (clv_cli, analyses_cli, snapshots_cli, packs_cli):
    commands.add_commands(segment)
