"""The ``crmkit`` command line (click).

Every command takes ``--config PATH`` and ``--database URL`` (on the main
group, and on each command for convenience). Plugins add their command groups
through ``crmkit_register_commands``; inside a command, ``@pass_crm`` hands
over the open CRM. A user mistake prints one line to stderr and exits 1; the
traceback only shows with ``--verbose``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import attrs
import click

import crmkit
from crmkit import config as config_module
from crmkit import plugins as plugin_loader
from crmkit.errors import CrmError


@attrs.define
class CliState:
    config: str | None = None
    database: str | None = None
    verbose: bool = False
    crm: crmkit.CRM | None = None
    plugins: list[str | Any] | None = None  # names or plugin objects; overrides the config

    def open(self, *, upgrade: bool = False) -> crmkit.CRM:
        if self.crm is None:
            self.crm = crmkit.open(
                self.config, database=self.database, plugins=self.plugins, upgrade=upgrade
            )
            for status in self.crm.plugin_statuses:
                if status.enabled and not status.ok:
                    click.echo(
                        f"warning: plugin {status.name!r} is not loaded: {status.reason}", err=True
                    )
        return self.crm

    def load_config(self) -> config_module.Config:
        """The configuration with this run's --config, --database and plugin override."""
        config = config_module.load(self.config, database=self.database)
        if self.plugins is not None:
            config.plugins = list(self.plugins)
        return config

    def close(self) -> None:
        if self.crm is not None:
            self.crm.close()
            self.crm = None


class CrmkitGroup(click.Group):
    """Root group: adds enabled plugins' commands on first lookup; errors become one line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # plugins whose commands are added; per plugin because one process (a test run, an
        # integrator's script) may invoke the CLI several times with different plugin sets
        self._registered_plugins: set[str] = set()
        self._command_plugin: dict[str, str] = {}  # top-level command -> plugin that added it

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        """Add the commands of this run's enabled plugins (once per plugin and process)."""
        if "crmkit_enabled_plugins" in ctx.meta:
            return
        ctx.meta["crmkit_enabled_plugins"] = set()
        state = ctx.find_object(CliState)
        try:
            config = (state or CliState()).load_config()
            pm, _ = plugin_loader.load(config.plugins, where=config.where)
        except CrmError:
            return  # the error surfaces when a command opens the CRM
        named = pm.list_name_plugin()
        for name, plugin in named:
            if name not in self._registered_plugins:
                before = set(self.commands)
                others = [p for _, p in named if p is not plugin]
                pm.subset_hook_caller("crmkit_register_commands", remove_plugins=others)(cli=self)
                for command in set(self.commands) - before:
                    self._command_plugin[command] = name
                self._registered_plugins.add(name)
        ctx.meta["crmkit_enabled_plugins"] = {name for name, _ in named}

    def _visible(self, ctx: click.Context, name: str) -> bool:
        # a process may run the CLI several times (tests, an integrator's script): commands
        # of a plugin registered by an earlier run stay hidden unless enabled in this one
        owner = self._command_plugin.get(name)
        return owner is None or owner in ctx.meta.get("crmkit_enabled_plugins", ())

    @property
    def plugin_command_names(self) -> set[str]:
        """Top-level commands added by plugins (the CLI reference lists only the core's)."""
        return set(self._command_plugin)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return [name for name in super().list_commands(ctx) if self._visible(ctx, name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugin_commands(ctx)
        if not self._visible(ctx, cmd_name):
            return None
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except CrmError as exc:
            if _verbose(ctx):
                raise
            raise UserError(str(exc)) from None
        except Exception as exc:
            if _verbose(ctx):
                raise
            raise UserError(
                f"unexpected {type(exc).__name__}: {exc} (run with --verbose for the traceback)"
            ) from None


class UserError(click.ClickException):
    """One line on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _verbose(ctx: click.Context) -> bool:
    state = ctx.find_object(CliState)
    return bool(state and state.verbose)


def _set_state(field: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            state = ctx.ensure_object(CliState)
            setattr(state, field, value)
        return value

    return callback


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Accept ``--config`` and ``--database`` after a subcommand too."""
    command = click.option(
        "--database",
        "database_option",
        expose_value=False,
        callback=_set_state("database"),
        help="Database URL; overrides the config file.",
        is_eager=True,
    )(command)
    command = click.option(
        "--config",
        "config_option",
        expose_value=False,
        callback=_set_state("config"),
        type=click.Path(dir_okay=False),
        help="Path of crmkit.toml.",
        is_eager=True,
    )(command)
    return command


def pass_crm(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: call the command with the open CRM as first argument."""

    @click.pass_context
    @functools.wraps(command)
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        state = ctx.ensure_object(CliState)
        crm = state.open()
        ctx.call_on_close(state.close)
        return command(crm, *args, **kwargs)

    return common_options(wrapper)


@click.group(cls=CrmkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="CRMKIT_CONFIG",
    is_eager=True,  # read before --help, which lists the plugins this config enables
    callback=_set_state("config"),
    help="Path of crmkit.toml (default ./crmkit.toml).",
)
@click.option(
    "--database",
    is_eager=True,
    callback=_set_state("database"),
    help="Database URL, e.g. sqlite:///crm.db; overrides the config file.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(crmkit.__version__, prog_name="crmkit")
@click.pass_context
def cli(ctx: click.Context, config: str | None, database: str | None, verbose: bool) -> None:
    """crmkit: a plugin-based CRM. Start with 'crmkit init' or 'crmkit demo'."""
    state = ctx.ensure_object(CliState)
    state.config = state.config or config
    state.database = state.database or database
    state.verbose = verbose


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="crmkit", obj=CliState())


# Register the core's command modules (each adds its commands to ``cli``).
from crmkit.cli import admin, demo, records, transfer  # noqa: E402,F401

__all__ = ["CliState", "UserError", "cli", "common_options", "main", "pass_crm"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
