"""The CRM object integrators embed: ``crm = crmkit.open("crmkit.toml")``."""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy
from sqlalchemy import Connection, Engine, event

from crmkit import config as config_module
from crmkit import plugins as plugin_loader
from crmkit.core import audit, db, migrate
from crmkit.core.actors import Actor
from crmkit.core.auditlog import AuditService
from crmkit.core.catchup import PluginStates
from crmkit.core.context import Changes, HookContext
from crmkit.core.customers import CustomerService
from crmkit.core.entities import AttributeDefinition, SettingsSpec
from crmkit.core.interactions import InteractionService
from crmkit.core.orders import OrderService
from crmkit.core.permissions import CORE_PERMISSIONS, Permissions, PermissionSpec, Resource
from crmkit.core.staff import StaffService
from crmkit.core.workflow import WorkflowDefinition
from crmkit.core.workflows import WorkflowService
from crmkit.errors import ConfigError, CrmError, Forbidden, PluginError, SchemaOutOfDate

if TYPE_CHECKING:
    from jinja2 import Environment

log = logging.getLogger(__name__)

CORE_TEMPLATES = Path(__file__).parent / "templates"


def open(  # noqa: A001 - the natural name: crmkit.open(...)
    target: str | os.PathLike[str] | None = None,
    *,
    plugins: Sequence[str | Any] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    upgrade: bool = False,
    database: str | None = None,
    actor: Actor | None = None,
) -> CRM:
    """Open a CRM.

    ``target`` is a ``crmkit.toml`` path, a database URL (``sqlite:///crm.db``,
    ``postgresql://...``), or None to read ``./crmkit.toml`` (or
    ``$CRMKIT_CONFIG``). ``plugins`` overrides the enabled plugins (names, or
    plugin objects registered directly); ``settings`` overrides plugin
    settings by table; ``upgrade=True`` brings the schema to head first,
    otherwise an out-of-date schema raises :class:`SchemaOutOfDate`. ``actor`` is who
    acts when no other actor is bound (:meth:`CRM.acting_as`); by default the local
    operator ``python:<os user>``, who holds every permission and is audited.
    """
    text = os.fspath(target) if target is not None else None
    if text is not None and ("://" in text or text.endswith((".db", ".sqlite", ".sqlite3"))):
        # a database given directly: no config file, environment plugin list still applies
        config = config_module.Config(database=text)
        config_module.plugins_from_environment(config)
    else:
        config = config_module.load(text, database=database)
    if plugins is not None:
        config.plugins = list(plugins)
        config.plugins_source = "the plugins argument of crmkit.open"
    for name, values in (settings or {}).items():
        config.plugin_settings.setdefault(name, {}).update(values)
    crm = CRM(config, actor=actor)
    try:
        if upgrade:
            crm.upgrade()
        else:
            crm.check_schema()
    except BaseException:
        crm.close()
        raise
    return crm


class CRM:
    """An open CRM: services, plugins, settings and the database.

    Services: :attr:`customers`, :attr:`interactions`, :attr:`orders`,
    :attr:`staff`, :attr:`workflows`. Every public write is one transaction
    together with the events it fires; a plugin raising in an event rolls the
    whole write back and the error names the plugin.
    """

    def __init__(self, config: config_module.Config, *, actor: Actor | None = None) -> None:
        self.config = config
        #: who acts when nothing else is bound: the operator of this Python process
        self.default_actor: Actor = actor or Actor.operator("python")
        self.pm, self.plugin_statuses = plugin_loader.load(
            config.plugins, where=config.plugins_where
        )
        self.engine: Engine = db.create(config.database, **_pool_options(config))
        self._current: contextvars.ContextVar[HookContext | None] = contextvars.ContextVar(
            f"crmkit_transaction_{id(self)}", default=None
        )
        self._actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar(
            f"crmkit_actor_{id(self)}", default=None
        )
        self._shared: contextvars.ContextVar[_SharedConnection | None] = contextvars.ContextVar(
            f"crmkit_connection_{id(self)}", default=None
        )
        #: connections kept between :meth:`connection_scope` blocks (``keep=True``): this
        #: thread's, and every thread's (for :meth:`release_kept_connections`)
        self._kept = threading.local()
        self._kept_all: set[_SharedConnection] = set()
        self._kept_lock = threading.Lock()
        self._watch_writes()
        if self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "before_execute", _streams_in_a_transaction)
        self.settings = self._collect_settings()
        self.attribute_definitions = self._collect_attributes()
        self.workflow_definitions = self._collect_workflows()
        self.permissions = self._collect_permissions()
        self._templates: Environment | None = None
        # which plugins missed writes while off: checked before the first write (catchup.py)
        self._plugin_states = PluginStates()
        self.customers = CustomerService(self)
        self.interactions = InteractionService(self)
        self.orders = OrderService(self)
        self.staff = StaffService(self)
        self.workflows = WorkflowService(self)
        #: the audit log's reader (``crm.audit_log.list(customer_id=...)``; audit.read)
        self.audit_log = AuditService(self)

    # -- plugins ----------------------------------------------------------
    @property
    def hook(self) -> Any:
        """pluggy's hook relay: ``crm.hook.crmkit_x(...)`` calls every implementation."""
        return self.pm.hook

    @property
    def plugin_names(self) -> list[str]:
        """Names of the plugins that loaded (enabled and ok), sorted."""
        return plugin_loader.enabled_names(self.plugin_statuses)

    def has_plugin(self, name: str) -> bool:
        """True when plugin ``name`` is enabled and loaded."""
        return name in self.plugin_names

    def has_hook(self, name: str) -> bool:
        """True when hook ``name`` is declared (by the core or a loaded plugin) and implemented."""
        caller = getattr(self.pm.hook, name, None)
        return caller is not None and caller.spec is not None and bool(caller.get_hookimpls())

    def call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a hook; an exception from a plugin becomes a PluginError naming it."""
        caller = getattr(self.pm.hook, hook_name)
        try:
            return caller(**kwargs)
        except CrmError as exc:
            if isinstance(exc, PluginError) and exc.plugin:
                raise
            plugin = plugin_loader.owner_of(self.pm, exc)
            if plugin is None or plugin.startswith("crmkit."):
                raise
            raise type(exc)(f"plugin {plugin!r}: {exc}") from exc
        except Exception as exc:
            plugin = plugin_loader.owner_of(self.pm, exc) or "unknown"
            raise PluginError(
                f"plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}; "
                "nothing of this change was stored",
                plugin=plugin,
            ) from exc

    def fire(self, ctx: HookContext, hook_name: str, **kwargs: Any) -> None:
        """Fire an event inside ``ctx``'s transaction and note it for after-commit."""
        self.call(hook_name, ctx=ctx, **kwargs)

    # -- who acts -----------------------------------------------------------
    @property
    def actor(self) -> Actor:
        """Who is acting now: the actor bound by :meth:`acting_as`, else :attr:`default_actor`."""
        return self._actor.get() or self.default_actor

    @contextmanager
    def acting_as(self, actor: Actor) -> Iterator[CRM]:
        """Run the block as ``actor``: every service call in it is authorised for, and
        audited as, ``actor`` (the HTTP server binds each request's actor this way)."""
        token = self._actor.set(actor)
        try:
            yield self
        finally:
            self._actor.reset(token)

    def authorise(self, action: str, resource: Resource | None = None) -> None:
        """Allow the current actor to do ``action`` on ``resource``, or raise
        :class:`~crmkit.errors.Forbidden` (no permission) or
        :class:`~crmkit.errors.NotFound` (a customer's record outside the actor's scope)."""
        self.permissions.authorise(self.actor, action, resource)

    def visible_owners(self, action: str) -> frozenset[str] | None:
        """For list queries: ``None`` when the actor sees every customer for ``action``,
        else the owners whose customers they see. Raises Forbidden without the permission."""
        return self.permissions.visible_owners(self.actor, action)

    def _resolve_actor(self, actor: Actor | str | None) -> Actor:
        current = self.actor
        if actor is None:
            return current
        if isinstance(actor, Actor):
            return actor
        # a name given with the write (a staff username): recorded as "on behalf of"
        if current.is_operator:
            return attrs.evolve(current, on_behalf_of=actor)
        if actor == current.username:
            return current
        raise Forbidden(
            f"{current.name} may not record work as {actor!r}; sign in as that staff member"
        )

    def _watch_writes(self) -> None:
        """Note the tables each transaction writes, for the audit safety net."""

        @event.listens_for(self.engine, "before_cursor_execute")
        def note(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
            ctx = self._current.get()
            if ctx is not None and ctx.connection is connection:
                audit.note_statement(ctx, statement)

    # -- transactions -----------------------------------------------------
    @contextmanager
    def transaction(
        self, actor: Actor | str | None = None, now: dt.datetime | None = None
    ) -> Iterator[HookContext]:
        """One unit of work. Nested calls join the outer transaction (after the work
        plugins kept for the next write: :meth:`HookContext.before_next_write`).

        It runs as the current actor (:attr:`actor`); ``actor`` may name another
        :class:`Actor`, or a staff username the operator records the work for
        (``on_behalf_of``). Its audit entries commit with it; a write that recorded none
        gets one naming the tables it wrote. After the commit, ``crmkit_after_commit``
        receives what was changed. Before the first one of this CRM, plugins that were off
        while others wrote catch up (:mod:`crmkit.core.catchup`).
        """
        outer = self._current.get()
        if outer is not None:
            outer._run_before_next_write()  # (work kept from earlier events goes first)
            yield outer
            return
        who = self._resolve_actor(actor)
        self._plugin_states.before_write(self)
        with self._connect(write=True) as connection:
            ctx = HookContext(crm=self, connection=connection, now=now or utcnow(), actor=who)
            token = self._current.set(ctx)
            bound = self._actor.set(who)
            try:
                with connection.begin():
                    self._plugin_states.during_write(ctx)
                    yield ctx
                    ctx._run_before_commit()  # plugins' ctx.before_commit work, then the audit
                    audit.close(ctx)
            finally:
                self._actor.reset(bound)
                self._current.reset(token)
        if ctx.changes:
            self._after_commit(ctx.changes)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads: the running transaction's, or a fresh one."""
        outer = self._current.get()
        if outer is not None:
            yield outer.connection
            return
        shared = self._shared.get()
        if shared is not None and shared.lent:  # a read inside a read: the same connection
            yield shared.connect()
            return
        with self._connect(write=False) as connection:
            yield connection

    @contextmanager
    def connection_scope(
        self, *, keep: bool = False, lock_wait_ms: int | None = None
    ) -> Iterator[None]:
        """Within the block, this thread's reads and its transaction share one database
        connection: one pool checkout (and liveness check) instead of one per read. The
        server opens one per request; each read still ends its own snapshot, so a read
        after a write sees it.

        With ``keep``, the connection stays checked out for this thread's next ``keep``
        scope, which checks it is alive (as the pool's checkout does) and takes another if
        not: the server's handler threads serve request after request on their own
        connection, without a checkout and check-in each (a tenth of a simple request's
        CPU). Nothing stays open between the scopes (every read ends its snapshot, every
        transaction commits or rolls back), and :meth:`release_kept_connections` (or
        :meth:`close`) gives the connections back to the pool.

        With ``lock_wait_ms``, a statement in the block waits at most that long for a lock
        (a row another transaction is changing; SQLite's write lock), then fails with the
        database's lock error (API 1.7; the server answers it 503 busy). The server gives
        it to the requests it runs on its event loop's thread, so that one request waiting
        on another's long transaction never holds up the rest.
        """
        if self._shared.get() is not None:
            yield
            return
        shared = self._kept_connection() if keep else _SharedConnection(self.engine)
        shared.lock_wait_ms = lock_wait_ms
        token = self._shared.set(shared)
        try:
            yield
        finally:
            self._shared.reset(token)
            if keep:
                shared.settle()
            else:
                shared.close()

    def _kept_connection(self) -> _SharedConnection:
        shared: _SharedConnection | None = getattr(self._kept, "shared", None)
        if shared is None:
            shared = self._kept.shared = _SharedConnection(self.engine)
        else:
            shared.check_alive()
        with self._kept_lock:  # (again after a release: it is released again next time)
            self._kept_all.add(shared)
        return shared

    def release_kept_connections(self) -> None:
        """Give the connections kept by ``connection_scope(keep=True)`` back to the pool
        (call it when the threads that kept them serve no more: the server at shutdown)."""
        with self._kept_lock:
            kept, self._kept_all = self._kept_all, set()
        for shared in kept:
            shared.close()

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        shared = self._shared.get()
        if shared is None or shared.lent:
            with self.engine.connect().execution_options(**(db.WRITE if write else {})) as c:
                yield c
            return
        with shared.lend(write=write) as connection:
            yield connection

    def _after_commit(self, changes: Changes) -> None:
        try:
            self.call("crmkit_after_commit", crm=self, changes=changes)
        except CrmError as exc:  # the change is durable; report, never undo
            log.warning("an after-commit hook failed (the change is stored): %s", exc)

    # -- schema -----------------------------------------------------------
    def _migration_dirs(self) -> dict[str, str]:
        """Each enabled plugin's migration folder by plugin name (errors can name it)."""
        return migrate.plugin_version_dirs(self.pm)

    def alembic_config(self) -> Any:
        """The Alembic ``Config`` for the core and every enabled plugin's migration branch."""
        return migrate.alembic_config(self.engine, self._migration_dirs())

    def upgrade(self) -> None:
        """Bring the core and every enabled plugin's tables to head."""
        migrate.upgrade(self.engine, self.alembic_config())

    def downgrade(self, target: str) -> None:
        """Take the schema down to ``target``: a revision (``"loyalty0001"``) or a plugin's
        ``"<plugin>@base"``, which drops that plugin's tables. Drops data: for tests of a
        plugin's down migrations and for removing a plugin's schema on purpose."""
        migrate.downgrade(self.engine, self.alembic_config(), target)

    def upgrade_sql(self) -> str:
        """The SQL :meth:`upgrade` would run, without running it."""
        return migrate.upgrade_sql(self.engine, self.alembic_config())

    def current_revisions(self) -> tuple[str, ...]:
        """The Alembic revisions the database is at (one per branch)."""
        return migrate.current_revisions(self.engine)

    def check_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the schema is at head for these plugins."""
        dirs = self._migration_dirs()
        folders = [str(migrate.CORE_MIGRATIONS / "versions"), *dirs.values()]
        if migrate.at_heads(self.engine, folders):
            return  # the common case, decided without importing Alembic
        if migrate.pending(self.engine, migrate.alembic_config(self.engine, dirs)):
            raise SchemaOutOfDate(
                f"the database {self.engine.url.render_as_string(hide_password=True)} is not "
                "at the current schema; run 'crmkit db upgrade' (or open with upgrade=True)"
            )

    # -- contributions ----------------------------------------------------
    def _collect_settings(self) -> dict[str, Any]:
        specs: list[SettingsSpec] = [s for s in self.call("crmkit_register_settings") if s]
        settings: dict[str, Any] = {
            "timezone": self.config.timezone,
            "currency": self.config.currency,
        }
        known = {spec.name for spec in specs}
        installed = {s.name for s in self.plugin_statuses}
        for table in self.config.plugin_settings:
            if table not in known and table not in installed:
                raise ConfigError(
                    f"{self.config.where}: [{table}] is not a setting of any installed "
                    "plugin; check the name or remove the table"
                )
        for spec in specs:
            given = self.config.plugin_settings.get(spec.name, {})
            unknown = set(given) - set(spec.defaults)
            if unknown:
                raise ConfigError(
                    f"{self.config.where}: [{spec.name}] has unknown keys {sorted(unknown)}; "
                    f"known keys: {sorted(spec.defaults)}"
                )
            values = {**spec.defaults, **given}
            if spec.validate is not None:
                try:
                    spec.validate(values)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"{self.config.where}: [{spec.name}] {exc}") from None
            settings[spec.name] = values
        return settings

    def _collect_permissions(self) -> Permissions:
        specs: list[PermissionSpec] = list(CORE_PERMISSIONS)
        for name, call in plugin_loader.each_implementation(self.pm, "crmkit_register_permissions"):
            for spec in call({}) or []:
                specs.append(attrs.evolve(spec, declared_by=name))
        return Permissions(self, specs, self.config.roles, self.config.where)

    def _collect_attributes(self) -> dict[str, AttributeDefinition]:
        found: dict[str, AttributeDefinition] = {}
        declared = list(self.config.attributes)
        for batch in self.call("crmkit_register_attributes"):
            declared.extend(batch or [])
        for definition in declared:
            other = found.get(definition.name)
            if other is not None and other.type != definition.type:
                raise ConfigError(
                    f"custom attribute {definition.name!r} is declared as {other.type} by "
                    f"{other.declared_by} and as {definition.type} by {definition.declared_by}"
                )
            found[definition.name] = definition
        return found

    def _collect_workflows(self) -> dict[str, WorkflowDefinition]:
        found: dict[str, WorkflowDefinition] = {}
        definitions: list[WorkflowDefinition] = []
        for batch in self.call("crmkit_register_workflows"):
            definitions.extend(batch or [])
        definitions += [
            WorkflowDefinition.from_dict(name, data, source=self.config.where)
            for name, data in self.config.workflows.items()
        ]
        for definition in definitions:
            previous = found.get(definition.name)
            if previous is not None and self.config.where not in (
                previous.source,
                definition.source,
            ):
                raise ConfigError(
                    f"workflow {definition.name!r} is defined twice: by "
                    f"{previous.source} and by {definition.source}"
                )
            # the configuration file may redefine a plugin's or the core's workflow
            found[definition.name] = definition
        return found

    # -- templates --------------------------------------------------------
    @property
    def templates(self) -> Environment:
        """Jinja2 environment for crmkit's own pages (autoescaped; not for user templates)."""
        if self._templates is None:
            # imported here: most commands and requests render no page
            from jinja2 import (
                ChoiceLoader,
                Environment,
                FileSystemLoader,
                PrefixLoader,
                select_autoescape,
            )

            folders: list[str] = []
            if self.config.templates:
                folders.append(self.config.templates)
            for batch in self.call("crmkit_register_template_dirs"):
                folders.extend(str(f) for f in batch or [])
            folders.append(str(CORE_TEMPLATES))
            loader = ChoiceLoader(
                [
                    PrefixLoader({"default": FileSystemLoader(str(CORE_TEMPLATES))}, delimiter=":"),
                    FileSystemLoader(folders),
                ]
            )
            self._templates = Environment(loader=loader, autoescape=select_autoescape(default=True))
            self._templates.filters["money"] = lambda v: "" if v is None else f"{v:,.2f}"
        return self._templates

    def local_time(self, moment: dt.datetime) -> dt.datetime:
        """``moment`` in the configured display time zone."""
        import zoneinfo

        return moment.astimezone(zoneinfo.ZoneInfo(self.config.timezone))

    def close(self) -> None:
        """Release the database connections (the CRM is also a context manager)."""
        self.release_kept_connections()
        self.engine.dispose()

    def __enter__(self) -> CRM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pool_options(config: config_module.Config) -> dict[str, Any]:
    """Keep a connection for every server handler thread (and a few more) on PostgreSQL:
    with SQLAlchemy's default 5, the threads beyond it closed a connection after each
    request and opened a new one (a new server process) for the next."""
    if not db.normalise_url(config.database).startswith("postgresql"):
        return {}
    return {"pool_size": max(5, config.server.threads + 2)}


#: psycopg's TransactionStatus.IDLE (no transaction open on the connection)
_IDLE = 0


def _streams_in_a_transaction(
    connection: Connection, _clause: Any, _multi: Any, _params: Any, options: Any
) -> None:
    """A streamed read (``yield_per``, ``stream_results``: a server-side cursor, which
    PostgreSQL opens only inside a transaction) on a connection a connection scope lent in
    autocommit runs in a transaction: its lend ends it (the scope switches back)."""
    if not (options.get("yield_per") or options.get("stream_results")):
        given = connection.get_execution_options()
        if not (given.get("yield_per") or given.get("stream_results")):
            return
    driver: Any = connection.connection.dbapi_connection
    if driver.autocommit and driver.info.transaction_status == _IDLE:
        driver.autocommit = False  # ended by the lend's rollback


class _SharedConnection:
    """The connection a :meth:`CRM.connection_scope` lends to one read or write at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection | None = None
        self.lent = False
        # PostgreSQL reads run in autocommit: each statement is its own READ COMMITTED
        # snapshot, as inside a transaction, without the BEGIN and ROLLBACK round trips
        self.postgresql = engine.dialect.name == "postgresql"
        self.autocommit_reads = self.postgresql
        #: the driver connection was switched to autocommit (switched back before the pool
        #: gets it: the pool's connections are in transaction mode)
        self.switched = False
        #: the lock wait the scope asks for, and the one the connection has (set when it
        #: differs, reset before the pool gets the connection back)
        self.lock_wait_ms: int | None = None
        self._lock_wait_set: int | None = None

    def connect(self) -> Connection:
        if self.connection is None:
            self.connection = self.engine.connect()
            self._lock_wait_set = None
        if self.lock_wait_ms != self._lock_wait_set:
            self._set_lock_wait(self.connection, self.lock_wait_ms)
        return self.connection

    def _set_lock_wait(self, connection: Connection, milliseconds: int | None) -> None:
        """The session's lock wait, set between transactions (a SET inside one would be
        undone with it)."""
        if connection.in_transaction():
            connection.rollback()
        db.set_lock_wait(
            connection.connection.dbapi_connection, self.engine.dialect.name, milliseconds
        )
        self._lock_wait_set = milliseconds

    @contextmanager
    def lend(self, *, write: bool) -> Iterator[Connection]:
        connection = self.connect()
        if connection.in_transaction():
            connection.rollback()
        if self.autocommit_reads:
            # on the driver connection itself: what execution_options(isolation_level=...)
            # does, at a tenth of its cost (and no reset of it at every check-in)
            driver = connection.connection.dbapi_connection
            if driver.autocommit is write:  # type: ignore[union-attr]
                driver.autocommit = not write  # type: ignore[union-attr]
                self.switched = True
        elif write:  # SQLite: BEGIN IMMEDIATE for this transaction only
            connection.execution_options(**db.WRITE)
        self.lent = True
        try:
            yield connection
        finally:
            self.lent = False
            if write and not self.autocommit_reads:
                connection.execution_options(crmkit_write=False)
            if connection.in_transaction():  # end the read's snapshot
                connection.rollback()

    def check_alive(self) -> None:
        """Before a kept connection serves again: let it go if it broke or its session
        ended while it waited (the next :meth:`connect` checks out another)."""
        connection = self.connection
        if connection is None:
            return
        if connection.invalidated or connection.closed:
            self.close()
            return
        if self.postgresql and db.dropped(connection.connection.dbapi_connection):
            connection.invalidate()
            self.close()

    def settle(self) -> None:
        """After a kept scope: nothing left open (a transaction a failure left is rolled
        back); a connection that broke is let go."""
        connection = self.connection
        if connection is None:
            return
        if not (connection.invalidated or connection.closed):
            try:
                if connection.in_transaction():
                    connection.rollback()
                return
            except Exception:  # noqa: BLE001 - a rollback that fails: it serves no more
                log.warning("a kept database connection could not roll back; let go")
        self.close()

    def close(self) -> None:
        if self.connection is None:
            return
        connection, self.connection = self.connection, None
        if (self.switched or self._lock_wait_set is not None) and not connection.invalidated:
            try:
                if self._lock_wait_set is not None:
                    self._set_lock_wait(connection, None)
                if self.switched:
                    connection.connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]
            except Exception:  # a broken connection: never back into the pool
                connection.invalidate()
        self._lock_wait_set = None
        connection.close()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


__all__ = ["CRM", "open", "pluggy"]
