"""Engine creation: SQLite file (WAL, foreign keys, immediate write locks) or PostgreSQL."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError

from crmkit.errors import ConfigError

#: Execution option a write transaction sets so SQLite takes the write lock
#: at BEGIN (``BEGIN IMMEDIATE``): two writers then queue on the busy timeout
#: instead of failing half-way with "database is locked".
WRITE = {"crmkit_write": True}


def normalise_url(url: str) -> str:
    """Accept a plain file path as a SQLite database; map postgres URLs to psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create(url: str, **kwargs: Any) -> Engine:
    """Create the engine for ``url``, with crmkit's SQLite settings applied."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url!r} is not valid; use sqlite:///path/to/crm.db or "
            "postgresql://user:password@host/dbname"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ConfigError(
                    f"database folder {folder} does not exist; create it or choose another path"
                )
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        try:
            engine = create_engine(url, **kwargs)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "PostgreSQL needs the psycopg driver: pip install 'crmkit[postgres]'"
            ) from exc
        event.listen(engine, "checkout", _refuse_dropped)
        event.listen(engine, "connect", _load_empty_json_fast)
        return engine
    raise ConfigError(f"database backend {backend!r} is not supported; use sqlite or postgresql")


def _refuse_dropped(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hide a restarted (or killed) database server from the callers, without a round trip.

    A pooled PostgreSQL connection is idle between checkouts: the server sends it nothing
    unless it ends the session (a restart, ``pg_terminate_backend``, an idle timeout),
    when it writes the error and closes the socket. So a socket with something to read, or
    a connection the driver knows is closed, is a dropped one: raising
    :class:`DisconnectionError` makes the pool discard it and check out (or open) another.
    This replaces ``pool_pre_ping``, which cost a ``SELECT 1`` round trip per checkout
    (one per server request); a session that ends between this check and the first
    statement fails that statement, as it would after a ping.
    """
    reason = dropped(dbapi_connection)
    if reason is not None:
        raise DisconnectionError(reason)


def dropped(dbapi_connection: Any) -> str | None:
    """Why an idle PostgreSQL driver connection is of no more use (closed, or its session
    ended by the server: see :func:`_refuse_dropped`), or None when it is usable."""
    if dbapi_connection.closed:
        return "the connection was closed"
    if _readable(dbapi_connection.fileno()):
        return "the database ended the session (restarted or terminated)"
    return None


def _load_empty_json_fast(dbapi_connection: Any, _record: Any) -> None:
    """Read JSON ``{}`` without the JSON parser: most customers' ``attributes`` are empty
    and a page of fifty spent a tenth of its CPU parsing them (the same value either way;
    anything else goes to psycopg's own loader)."""
    from psycopg.types.json import JsonbLoader, JsonLoader

    for name, base in (("json", JsonLoader), ("jsonb", JsonbLoader)):
        dbapi_connection.adapters.register_loader(name, _empty_first(base))


def _empty_first(base: type) -> type:
    found = _EMPTY_FIRST.get(base)
    if found is None:

        def load(self: Any, data: Any) -> Any:
            return {} if data == b"{}" else base.load(self, data)

        found = _EMPTY_FIRST[base] = type(f"EmptyFirst{base.__name__}", (base,), {"load": load})
    return found


_EMPTY_FIRST: dict[type, type] = {}


def _readable(fd: int) -> bool:
    """Whether the socket has something to read now (no waiting)."""
    if hasattr(select, "poll"):  # no descriptor-number limit, unlike select()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows: sockets only, which this is


#: SQLite's wait for a lock when a connection does not set its own (PRAGMA busy_timeout)
SQLITE_BUSY_MS = 30000


def set_lock_wait(dbapi_connection: Any, dialect: str, milliseconds: int | None) -> None:
    """How long statements on this driver connection wait for a lock (a row another
    transaction is changing; SQLite's write lock) before they fail: ``milliseconds``, or
    the default (PostgreSQL: no limit; SQLite: 30 s) for None. Called between
    transactions: it is the session's setting, not one transaction's."""
    if dialect == "postgresql":
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET in a transaction is undone by its rollback
        try:
            if milliseconds is None:
                dbapi_connection.execute("RESET lock_timeout")
            else:
                dbapi_connection.execute(f"SET lock_timeout = {int(milliseconds)}")
        finally:
            dbapi_connection.autocommit = autocommit
    else:
        wait = SQLITE_BUSY_MS if milliseconds is None else int(milliseconds)
        dbapi_connection.execute(f"PRAGMA busy_timeout={wait}")


def lock_wait_expired(exc: BaseException) -> bool:
    """``exc`` is a statement that gave up waiting for a lock (:func:`set_lock_wait`)."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == "55P03":  # PostgreSQL: lock_not_available
        return True
    name = type(orig).__name__
    return name == "OperationalError" and "database is locked" in str(orig)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from the driver so BEGIN is ours (see WRITE)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        # 64 MiB page cache (allocated on demand) instead of 2 MiB: index B-trees of a
        # million-row table stay in memory during bulk imports and reports
        cursor.execute("PRAGMA cache_size=-65536")
        # read the first 256 MiB of the file through a memory map: a page not in this
        # connection's cache is mapped from the OS's file cache (which every connection
        # shares) instead of read() and copied, so the first touch of an index page costs
        # little; SQLite caps it at its build's limit (0 where it has no memory maps)
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("crmkit_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
