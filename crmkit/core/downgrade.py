"""Planned schema downgrades: what a target removes, refused when it cannot be done cleanly.

``crmkit db downgrade TARGET`` drops data (every down migration removes tables,
columns or the indexes and keys that kept data consistent), so it is planned first:

* :func:`plan` resolves ``TARGET`` (a revision such as ``c0003``, ``BRANCH@base``,
  ``BRANCH@-N``, or ``base`` for everything) to the revisions each branch undoes, and
  lists the tables and columns they drop (read from the down migrations' SQL, rendered
  offline, and the rows those tables hold). A target that is unknown, not below
  where the database is (``heads``), or ambiguous is a :class:`ValidationError` saying
  what to type instead; a plan that would leave a remaining table referring to a
  dropped one (the core's ``c0001`` while a plugin's tables refer to workflow
  instances) is a :class:`Conflict` naming both, before anything changes.
* :func:`run` carries it out in one transaction: the plugins' branches first, the
  core's last (plugin tables refer to the core's), with the revisions of plugins that
  are not enabled set aside meanwhile, as :func:`crmkit.core.migrate.upgrade` does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from alembic import command
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, column, func, inspect, select, table

from crmkit.core import migrate
from crmkit.core.db import WRITE
from crmkit.errors import Conflict, ValidationError

if TYPE_CHECKING:
    from crmkit.crm import CRM

CORE_LABEL = "crmkit"
_DROP_TABLE = re.compile(r'DROP TABLE (?:IF EXISTS )?"?(\w+)"?', re.IGNORECASE)
_DROP_COLUMN = re.compile(r'ALTER TABLE "?(\w+)"? DROP COLUMN "?(\w+)"?', re.IGNORECASE)
#: the down migrations are rendered offline in this dialect to read what they drop; it
#: alters tables in place where SQLite's batch mode would rebuild (and "drop") them
_PLANNING_URL = "postgresql+psycopg://"


@attrs.frozen
class BranchDowngrade:
    """What a downgrade does to one migration branch (the core's or one plugin's)."""

    branch: str  #: the branch label: ``crmkit`` for the core, else the plugin's
    start: str  #: the revision the branch is at
    end: str | None  #: the revision it goes to; None: base (none of its tables left)
    revisions: tuple[str, ...]  #: undone, newest first
    tables: tuple[str, ...]  #: dropped tables that exist in the database
    columns: tuple[str, ...]  #: dropped columns, as ``table.column``
    rows: dict[str, int] = attrs.field(factory=dict)  #: rows held by each dropped table
    target: str = ""  #: the Alembic target taking this branch alone to ``end``
    listed: bool = True  #: False when its down migrations could not be rendered offline

    @property
    def core(self) -> bool:
        """True for the core's branch."""
        return self.branch == CORE_LABEL

    def describe(self) -> str:
        """One line: the branch, from where to where, and what it drops."""
        who = "core" if self.core else f"plugin {self.branch}"
        line = f"{who}: {self.start} -> {self.end or 'base (nothing left)'}"
        dropped = []
        if self.tables:
            dropped.append(
                "tables " + ", ".join(name + _rows(self.rows.get(name, 0)) for name in self.tables)
            )
        if self.columns:
            dropped.append("columns " + ", ".join(self.columns))
        if dropped:
            return f"{line}: drops {'; '.join(dropped)}"
        if not self.listed:
            return f"{line}: undoes {', '.join(self.revisions)} (its tables could not be listed)"
        return f"{line}: undoes {', '.join(self.revisions)} (indexes, keys or triggers only)"


def _rows(count: int) -> str:
    return "" if not count else f" ({count} row{'s' if count != 1 else ''})"


@attrs.frozen
class DowngradePlan:
    """A resolved downgrade: the branches it touches, plugins first and the core last."""

    target: str
    branches: tuple[BranchDowngrade, ...]
    set_aside: tuple[str, ...] = ()  #: revisions of plugins not enabled (left alone)

    @property
    def empty(self) -> bool:
        """True when the database is already at the target."""
        return not self.branches

    def describe(self) -> list[str]:
        """The lines a confirmation shows: one per branch."""
        return [branch.describe() for branch in self.branches]


def plan(crm: CRM, target: str) -> DowngradePlan:
    """Resolve ``target`` against the database and the enabled branches; nothing changes.

    Raises :class:`ValidationError` for a target that names nothing known, is not below
    the database's revisions, or is ambiguous; :class:`Conflict` when a remaining table
    would refer to a dropped one.
    """
    config = crm.alembic_config()
    script = ScriptDirectory.from_config(config)
    known = migrate.known_revisions(config)
    stored = migrate.current_revisions(crm.engine)
    current = tuple(r for r in stored if r in known)
    set_aside = tuple(r for r in stored if r not in known)
    labels = _labels(script)
    steps = _steps(script, target.strip(), current, labels)
    with crm.engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        branches = tuple(
            _branch(crm, script, label, revisions, existing, connection)
            for label, revisions in _by_branch(script, steps)
        )
        _refuse_dangling(target, branches, labels, set_aside, connection)
    ordered = sorted(branches, key=lambda b: (b.core, b.branch))  # plugins first
    return DowngradePlan(target=target, branches=tuple(ordered), set_aside=set_aside)


def run(crm: CRM, downgrade: DowngradePlan) -> None:
    """Carry out ``downgrade`` in one transaction (nothing changes if a step fails)."""
    if downgrade.empty:
        return
    config = crm.alembic_config()
    version = table(migrate.VERSION_TABLE, column("version_num"))
    with crm.engine.connect().execution_options(**WRITE) as connection:
        config.attributes["connection"] = connection
        try:
            aside = list(downgrade.set_aside)
            if aside:
                connection.execute(version.delete().where(version.c.version_num.in_(aside)))
            for branch in downgrade.branches:
                command.downgrade(config, branch.target)
            if aside:
                connection.execute(version.insert(), [{"version_num": r} for r in aside])
            connection.commit()
        finally:
            config.attributes.pop("connection", None)


# -- resolving the target ----------------------------------------------------


def _labels(script: ScriptDirectory) -> dict[str, str]:
    """Branch label -> the base revision of that branch, for every known branch."""
    found = {}
    for rev in script.walk_revisions():
        if rev.is_base:
            label = sorted(rev.branch_labels)[0] if rev.branch_labels else rev.revision
            found[label] = rev.revision
    return found


def _branches_text(labels: dict[str, str]) -> str:
    others = sorted(label for label in labels if label != CORE_LABEL)
    return ", ".join([f"{CORE_LABEL} (the core)", *others])


def _refuse(target: str, problem: str, fix: str) -> ValidationError:
    return ValidationError(f"cannot downgrade to {target!r}: {problem}; {fix}")


HOW = (
    "give a revision ('crmkit db current' lists where each branch is), "
    "BRANCH@base to remove a branch's tables, BRANCH@-1 to undo its last revision, "
    "or base to remove every table"
)


def _steps(
    script: ScriptDirectory, target: str, current: Sequence[str], labels: dict[str, str]
) -> list[Any]:
    """Alembic's downgrade steps from ``current`` to ``target``, or one clear error."""
    if not target or target.strip("@") != target or target.count("@") > 1:
        raise _refuse(target, "that is no revision or branch", HOW)
    branch, at, where = target.rpartition("@")
    if at and branch not in labels and not _is_revision(script, branch):
        hint = " (the core's branch is called crmkit)" if branch == "core" else ""
        raise _refuse(
            target,
            f"there is no branch {branch!r}{hint}; the branches are {_branches_text(labels)}",
            f"e.g. '{CORE_LABEL}@base' or '{CORE_LABEL}@-1' (a plugin's branch is known "
            "while the plugin is enabled)",
        )
    if where in ("head", "heads"):
        raise _refuse(
            target,
            "that is the newest revision, not below where the database is",
            "'crmkit db upgrade' goes up; a downgrade needs an older revision, " + HOW,
        )
    if not at and where.startswith(("-", "+")) and len(current) > 1:
        raise _refuse(
            target,
            f"a relative step is ambiguous with {len(current)} branches",
            f"name the branch, e.g. '{CORE_LABEL}@{where}' or 'loyalty@{where}'",
        )
    try:
        return list(script._downgrade_revs(target, tuple(current)))  # noqa: SLF001
    except (CommandError, RevisionError) as exc:
        raise _explain(target, str(exc), current, labels) from None


def _is_revision(script: ScriptDirectory, name: str) -> bool:
    try:
        return script.get_revision(name) is not None
    except (CommandError, RevisionError):
        return False


def _explain(
    target: str, message: str, current: Sequence[str], labels: dict[str, str]
) -> ValidationError:
    """Alembic's complaint about ``target`` as one crmkit message with the fix."""
    if "Can't locate revision" in message:
        return _refuse(
            target,
            "that is no revision of the core nor of an enabled plugin's branch "
            f"({_branches_text(labels)})",
            "'crmkit db current' lists the revisions the database is at; a plugin's "
            "revisions are known while the plugin is enabled (CRMKIT_PLUGINS=NAME for one run)",
        )
    if "not a valid downgrade target" in message or "Relative revision" in message:
        return _refuse(
            target,
            f"that is not below where the database is ({', '.join(current) or 'empty'})",
            "'crmkit db upgrade' goes up; " + HOW,
        )
    return _refuse(target, message.rstrip("."), HOW)


def _by_branch(script: ScriptDirectory, steps: Iterable[Any]) -> list[tuple[str, list[Any]]]:
    """The steps grouped by branch label, each group newest first."""
    groups: dict[str, list[Any]] = {}
    for step in steps:
        rev = step.revision
        if rev.branch_labels:
            label = sorted(rev.branch_labels)[0]
        else:  # an unlabelled branch is named by its base revision
            label = list(script.iterate_revisions(rev.revision, "base"))[-1].revision
        groups.setdefault(label, []).append(rev)
    return list(groups.items())


# -- what a branch drops -----------------------------------------------------


def _branch(
    crm: CRM,
    script: ScriptDirectory,
    label: str,
    revisions: list[Any],
    existing: set[str],
    connection: Connection,
) -> BranchDowngrade:
    start = revisions[0].revision
    end = revisions[-1].down_revision
    if isinstance(end, tuple):  # a merge point: stop at the first parent
        end = end[0]
    target = end or f"{revisions[-1].revision}@base"
    try:
        sql = _offline_sql(crm, script, start, target)
    except Exception:  # a down migration that needs the live database: list revisions only
        sql, listed = "", False
    else:
        listed = True
    tables = [n for n in dict.fromkeys(_DROP_TABLE.findall(sql)) if n in existing]
    tables = [n for n in tables if n != migrate.VERSION_TABLE]
    columns = [f"{t}.{c}" for t, c in dict.fromkeys(_DROP_COLUMN.findall(sql)) if t not in tables]
    rows = {
        name: int(connection.scalar(select(func.count()).select_from(table(name))) or 0)
        for name in tables
    }
    return BranchDowngrade(
        branch=label,
        start=start,
        end=end,
        revisions=tuple(r.revision for r in revisions),
        tables=tuple(tables),
        columns=tuple(columns),
        rows=rows,
        target=target,
        listed=listed,
    )


def _offline_sql(crm: CRM, script: ScriptDirectory, start: str, target: str) -> str:
    """The SQL of the down migrations from ``start`` to ``target``, rendered offline."""
    config = crm.alembic_config()
    config.attributes["url"] = _PLANNING_URL
    buffer = io.StringIO()

    def steps(rev: Any, _context: Any) -> Any:
        return script._downgrade_revs(target, rev)  # noqa: SLF001

    with EnvironmentContext(
        config,
        script,
        fn=steps,
        as_sql=True,
        starting_rev=start,
        destination_rev=target,
        output_buffer=buffer,
    ):
        script.run_env()
    return buffer.getvalue()


def _refuse_dangling(
    target: str,
    branches: Sequence[BranchDowngrade],
    labels: dict[str, str],
    set_aside: Sequence[str],
    connection: Connection,
) -> None:
    """Conflict when a table that stays has a foreign key to a table the plan drops."""
    dropped = {name for b in branches for name in b.tables}
    if not dropped:
        return
    found = inspect(connection).get_multi_foreign_keys()
    dangling = sorted(
        {
            (name, key["referred_table"])
            for (_schema, name), keys in found.items()
            if name not in dropped
            for key in keys
            if key["referred_table"] in dropped
        }
    )
    if not dangling:
        return
    name, referred = dangling[0]
    owners = sorted(
        {
            label
            for table_name, _ in dangling
            for label in labels
            if label != CORE_LABEL and (table_name == label or table_name.startswith(f"{label}_"))
        }
    )
    owner_of = {
        t: "the core's" if b.core else f"plugin {b.branch}'s" for b in branches for t in b.tables
    }
    if owners:
        first = " and ".join(f"'crmkit db downgrade {o}@base'" for o in owners)
        fix = f"remove the plugins' tables first ({first}), or every table with 'base'"
    elif set_aside:
        fix = (
            f"it belongs to a plugin that is not enabled (its revisions {', '.join(set_aside)} "
            "are set aside): enable it for this command (CRMKIT_PLUGINS=...) so its tables go "
            "first, or remove them yourself"
        )
    else:
        fix = "remove the tables that refer to it first"
    others = f" (and {len(dangling) - 1} more such references)" if len(dangling) > 1 else ""
    raise Conflict(
        f"cannot downgrade to {target!r}: it drops {owner_of[referred]} table {referred}, "
        f"which table {name} still refers to{others}; {fix}; nothing was changed"
    )
