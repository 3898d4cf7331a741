"""Administration commands: init, db (upgrade, current, downgrade, revision), plugins."""

from __future__ import annotations

from pathlib import Path

import click

from crmkit import config as config_module
from crmkit import plugins as plugin_loader
from crmkit.cli import CliState, UserError, cli, common_options
from crmkit.cli.output import emit, format_option


@cli.command()
@click.option(
    "--database",
    "init_database",
    default=None,
    help="Database URL (default sqlite:///crm.db next to the file).",
)
@click.option(
    "--plugins",
    "plugin_list",
    default=None,
    help="Comma-separated plugins to enable (default: every installed one).",
)
@click.option(
    "--path",
    "path",
    default="crmkit.toml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the config file.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.pass_context
def init(
    ctx: click.Context, init_database: str | None, plugin_list: str | None, path: str, force: bool
) -> None:
    """Write crmkit.toml and bring the database schema to head."""
    state = ctx.ensure_object(CliState)
    target = Path(state.config or path)
    if target.exists() and not force:
        raise UserError(f"{target} already exists; use --force to overwrite it")
    database = init_database or state.database or config_module.DEFAULT_DATABASE
    names = (
        sorted(plugin_loader.installed())
        if plugin_list is None
        else config_module.parse_plugin_list(plugin_list, where="--plugins")
    )
    config = config_module.Config(database=database, plugins=names)
    pm, statuses = plugin_loader.load(names, where=str(target))
    defaults = {
        spec.name: spec.defaults
        for spec in pm.hook.crmkit_register_settings()
        if spec and spec.defaults
    }
    target.write_text(config_module.dump(config, defaults), encoding="utf-8")
    state.config, state.database = str(target), None
    crm = state.open(upgrade=True)
    ctx.call_on_close(state.close)
    click.echo(
        f"wrote {target}; database {crm.engine.url.render_as_string(hide_password=True)} is at "
        f"{', '.join(crm.current_revisions())}"
    )
    click.echo(f"plugins enabled: {', '.join(crm.plugin_names) or 'none'}")


@cli.group()
def db() -> None:
    """Database schema: upgrade, current revision, downgrade, new plugin revisions."""


@db.command("upgrade")
@click.option(
    "--sql", is_flag=True, help="Print the SQL the upgrade would run, without running it."
)
@common_options
@click.pass_context
def db_upgrade(ctx: click.Context, sql: bool) -> None:
    """Bring the core and every enabled plugin's tables to head."""
    state = ctx.ensure_object(CliState)
    import crmkit
    from crmkit.core import migrate

    crm = crmkit.CRM(state.load_config())
    try:
        # the folders by plugin name, so that a plugin whose folder is wrong is named
        config = migrate.alembic_config(crm.engine, migrate.plugin_version_dirs(crm.pm))
        if sql:
            text = migrate.upgrade_sql(crm.engine, config)
            click.echo(text.rstrip() or "-- the database is already at head; nothing to run")
            return
        before = crm.current_revisions()
        migrate.upgrade(crm.engine, config)
        after = crm.current_revisions()
        click.echo(f"upgraded {', '.join(before) or 'empty database'} -> {', '.join(after)}")
    finally:
        crm.close()


@db.command("current")
@common_options
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Show the revision of each migration branch and whether it is at head."""
    state = ctx.ensure_object(CliState)
    import crmkit
    from crmkit.core import migrate

    crm = crmkit.CRM(state.load_config())
    try:
        current = crm.current_revisions()
        heads = migrate.head_revisions(crm.alembic_config())
        known = migrate.known_revisions(crm.alembic_config())
        aside = [rev for rev in current if rev not in known]
        click.echo(f"current: {', '.join(current) or '(empty database)'}")
        click.echo(f"heads:   {', '.join(heads)}")
        if aside:
            click.echo(
                f"set aside: {', '.join(aside)} (plugins not enabled or not installed; "
                "their tables stay)"
            )
        click.echo(
            "status:  "
            + (
                "upgrade needed: run 'crmkit db upgrade'"
                if migrate.pending(crm.engine, crm.alembic_config())
                else "at head"
            )
        )
    finally:
        crm.close()


@db.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@common_options
@click.pass_context
def db_downgrade(ctx: click.Context, target: str, yes: bool) -> None:
    """Downgrade to TARGET: a revision (c0003), BRANCH@base (removes a plugin's tables,
    e.g. loyalty@base), BRANCH@-1 (undoes its last revision) or base (every table).

    A downgrade drops data: it lists the tables and columns it drops (with their rows)
    and asks for confirmation; without a terminal to answer on, it needs --yes. A target
    that would leave a table referring to a dropped one is refused before anything
    changes; the plugins' branches go first, the core's last, in one transaction.
    """
    import crmkit
    from crmkit.core import downgrade

    # not pass_crm: that refuses a database below head, which a downgrade leaves
    crm = crmkit.CRM(ctx.ensure_object(CliState).load_config())
    try:
        found = downgrade.plan(crm, target)
        if found.empty:
            click.echo(f"nothing to downgrade: the database is already at {target}")
            return
        click.echo(f"downgrading to {target} drops these, with their data:", err=True)
        for line in found.describe():
            click.echo(f"  {line}", err=True)
        click.echo(
            "'crmkit db upgrade' recreates them empty: back the database up first.", err=True
        )
        if not yes:
            _confirm_downgrade()
        downgrade.run(crm, found)
        now = ", ".join(crm.current_revisions()) or "base (no tables)"
        click.echo(f"downgraded to {target}; now at {now}")
    finally:
        crm.close()


def _confirm_downgrade() -> None:
    """Ask on stdin; no answer (no terminal, end of input) refuses."""
    try:
        answer = click.confirm("Downgrade and drop this data?", default=False, err=True)
    except click.Abort:
        click.echo(err=True)  # end the prompt's line
        raise UserError(
            "downgrade not confirmed: no answer (no terminal to ask on?); nothing was "
            "changed; add --yes to downgrade without asking"
        ) from None
    if not answer:
        raise UserError("downgrade cancelled; nothing was changed")


@db.command("revision")
@click.option("--plugin", "plugin_name", required=True, help="The enabled plugin's branch.")
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Fill it with the differences between the plugin's tables and the database "
    "(which must be at head); without it the revision is empty.",
)
@common_options
@click.pass_context
def db_revision(ctx: click.Context, plugin_name: str, message: str, autogenerate: bool) -> None:
    """Write a new revision into an enabled plugin's migrations folder."""
    state = ctx.ensure_object(CliState)
    import crmkit
    from crmkit.scaffold.revision import write_revision

    crm = crmkit.CRM(state.load_config())
    try:
        written = write_revision(crm, plugin_name, message, autogenerate=autogenerate)
    finally:
        crm.close()
    after = f"after {written.down_revision}" if written.down_revision else "first of the branch"
    click.echo(f"wrote {written.path} ({written.revision}, {after})")
    if autogenerate:
        click.echo(
            f"{written.operations} change(s) found; review it, then run 'crmkit db upgrade'"
            if written.operations
            else "no differences found: the revision is empty"
        )


@cli.group()
def plugins() -> None:
    """Installed plugins and their status."""


@plugins.command("list")
@format_option("table", "json", "csv")
@common_options
@click.pass_context
def plugins_list(ctx: click.Context, fmt: str) -> None:
    """Name, version, enabled, status (ok or why not) and hooks of every plugin."""
    state = ctx.ensure_object(CliState)
    config = state.load_config()
    enabled = config.plugins
    available = plugin_loader.installed()
    missing = [n for n in (enabled or []) if isinstance(n, str) and n not in available]
    _, statuses = plugin_loader.load(
        [n for n in enabled if not isinstance(n, str) or n in available]
        if enabled is not None
        else None,
        where=config.plugins_where,
    )
    rows = [
        {
            "name": s.name,
            "version": s.version or "",
            "enabled": "yes" if s.enabled else "no",
            "status": "; ".join(
                [s.status if not s.reason else f"{s.status}: {s.reason}"]
                + [f"warning: {w}" for w in s.warnings]
            ),
            "hooks": ", ".join(h.removeprefix("crmkit_") for h in s.hooks),
        }
        for s in statuses
    ]
    rows += [
        {
            "name": n,
            "version": "",
            "enabled": "yes",
            "status": "missing: enabled in the config but not installed",
            "hooks": "",
        }
        for n in missing
    ]
    emit(rows, fmt, ["name", "version", "enabled", "status", "hooks"])


@cli.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Where to write it (default ./crmkit-NAME, with dashes for underscores).",
)
@click.option("--description", default="", help="One line saying what the plugin does.")
def plugin_new(name: str, directory: str | None, description: str) -> None:
    """Generate an installable plugin package NAME with tests, a migration and a command."""
    from crmkit.scaffold import distribution_name, generate

    target = Path(directory or distribution_name(name))
    written = generate(name, target, description)
    click.echo(f"wrote {len(written)} files to {target}")
    click.echo(f'next: pip install -e "{target}[test]" && cd {target} && pytest')
