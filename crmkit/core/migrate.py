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
from sqlalchemy import Engine

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


def pending(engine: Engine, config: Config) -> bool:
    """True when some enabled branch is not at its head."""
    script = ScriptDirectory.from_config(config)
    current = set(current_revisions(engine))
    for head in script.get_heads():
        if head in current:
            continue
        # a head counts as reached when the database is past it on a merged branch
        ancestors = {rev.revision for c in current for rev in script.iterate_revisions(c, "base")}
        if head not in ancestors:
            return True
    return False


def upgrade(engine: Engine, config: Config, target: str = "heads") -> None:
    with engine.connect().execution_options(**WRITE) as connection:
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, target)
            connection.commit()
        finally:
            config.attributes.pop("connection", None)


def upgrade_sql(engine: Engine, config: Config, target: str = "heads") -> str:
    """The SQL ``upgrade`` would run from the database's current revisions, as text."""
    script = ScriptDirectory.from_config(config)
    start = list(current_revisions(engine)) or None
    buffer = io.StringIO()

    def plan(rev, _context):
        return script._upgrade_revs(target, rev)

    with EnvironmentContext(
        config,
        script,
        fn=plan,
        as_sql=True,
        starting_rev=start,
        destination_rev=target,
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
