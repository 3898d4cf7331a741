"""Plugins catch up with what changed in the core while they were off (``plugin_states``).

``plugin_states`` holds, per plugin, whether it was enabled the last time a CRM wrote to
this database, and since when. A row named ``crmkit`` (the core) records that the
database has been written with this bookkeeping.

On the first write transaction of a CRM (:meth:`crmkit.CRM.transaction`), one SELECT
compares the loaded plugins with the table, and the answer is cached for the CRM:

* a plugin recorded enabled that is not loaded now is marked disabled (since now);
* a loaded plugin recorded disabled is asked to catch up, ``crmkit_catch_up(ctx,
  since=<when it was disabled>)``, in its own transaction before the write, and is
  marked enabled in that same transaction (a failing catch-up leaves it disabled and
  is retried by the next CRM; the write goes on, with a logged warning);
* a loaded plugin with no row: when the database was written before (the ``crmkit``
  row exists) it catches up with ``since=None`` (everything), else it is just recorded.

A CRM that runs without plugins the table knows re-asserts "disabled" for them in each
of its write transactions (one small locking SELECT, only in that case), so a plugin
re-enabled by another process while this one keeps writing catches up again later.
The catch-up transaction locks the plugin's row first, so it waits for such writes to
commit and then sees them. ``crmkit plugins catch-up NAME`` runs it with ``since=None``.

The bookkeeping and the catch-ups run as the job ``job:catch-up`` (whoever's write
triggered them), and a catch-up records one audit entry, ``plugin.catch_up``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, select, update
from sqlalchemy.exc import DBAPIError

from crmkit import plugins as plugin_loader
from crmkit.core import tables as t
from crmkit.core.actors import Actor
from crmkit.errors import CrmError, PluginError

if TYPE_CHECKING:
    from crmkit.core.context import HookContext
    from crmkit.crm import CRM

log = logging.getLogger(__name__)

#: Who the bookkeeping and the catch-ups run as.
CATCH_UP = Actor.job("catch-up")

#: The row that says the database was written with plugin bookkeeping.
CORE_ROW = "crmkit"

# set while this module's own transactions run: they take no part in the re-assertion
_bookkeeping: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "crmkit_plugin_bookkeeping", default=False
)


class PluginStates:
    """A CRM's view of ``plugin_states``: checked once, before its first write."""

    def __init__(self) -> None:
        self.checked = False
        self.absent: frozenset[str] = frozenset()  # known to the database, not loaded here
        self.caught_up: dict[str, str | None] = {}  # plugin -> what its catch-up said
        self._lock = threading.Lock()

    def before_write(self, crm: CRM, *, skip: frozenset[str] = frozenset()) -> None:
        """Run the check if this CRM has not yet (called by ``crm.transaction``);
        plugins in ``skip`` are left to the caller."""
        if self.checked:
            return
        with self._lock:
            if self.checked:
                return
            self.checked = True  # first: the check's own transactions must not re-enter
            check(crm, self, skip=skip)

    def during_write(self, ctx: HookContext) -> None:
        """Inside a write: keep absent plugins marked disabled (see the module doc)."""
        if not self.absent or _bookkeeping.get():
            return
        states = t.plugin_states
        query = select(states.c.plugin, states.c.enabled).where(states.c.plugin.in_(self.absent))
        if ctx.connection.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        enabled = [row.plugin for row in ctx.connection.execute(query) if row.enabled]
        if enabled:
            ctx.connection.execute(
                update(states)
                .where(states.c.plugin.in_(enabled))
                .values(enabled=False, changed_at=ctx.now)
            )


def _read(crm: CRM) -> dict[str, Any] | None:
    """Every row of ``plugin_states`` by plugin, or None when the table does not exist."""
    try:
        with crm.engine.connect() as connection:
            return {row.plugin: row for row in connection.execute(select(t.plugin_states))}
    except DBAPIError:
        if not inspect(crm.engine).has_table(t.plugin_states.name):
            log.debug("no plugin_states table (schema before c0004): no catch-up")
            return None
        raise


def check(crm: CRM, states: PluginStates, *, skip: frozenset[str] = frozenset()) -> None:
    """Compare the loaded plugins with ``plugin_states``; mark, and catch up (module doc)."""
    recorded = _read(crm)
    if recorded is None:
        return
    loaded = set(crm.plugin_names)
    states.absent = frozenset(p for p in recorded if p not in loaded and p != CORE_ROW)
    gone = sorted(p for p in states.absent if recorded[p].enabled)
    if gone or CORE_ROW not in recorded:
        token = _bookkeeping.set(True)
        try:
            with crm.transaction(actor=CATCH_UP) as ctx:
                if gone:
                    ctx.connection.execute(
                        update(t.plugin_states)
                        .where(
                            t.plugin_states.c.plugin.in_(gone),
                            t.plugin_states.c.enabled.is_(True),
                        )
                        .values(enabled=False, changed_at=ctx.now)
                    )
                _upsert(ctx, CORE_ROW, overwrite=False)
        finally:
            _bookkeeping.reset(token)
    written_before = bool(recorded)
    for name in sorted(loaded - skip):
        row = recorded.get(name)
        if row is not None and row.enabled:
            continue
        try:
            states.caught_up[name] = enable(crm, name, written_before=written_before)
        except Exception as exc:  # the plugin stays disabled; the next CRM retries
            log.warning(
                "plugin %r could not catch up with the changes made while it was off: %s; "
                "it is retried the next time crmkit starts, or run 'crmkit plugins catch-up "
                "%s'",
                name,
                exc,
                name,
                exc_info=not isinstance(exc, CrmError),
            )


def enable(
    crm: CRM,
    name: str,
    *,
    written_before: bool = True,
    everything: bool = False,
) -> str | None:
    """Catch ``name`` up if the database says it missed changes, then mark it enabled.

    One transaction: the plugin's row is locked first (writers without the plugin
    finish before), its ``crmkit_catch_up`` runs, the row says enabled since now.
    ``everything`` asks for ``since=None`` whatever the row says (the command).
    Returns what the plugin said it reconciled.
    """
    token = _bookkeeping.set(True)
    try:
        with crm.transaction(actor=CATCH_UP) as ctx:
            row = ctx.connection.execute(
                select(t.plugin_states).where(t.plugin_states.c.plugin == name).with_for_update()
            ).first()
            if everything:
                due, since = True, None
            elif row is None:
                due, since = written_before, None
            else:
                due, since = not row.enabled, row.changed_at
            said = call_catch_up(crm, ctx, name, since) if due else None
            if due:
                ctx.audit(
                    "plugin.catch_up",
                    "plugin",
                    name,
                    changes={"since": [None, since], "reconciled": [None, said]},
                )
            _upsert(ctx, name, overwrite=True)
    finally:
        _bookkeeping.reset(token)
    if due:
        when = "ever" if since is None else f"{since:%Y-%m-%d %H:%M:%S %Z}"
        log.info(
            "plugin %r caught up with the changes since %s: %s",
            name,
            when,
            said or "nothing to reconcile",
        )
    return said


def call_catch_up(crm: CRM, ctx: HookContext, name: str, since: dt.datetime | None) -> str | None:
    """Call plugin ``name``'s ``crmkit_catch_up`` (only its own); errors name it."""
    said: list[str] = []
    for plugin, call in plugin_loader.each_implementation(crm.pm, "crmkit_catch_up"):
        if plugin != name:
            continue
        try:
            result = call({"ctx": ctx, "since": since})
        except Exception as exc:
            what = str(exc) if isinstance(exc, CrmError) else f"{type(exc).__name__}: {exc}"
            raise PluginError(
                f"plugin {name!r} failed to catch up: {what}; nothing of its catch-up was stored",
                plugin=name,
            ) from exc
        if result:
            said.append(str(result))
    return "; ".join(said) or None


def catch_up(crm: CRM, name: str) -> str | None:
    """Reconcile plugin ``name`` with everything in the core (``since=None``), on demand.

    The plugin must be loaded in ``crm``; returns what it said it reconciled.
    """
    if name not in crm.plugin_names:
        loaded = ", ".join(crm.plugin_names) or "none"
        raise PluginError(
            f"plugin {name!r} is not loaded, so it cannot catch up (loaded: {loaded}); "
            "enable it first",
            plugin=name,
        )
    # the other plugins' check first, as before any write; this one catches up below
    crm._plugin_states.before_write(crm, skip=frozenset({name}))
    return enable(crm, name, everything=True)


def implements_catch_up(crm: CRM, name: str) -> bool:
    """True when plugin ``name`` implements ``crmkit_catch_up``."""
    return any(
        plugin == name for plugin, _ in plugin_loader.each_implementation(crm.pm, "crmkit_catch_up")
    )


def _upsert(ctx: HookContext, name: str, *, overwrite: bool) -> None:
    """Record ``name`` enabled since now (``overwrite``), or only if it has no row."""
    values = {"plugin": name, "enabled": True, "changed_at": ctx.now}
    dialect = ctx.connection.dialect.name
    if dialect == "postgresql":  # each dialect imported when used: start-up loads neither
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(t.plugin_states).values(values)
    if overwrite:
        statement = statement.on_conflict_do_update(
            index_elements=["plugin"], set_={"enabled": True, "changed_at": ctx.now}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["plugin"])
    ctx.connection.execute(statement)


__all__ = ["CORE_ROW", "PluginStates", "catch_up", "check", "enable"]
