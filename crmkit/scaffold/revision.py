"""``crmkit db revision``: write a new revision into an enabled plugin's Alembic branch.

With ``autogenerate`` the revision holds what Alembic's autogenerate finds
between the database (which must be at head) and the tables defined on
crmkit's shared metadata, restricted to the plugin's own tables
(:func:`crmkit.core.migrate.owned_tables`); without it, empty ``upgrade`` and
``downgrade`` functions to fill in. The revision goes into the folder the plugin
returns from ``crmkit_register_migrations``, follows the branch's head
(``down_revision``), and the first revision of a branch gets
``branch_labels = ("<plugin>",)``. Ids continue the branch's numbering
(``visits0002`` after ``visits0001``). Operations are rendered in batch form
(``op.batch_alter_table``), which runs on SQLite and PostgreSQL alike, and the
crmkit column types are imported from the public ``crmkit.plugin``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import attrs
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.script import ScriptDirectory
from alembic.util import rev_id, to_tuple
from jinja2 import Environment, StrictUndefined

from crmkit.core import migrate
from crmkit.core.tables import metadata
from crmkit.errors import ConfigError, PluginError, SchemaOutOfDate

TEMPLATE = Path(__file__).parent / "revision.py.jinja"
#: crmkit's column types, rendered by name and imported from crmkit.plugin
PUBLIC_TYPES = {"crmkit.core.types": ("Money", "UTCDateTime")}


@attrs.frozen
class Written:
    """What :func:`write_revision` wrote: the file, its id and the operations it holds."""

    path: Path
    revision: str
    down_revision: str | None
    operations: int


def write_revision(crm: Any, plugin: str, message: str, *, autogenerate: bool) -> Written:
    """Write a new revision of ``plugin``'s branch; return what was written."""
    folder = _plugin_folder(crm, plugin)
    config = migrate.alembic_config(crm.engine, migrate.plugin_version_dirs(crm.pm))
    head, ids = _branch(config, folder, plugin)
    if autogenerate and migrate.pending(crm.engine, config):
        raise SchemaOutOfDate(
            "the database is not at head, so autogenerate would compare the tables with an "
            "old schema; run 'crmkit db upgrade' first, then 'crmkit db revision' again"
        )
    revision = _next_id(plugin, ids)
    upgrade, downgrade, imports, count = (
        _autogenerate(crm, plugin) if autogenerate else ("pass", "pass", [], 0)
    )
    path = folder / f"{revision}_{_slug(message)}.py"
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    text = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        message=message,
        plugin=plugin,
        revision=revision,
        down_revision=head,
        branch_labels=None if head else (plugin,),
        created=dt.date.today().isoformat(),
        imports=imports,
        upgrade=upgrade,
        downgrade=downgrade,
    )
    path.write_text(text, encoding="utf-8")
    return Written(path=path, revision=revision, down_revision=head, operations=count)


def _plugin_folder(crm: Any, plugin: str) -> Path:
    if plugin not in crm.plugin_names:
        raise ConfigError(
            f"plugin {plugin!r} is not enabled (enabled: {', '.join(crm.plugin_names) or 'none'}); "
            f"add it to plugins in crmkit.toml or set CRMKIT_PLUGINS={plugin}"
        )
    folder = migrate.plugin_version_dirs(crm.pm).get(plugin)
    if folder is None:
        raise PluginError(
            f"plugin {plugin!r} returns no folder from crmkit_register_migrations; "
            f"{migrate.FOLDER_FIX}",
            plugin=plugin,
        )
    path = Path(folder)
    if not path.is_absolute() or not path.is_dir():
        raise PluginError(
            f"plugin {plugin!r} returned {folder} from crmkit_register_migrations, but "
            f"{migrate.folder_problem(path, set())}; {migrate.FOLDER_FIX}",
            plugin=plugin,
        )
    return path


def _branch(config: Any, folder: Path, plugin: str) -> tuple[str | None, set[str]]:
    """The head revision of the branch in ``folder`` (None when empty) and its ids."""
    script = ScriptDirectory.from_config(config)
    here = folder.resolve()
    revisions = [r for r in script.walk_revisions() if Path(r.path).parent.resolve() == here]
    ids = {r.revision for r in revisions}
    below = {down for r in revisions for down in to_tuple(r.down_revision, default=())}
    heads = sorted(ids - below)
    if len(heads) > 1:
        raise PluginError(
            f"plugin {plugin!r}'s branch has several heads ({', '.join(heads)}); merge them "
            "into one revision first",
            plugin=plugin,
        )
    return (heads[0] if heads else None), ids


def _next_id(plugin: str, ids: set[str]) -> str:
    numbered = re.compile(rf"^{re.escape(plugin)}(\d{{4}})$")
    numbers = [int(m.group(1)) for m in map(numbered.match, ids) if m]
    if len(numbers) == len(ids):  # the convention: <plugin>0001, <plugin>0002, ...
        return f"{plugin}{max(numbers, default=0) + 1:04d}"
    return f"{plugin}_{rev_id()}"


def _slug(message: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40].rstrip("_")
    return slug or "revision"


def _autogenerate(crm: Any, plugin: str) -> tuple[str, str, list[str], int]:
    """(upgrade body, downgrade body, import lines, number of operations)."""
    owned = migrate.owned_tables(crm.pm, plugin)
    contexts: list[Any] = []
    public: set[str] = set()

    def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
        contexts.append(autogen_context)
        names = PUBLIC_TYPES.get(type(obj).__module__, ())
        if type_ == "type" and type(obj).__name__ in names:
            public.add(type(obj).__name__)
            return f"{type(obj).__name__}()"
        return False

    with crm.engine.connect() as connection:
        context = migrate.migration_context(connection, owned)
        script = produce_migrations(context, metadata)
        bodies = [
            render_python_code(
                ops, render_as_batch=True, render_item=render_item, migration_context=context
            )
            for ops in (script.upgrade_ops, script.downgrade_ops)
        ]
    imports = sorted({line for c in contexts for line in c.imports})
    if public:
        imports.append(f"from crmkit.plugin import {', '.join(sorted(public))}")
    count = len(script.upgrade_ops.as_diffs()) if script.upgrade_ops else 0
    return bodies[0], bodies[1], imports, count
