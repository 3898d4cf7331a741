"""Schema migrations with Alembic: the core's history plus one branch per enabled plugin.

crmkit never migrates on import or on open unless asked: ``crm.upgrade()``
(``crmkit db upgrade``) brings the core and every enabled plugin to head, and
``crm.upgrade_sql()`` (``crmkit db upgrade --sql``) shows the SQL it would run.
A plugin enabled later gets its tables at the next upgrade.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, column, table

from crmkit.core.db import WRITE

CORE_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine, plugin_version_dirs: Sequence[str]) -> Config:
    """An Alembic Config for the core plus the given plugin branches (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(CORE_MIGRATIONS))
    locations = [str(CORE_MIGRATIONS / "versions"), *map(str, plugin_version_dirs)]
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = engine.url.render_as_string(hide_password=False)
    return config


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions the database is at (one per branch), empty for a new database."""
    with engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def head_revisions(config: Config) -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(config).get_heads())


CORE_BRANCH = "crmkit@head"
VERSION_TABLE = "alembic_version"


def known_revisions(config: Config) -> set[str]:
    """Every revision of the core and the enabled plugins' branches."""
    return {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}


def pending(engine: Engine, config: Config) -> bool:
    """True when the core or an enabled plugin's branch is not at its head.

    Revisions of plugins that are disabled or uninstalled are ignored: their
    tables stay, and the core and the other plugins keep working.
    """
    script = ScriptDirectory.from_config(config)
    known = known_revisions(config)
    current = [rev for rev in current_revisions(engine) if rev in known]
    reached = {rev.revision for c in current for rev in script.iterate_revisions(c, "base")}
    return any(head not in reached for head in script.get_heads())


def upgrade(engine: Engine, config: Config, target: str = "heads") -> None:
    """Upgrade the core first, then every enabled plugin branch, in one transaction.

    Plugin branches start from their own base (no ``depends_on`` on core
    revisions), so ordering is crmkit's job: the core reaches head before any
    plugin migration runs. Revisions of plugins that are not enabled (or no
    longer installed) are set aside while Alembic runs and put back after, so
    a company can enable only some plugins and uninstall others.
    """
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
    with engine.connect().execution_options(**WRITE) as connection:
        config.attributes["connection"] = connection
        try:
            command.downgrade(config, target)
            connection.commit()
        finally:
            config.attributes.pop("connection", None)
