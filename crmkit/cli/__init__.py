"""The ``crmkit`` command line (click).

Every command takes ``--config PATH``, ``--database URL`` and ``--as STAFF``, before
or after the command's name (``crmkit --config x.toml customer list`` and ``crmkit
customer list --config x.toml`` are the same; the root group moves them to
the front before parsing, so plugins' commands take them too). Commands act as the
local operator, recorded as ``cli:<os user>`` and holding every permission; with
``--as STAFF`` (or ``CRMKIT_AS``) they act as that staff member, with their permissions. Plugins add
their command groups through ``crmkit_register_commands`` (as :func:`lazy_command`
placeholders, so ``crmkit --help`` imports no plugin's command module); inside a command,
``@pass_crm`` hands over the open CRM. A user mistake prints one line to
stderr and exits 1; the traceback only shows with ``--verbose``. Warnings the
library logs (a plugin's failing 360 section, an after-commit hook) show as
one ``warning:`` line each on stderr.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import click

import crmkit
from crmkit import config as config_module
from crmkit import plugins as plugin_loader
from crmkit.core.actors import Actor
from crmkit.errors import CrmError, PluginError

if TYPE_CHECKING:
    from crmkit.crm import CRM


@attrs.define
class CliState:
    """One command run's state: --config, --database, --as, --verbose, the plugin
    override, and the CRM it opens."""

    config: str | None = None
    database: str | None = None
    verbose: bool = False
    crm: CRM | None = None
    plugins: list[str | Any] | None = None  # names or plugin objects; overrides the config
    #: --as STAFF: the staff member the command acts as (None: the operator, cli:<os user>)
    acting_as: str | None = None

    def open(self, *, upgrade: bool = False) -> CRM:
        """The CRM of this command run, opened on first use (warns about plugins that
        failed to load). It acts as the operator ``cli:<os user>``, or as the staff
        member of ``--as``."""
        if self.crm is None:
            crm = crmkit.open(
                self.config,
                database=self.database,
                plugins=self.plugins,
                upgrade=upgrade,
                actor=Actor.operator("cli"),
            )
            if self.acting_as:
                try:
                    crm.default_actor = crm.staff.actor(self.acting_as)
                except BaseException:
                    crm.close()
                    raise
            self.crm = crm
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
            config.plugins_source = "the plugins this run was given (CliState.plugins)"
        return config

    def close(self) -> None:
        """Close the CRM if this run opened one."""
        if self.crm is not None:
            self.crm.close()
            self.crm = None


#: Options of the root group that may also come after the command's name.
GLOBAL_OPTIONS = ("--config", "--database", "--as")


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with every ``--config X`` / ``--database X`` / ``--as X`` (or ``--config=X``)
    moved first.

    Their order among themselves is kept, so the last one given wins; nothing after
    ``--`` moves. Commands must not define options of these names for another meaning.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name, has_value, _ = arg.partition("=")
        if name in GLOBAL_OPTIONS and (has_value or i + 1 < len(args)):
            size = 1 if has_value else 2
            front.extend(args[i : i + size])
            i += size
            continue
        rest.append(arg)
        i += 1
    return front + rest


class LazyCommand(click.Command):
    """A command known by its name and short help until it runs: then ``target``
    (``"module:attribute"``, a click command) is imported and takes its place.

    The root group lists it in ``crmkit --help`` without importing its module; the
    command's own ``--help``, its run and shell completion below it use the real one.
    """

    def __init__(self, name: str, target: str, help: str, *, hidden: bool = False) -> None:
        super().__init__(name, help=help, hidden=hidden)
        self.target = target

    def load(self) -> click.Command:
        """Import and return the command this placeholder stands for."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise PluginError(f"{self.target} is no click command (lazy command {self.name!r})")
        return command


def lazy_command(name: str, target: str, help: str) -> click.Command:
    """A top-level command that imports its module only when it runs.

    ``crmkit_register_commands`` adds one with ``cli.add_command(lazy_command("kb",
    "crmkit_kb.cli:kb", "Knowledge base: ..."))``: ``crmkit --help`` lists ``kb`` with
    ``help`` (shortened as click shortens any command's) and imports nothing of the
    plugin's commands; ``crmkit kb ...`` (its ``--help`` too) imports ``crmkit_kb.cli``
    and runs its ``kb`` command or group. ``target`` is ``"module:attribute"``; keep
    ``help`` the same as that command's help (the bundled plugins' tests compare them).
    """
    return LazyCommand(name, target, help)


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
            ctx.meta["crmkit_config"] = config
            pm, statuses = plugin_loader.load(config.plugins, where=config.plugins_where)
        except CrmError as exc:
            # surfaces when a command opens the CRM, or (a plugin's) when no command matches
            if isinstance(exc, PluginError):
                ctx.meta["crmkit_plugin_error"] = exc
            return
        ctx.meta["crmkit_plugin_statuses"] = statuses
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
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, LazyCommand) and not ctx.meta.get("crmkit_listing"):
            command = self.commands[cmd_name] = command.load()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the listing needs only names and short helps: lazy commands stay unimported
        ctx.meta["crmkit_listing"] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            del ctx.meta["crmkit_listing"]

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        ctx.meta["crmkit_listing"] = True
        try:
            return super().shell_complete(ctx, incomplete)
        finally:
            del ctx.meta["crmkit_listing"]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        if name and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            why = self._why_missing(ctx, name)
            if why:
                raise UserError(why)
        return super().resolve_command(ctx, args)

    def _why_missing(self, ctx: click.Context, name: str) -> str | None:
        """Why ``name`` is no command in this run, when a plugin explains it (else None)."""
        error = ctx.meta.get("crmkit_plugin_error")
        if error is not None:
            return str(error)
        statuses = {s.name: s for s in ctx.meta.get("crmkit_plugin_statuses", ())}
        plugin = self._command_plugin.get(name) or _plugin_named(name, statuses)
        if plugin is None or plugin not in statuses:  # not an installed plugin's command
            return None
        status = statuses.get(plugin)
        if status is not None and status.enabled:
            if status.ok:
                return None
            return f"plugin {plugin!r} is enabled but not loaded: {status.reason}"
        return not_enabled_message(plugin, ctx.meta.get("crmkit_config"))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # a closed pipe (``| head``) ends the run quietly: see main()
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


def _plugin_named(name: str, statuses: dict[str, Any]) -> str | None:
    """The installed plugin a command name stands for: the same name, or a prefix of one
    (``segment`` for ``segmentation``), at least three letters long."""
    if name in statuses:
        return name
    found = [p for p in statuses if len(name) >= 3 and p.startswith(name)]
    return found[0] if len(found) == 1 else None


def not_enabled_message(plugin: str, config: config_module.Config | None) -> str:
    """What to say when an installed plugin's command is used but the plugin is not enabled."""
    text = f"plugin {plugin!r} is installed but not enabled"
    source = config.plugins_source if config else None
    variable = config_module.PLUGINS_VARIABLE
    enabled = [p for p in (config.plugins or []) if isinstance(p, str)] if config else []
    listed = ",".join([*enabled, plugin])
    if source and variable in source:
        how = f"add it to {variable} (now {','.join(enabled)!r}): {variable}={listed}"
    elif source:
        how = f"add it to {source}"
    elif config is not None and config.path is not None:
        how = f"add {plugin!r} to plugins in {config.path} (or set {variable}={listed} for one run)"
    else:
        how = f"add it to plugins in crmkit.toml, or set {variable}={listed}"
    return f"{text}; to enable it, {how}, then run 'crmkit db upgrade' for its tables"


class UserError(click.ClickException):
    """One line on stderr, exit status 1."""

    def show(self, file: Any = None) -> None:
        """Print the message as one ``error:`` line on stderr."""
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
    """Declare ``--config`` and ``--database`` on a command (they show in its --help).

    The root group already accepts both anywhere on the line (see
    :func:`hoist_global_options`), so this only documents them on the command.
    """
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
@click.option(
    "--as",
    "acting_as",
    metavar="STAFF",
    envvar="CRMKIT_AS",
    is_eager=True,
    callback=_set_state("acting_as"),
    help="Act as this staff member, with their permissions (default: the local operator, "
    "recorded as cli:<os user>, who may do everything).",
)
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(crmkit.__version__, prog_name="crmkit")
@click.pass_context
def cli(
    ctx: click.Context,
    config: str | None,
    database: str | None,
    acting_as: str | None,
    verbose: bool,
) -> None:
    """crmkit: a plugin-based CRM. Start with 'crmkit init' or 'crmkit demo'."""
    state = ctx.ensure_object(CliState)
    state.config = state.config or config
    state.database = state.database or database
    state.acting_as = state.acting_as or acting_as
    state.verbose = verbose


class EchoLogHandler(logging.Handler):
    """Log records (warnings and worse) as one ``warning: ...`` line each on stderr.

    The library logs and never prints; the command line shows what it logged (the
    command goes on: an error that ends it is a :class:`UserError`). The traceback
    of a record follows only with ``--verbose``.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"warning: {record.getMessage()}"
            ctx = click.get_current_context(silent=True)
            if record.exc_info and ctx is not None and _verbose(ctx):
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            click.echo(text, err=True)
        except Exception:  # a handler never raises into the code that logged
            self.handleError(record)


def install_log_handler() -> None:
    """Show the library's warnings on stderr (once per process; the console script's)."""
    root = logging.getLogger()
    if not any(isinstance(h, EchoLogHandler) for h in root.handlers):
        root.addHandler(EchoLogHandler())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    When the reader of the output goes away (``crmkit db current | head -1``), the run
    ends quietly with status 1, without a traceback: Python's recipe for SIGPIPE
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    install_log_handler()
    try:
        cli.main(args=argv, prog_name="crmkit", obj=CliState())
        sys.stdout.flush()  # a write still buffered fails here, not at interpreter exit
    except BrokenPipeError:
        # the interpreter flushes stdout again at exit: point it at devnull first
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


# Register the core's command modules (each adds its commands to ``cli``).
from crmkit.cli import admin, audit, catchup, demo, identity, merge, records, serve, transfer  # noqa: E402,F401,I001

__all__ = [
    "CliState",
    "LazyCommand",
    "UserError",
    "cli",
    "common_options",
    "lazy_command",
    "main",
    "pass_crm",
]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
