"""Schema migrations with Alembic: the core's history plus one branch per enabled plugin.

crmkit never migrates on import or on open unless asked: ``crm.upgrade()``
(``crmkit db upgrade``) brings the core and every enabled plugin to head, and
``crm.upgrade_sql()`` (``crmkit db upgrade --sql``) shows the SQL it would run.
A plugin enabled later gets its tables at the next upgrade. A plugin whose
registered folder is missing or holds no revisions is refused at upgrade
(:func:`check_plugin_folders`), instead of being skipped until its first write
fails on a missing table.

The drift check (:func:`schema_differences`, used by
``crmkit.testing.assert_migrations_match_tables`` and ``crmkit db revision
--autogenerate``) compares the migrated schema with the tables defined on
:data:`crmkit.core.tables.metadata`, restricted to the tables one branch owns
(:func:`owned_tables`).
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import io
import os
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Table, column, select, table
from sqlalchemy.exc import SQLAlchemyError

from crmkit.core.db import WRITE
from crmkit.core.tables import metadata
from crmkit.errors import PluginError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

# Alembic (0.1-0.2 s of imports) is imported inside the functions that need it: opening
# a CRM whose schema is at head reads the revision files' heads itself (at_heads).

CORE_MIGRATIONS = Path(__file__).parent / "migrations"
#: entry-point group of installed plugins (the same as crmkit.plugins.ENTRY_POINT_GROUP)
_ENTRY_POINTS = "crmkit"


def alembic_config(
    engine: Engine, plugin_version_dirs: Sequence[str] | Mapping[str, str]
) -> Config:
    """An Alembic Config for the core plus the given plugin branches (no alembic.ini).

    ``plugin_version_dirs`` is a list of folders, or a mapping of plugin name to
    folder (:func:`plugin_version_dirs`) so that errors about a folder name its plugin.
    """
    from alembic.config import Config

    if isinstance(plugin_version_dirs, Mapping):
        owners = {str(folder): name for name, folder in plugin_version_dirs.items()}
    else:
        owners = {str(folder): None for folder in plugin_version_dirs}
    config = Config()
    config.set_main_option("script_location", str(CORE_MIGRATIONS))
    locations = [str(CORE_MIGRATIONS / "versions"), *owners]
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = engine.url.render_as_string(hide_password=False)
    config.attributes["plugin_folders"] = owners
    return config


def plugin_version_dirs(pm: Any) -> dict[str, str]:
    """The migrations folder each enabled plugin registers, by plugin name.

    ``pm`` is the CRM's pluggy plugin manager (``crm.pm``); the core's own
    implementations (named ``crmkit.*``) are left out.
    """
    found: dict[str, str] = {}
    for impl in pm.hook.crmkit_register_migrations.get_hookimpls():
        name = pm.get_name(impl.plugin)
        if name is None or name.startswith("crmkit."):
            continue
        try:
            folder = impl.function()
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} failed in crmkit_register_migrations: "
                f"{type(exc).__name__}: {exc}",
                plugin=name,
            ) from exc
        if folder:
            found[name] = str(folder)
    return found


# -- refusing a plugin whose branch cannot be found ------------------------

FOLDER_FIX = (
    "return the versions folder of the plugin's Alembic branch, containing revisions, "
    'e.g. str(Path(__file__).parent / "migrations" / "versions"); a plugin without tables '
    "returns None"
)


def check_plugin_folders(config: Config) -> None:
    """Raise :class:`PluginError` for a plugin folder that is missing or holds no revisions.

    Alembic silently skips such a folder: the plugin's tables are never created
    and its first write fails on a missing table. The error names the plugin
    (when known), the folder and the fix.
    """
    folders: dict[str, str | None] = config.attributes.get("plugin_folders", {})
    if not folders:
        return
    with_revisions = revision_folders(config)
    for folder, name in folders.items():
        problem = folder_problem(Path(folder), with_revisions)
        if problem:
            who = (
                f"plugin {name!r}"
                if name
                else folder_owner(Path(folder)) or "a plugin object registered directly"
            )
            raise PluginError(
                f"{who} returned {folder} from crmkit_register_migrations, but {problem}, so "
                f"its tables would never be created; {FOLDER_FIX}",
                plugin=name,
            )


def revision_folders(config: Config) -> set[Path]:
    """The folders holding at least one revision Alembic loaded."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    return {Path(rev.path).parent.resolve() for rev in script.walk_revisions()}


def folder_problem(folder: Path, with_revisions: set[Path]) -> str | None:
    """Why ``folder`` cannot be a plugin's versions folder, or None when it can."""
    if not folder.is_absolute():
        return "the path is not absolute (build it from the plugin module's __file__)"
    if not folder.is_dir():
        return "that folder does not exist"
    if folder.resolve() in with_revisions:
        return None
    inner = folder / "versions"
    if inner.is_dir() and any(inner.glob("*.py")):
        return "it holds no revision files (its 'versions' folder does: return that one)"
    return "it holds no revision files"


def folder_owner(folder: Path) -> str | None:
    """Who holds ``folder``, for an error when the plugin's name was not passed.

    ``"plugin 'x'"`` when it is inside the package of installed plugin ``x`` (an
    entry point), ``"the plugin in package 'p'"`` when inside another imported
    package, else None.
    """
    target = folder.resolve()
    for entry in importlib.metadata.entry_points(group=_ENTRY_POINTS):
        try:
            spec = importlib.util.find_spec(entry.module.split(".")[0])
        except (ImportError, ValueError):
            continue
        locations = (spec.submodule_search_locations or []) if spec else []
        if any(target.is_relative_to(Path(loc).resolve()) for loc in locations):
            return f"plugin {entry.name!r}"
    for name, module in list(sys.modules.items()):
        paths = getattr(module, "__path__", None) if "." not in name else None
        if paths and any(target.is_relative_to(Path(p).resolve()) for p in list(paths)):
            return f"the plugin in package {name!r}"
    return None


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions the database is at (one per branch), empty for a new database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def head_revisions(config: Config) -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(config).get_heads())


CORE_BRANCH = "crmkit@head"
VERSION_TABLE = "alembic_version"


def known_revisions(config: Config) -> set[str]:
    """Every revision of the core and the enabled plugins' branches."""
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}


def pending(engine: Engine, config: Config) -> bool:
    """True when the core or an enabled plugin's branch is not at its head.

    Revisions of plugins that are disabled or uninstalled are ignored: their
    tables stay, and the core and the other plugins keep working.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    known = known_revisions(config)
    current = [rev for rev in current_revisions(engine) if rev in known]
    reached = {rev.revision for c in current for rev in script.iterate_revisions(c, "base")}
    return any(head not in reached for head in script.get_heads())


def at_heads(engine: Engine, version_dirs: Sequence[str]) -> bool:
    """True when the database is at the head of every branch in ``version_dirs``, found
    without Alembic: the heads read from the revision files (:func:`script_heads`) are
    all among the revisions stored in ``alembic_version``.

    False means "not shown": the caller asks Alembic (:func:`pending`), which also
    handles what this leaves out (a revision file it cannot read as plain literals,
    ``depends_on``, a database behind its heads, a missing folder).
    """
    heads = script_heads(version_dirs)
    if not heads:
        return False
    version = table(VERSION_TABLE, column("version_num"))
    try:
        with engine.connect() as connection:
            stored = set(connection.scalars(select(version.c.version_num)))
    except SQLAlchemyError:  # no version table yet (a new database), or no database
        return False
    return heads <= stored


#: the module-level names a revision file assigns, as Alembic reads them
_REVISION_NAMES = ("revision", "down_revision", "depends_on")


def script_heads(version_dirs: Sequence[str]) -> set[str] | None:
    """The head revisions of the revision files in ``version_dirs`` (a head: a revision
    no other names as its ``down_revision``), read with :mod:`ast`, never imported.

    None when that reading may differ from Alembic's: a folder that does not exist or
    holds no revisions, a file whose ``revision``/``down_revision`` are not literals,
    a ``depends_on``. Alembic reads the ``*.py`` files directly in each folder except
    ``__init__.py`` (and editor lock files ``.#*``); so does this.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for folder in map(Path, version_dirs):
        if not folder.is_dir():
            return None
        found = 0
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith(("__init__", ".#")):
                continue
            values = _revision_literals(path)
            if values is None:
                return None
            revision, down = values.get("revision"), values.get("down_revision")
            if not isinstance(revision, str) or values.get("depends_on") is not None:
                return None
            downs = (down,) if isinstance(down, str) else down or ()
            if not isinstance(downs, tuple | list) or not all(isinstance(d, str) for d in downs):
                return None
            revisions.add(revision)
            parents.update(downs)
            found += 1
        if not found:
            return None
    return revisions - parents


def _revision_literals(path: Path) -> dict[str, Any] | None:
    """The literal values ``path`` assigns to :data:`_REVISION_NAMES` at module level
    (``revision = "x"`` or ``revision: str = "x"``); None when one is not a literal."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in _REVISION_NAMES:
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    return values


def upgrade(engine: Engine, config: Config, target: str = "heads") -> None:
    """Upgrade the core first, then every enabled plugin branch, in one transaction.

    Plugin branches start from their own base (no ``depends_on`` on core
    revisions), so ordering is crmkit's job: the core reaches head before any
    plugin migration runs. Revisions of plugins that are not enabled (or no
    longer installed) are set aside while Alembic runs and put back after, so
    a company can enable only some plugins and uninstall others.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    check_plugin_folders(config)
    known = known_revisions(config)
    with engine.connect().execution_options(**WRITE) as connection:
        config.attributes["connection"] = connection
        try:
            foreign = [
                r
                for r in MigrationContext.configure(connection).get_current_heads()
                if r not in known
            ]
            version = table(VERSION_TABLE, column("version_num"))
            if foreign:
                connection.execute(version.delete().where(version.c.version_num.in_(foreign)))
            if target == "heads":
                command.upgrade(config, CORE_BRANCH)
            command.upgrade(config, target)
            if foreign:
                connection.execute(version.insert(), [{"version_num": r} for r in foreign])
            connection.commit()
        finally:
            config.attributes.pop("connection", None)


def upgrade_sql(engine: Engine, config: Config, target: str = "heads") -> str:
    """The SQL ``upgrade`` would run from the database's current revisions, as text."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    check_plugin_folders(config)
    script = ScriptDirectory.from_config(config)
    known = known_revisions(config)
    start = [r for r in current_revisions(engine) if r in known]
    buffer = io.StringIO()
    core_head = script.get_revision(CORE_BRANCH).revision
    core_revs = {r.revision for r in script.iterate_revisions(CORE_BRANCH, "base")}
    after_core = [r for r in start if r not in core_revs] + [core_head]
    for begin, destination in ((start, CORE_BRANCH), (after_core, target)):

        def plan(rev, _context, destination=destination):
            return script._upgrade_revs(destination, rev)

        with EnvironmentContext(
            config,
            script,
            fn=plan,
            as_sql=True,
            starting_rev=list(begin) or None,
            destination_rev=destination,
            output_buffer=buffer,
        ):
            script.run_env()
    return buffer.getvalue()


def downgrade(engine: Engine, config: Config, target: str) -> None:
    """Downgrade to ``target`` (``loyalty@base`` removes the loyalty plugin's tables)."""
    from alembic import command

    with engine.connect().execution_options(**WRITE) as connection:
        config.attributes["connection"] = connection
        try:
            command.downgrade(config, target)
            connection.commit()
        finally:
            config.attributes.pop("connection", None)


# -- drift: the migrated schema against the table definitions --------------


@dataclasses.dataclass(frozen=True)
class Owned:
    """The tables of one migration branch (the core's, or one plugin's).

    ``tables``: the tables its code defines on the shared metadata. ``prefixes``:
    a table in the database that nobody defines is counted as the branch's when
    its name starts with one of these (a table a migration creates but the code
    no longer defines), unless it matches one of the ``unmanaged`` patterns
    (``fnmatch``): tables the migrations create on purpose outside the metadata,
    such as a full-text index.
    """

    tables: frozenset[str]
    prefixes: tuple[str, ...] = ()
    unmanaged: tuple[str, ...] = ()

    def include_object(
        self, obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        """Alembic's ``include_object``: only this branch's tables are compared."""
        if type_ != "table":
            return True  # columns, indexes and constraints of an included table
        if name in self.tables:
            return True
        return (
            reflected
            and compare_to is None
            and str(name).startswith(self.prefixes)
            and name not in metadata.tables
            and not any(fnmatch.fnmatchcase(str(name), p) for p in self.unmanaged)
        )


def owned_tables(pm: Any, plugin: str | None, unmanaged: Sequence[str] = ()) -> Owned:
    """The tables of ``plugin``'s branch (the core's when None).

    A plugin's tables are the :class:`~sqlalchemy.Table` objects on the shared
    metadata held by the modules of its package (``crmkit_<name>.*``; for a
    plugin object registered directly, the module defining it), except the
    core's tables it imports. ``unmanaged``: see :class:`Owned`.
    """
    core = _tables_in(["crmkit.core.tables"])
    if plugin is None:
        return Owned(frozenset(core))
    obj = pm.get_plugin(plugin)
    if obj is None:
        raise PluginError(f"plugin {plugin!r} is not enabled", plugin=plugin)
    package = _package_of(obj)
    _import_all(package)
    modules = [m for m in list(sys.modules) if m == package or m.startswith(package + ".")]
    names = _tables_in(modules) - core
    prefixes = {f"{plugin}_"} | {n.split("_")[0] + "_" for n in names if "_" in n}
    return Owned(frozenset(names), tuple(sorted(prefixes)), tuple(unmanaged))


def _import_all(package: str) -> None:
    """Import every module of ``package`` but its migrations: a plugin's hook module
    imports its tables only when a hook needs them (start-up stays quick), and the
    tables are found on the imported modules. A module that cannot be imported (an
    optional dependency missing) is passed over, as it was before."""
    import pkgutil

    paths = getattr(sys.modules.get(package), "__path__", None)
    for info in pkgutil.walk_packages(paths or [], package + "."):
        if ".migrations" in info.name or info.name in sys.modules:
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:
            continue


def _package_of(plugin: Any) -> str:
    if isinstance(plugin, types.ModuleType):
        module = plugin.__name__
    else:
        module = plugin.__module__ if isinstance(plugin, type) else type(plugin).__module__
    return module.split(".")[0] if module.startswith("crmkit_") else module


def _tables_in(module_names: Sequence[str]) -> set[str]:
    found = set()
    for module_name in module_names:
        module = sys.modules.get(module_name)
        for value in vars(module).values() if module else ():
            if isinstance(value, Table) and value.metadata is metadata:
                found.add(value.name)
    return found


def migration_context(connection: Connection, owned: Owned, **opts: Any) -> MigrationContext:
    """A context comparing ``owned``'s tables (types included) with the shared metadata."""
    from alembic.runtime.migration import MigrationContext

    options = {
        "include_object": owned.include_object,
        "compare_type": True,
        "target_metadata": metadata,
        **opts,
    }
    return MigrationContext.configure(connection, opts=options)


def schema_differences(connection: Connection, owned: Owned) -> list[Any]:
    """Alembic's ``compare_metadata`` for ``owned``'s tables: [] when they match."""
    from alembic.autogenerate import compare_metadata

    return compare_metadata(migration_context(connection, owned), metadata)


def describe_difference(diff: Any) -> str:
    """One line for an item of :func:`schema_differences`."""
    if isinstance(diff, list):  # modify_* items come as a list of tuples per column
        return "; ".join(describe_difference(d) for d in diff)
    kind, *rest = diff
    if kind.startswith("modify_"):
        _schema, table_name, column_name, _info, existing, wanted = rest
        return f"{kind} {table_name}.{column_name}: migrated {existing!r}, defined {wanted!r}"
    if kind in {"add_column", "remove_column"}:
        _schema, table_name, col = rest
        return f"{kind} {table_name}.{col.name} ({col.type})"
    obj = rest[0]
    if kind in {"add_table", "remove_table"}:
        return f"{kind} {obj.name}"
    table_name = getattr(getattr(obj, "table", None), "name", None) or getattr(
        getattr(obj, "parent", None), "name", "?"
    )
    return f"{kind} {getattr(obj, 'name', None) or obj!r} on {table_name}"
