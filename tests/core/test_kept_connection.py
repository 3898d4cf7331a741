"""``crm.connection_scope(keep=True)``: a thread (a server handler thread) keeps its database
connection from one scope to its next, with nothing left open between them; a connection
that broke or whose session ended is let go; ``release_kept_connections`` gives them back."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

import crmkit

from .test_db_liveness import _terminate_others


def _driver(crm):
    """The driver connection the current scope's reads run on."""
    with crm.reading() as connection:
        return connection.connection.dbapi_connection


def _in_another_thread(function):
    found = []
    thread = threading.Thread(target=lambda: found.append(function()))
    thread.start()
    thread.join()
    return found[0]


def test_a_thread_keeps_its_connection_from_scope_to_scope(crm):
    crm.customers.add({"name": "Ada"})

    def two_scopes():
        drivers = []
        for _ in range(2):
            with crm.connection_scope(keep=True):
                assert crm.customers.get(1).name == "Ada"
                drivers.append(_driver(crm))
        return drivers

    first, second = two_scopes()
    assert first is second
    # another thread keeps another one; an unkept scope checks one out and back in
    theirs = _in_another_thread(two_scopes)
    assert theirs[0] is theirs[1] and theirs[0] is not first
    assert crm.engine.pool.checkedout() == 2
    with crm.connection_scope():
        assert _driver(crm) not in (first, theirs[0])
    assert crm.engine.pool.checkedout() == 2

    crm.release_kept_connections()
    assert crm.engine.pool.checkedout() == 0
    with crm.connection_scope(keep=True):  # a kept scope after the release: a new one
        assert crm.customers.get(1).name == "Ada"
    assert crm.engine.pool.checkedout() == 1
    crm.release_kept_connections()  # released again
    assert crm.engine.pool.checkedout() == 0
    with crm.connection_scope(keep=True):
        assert crm.customers.get(1).name == "Ada"
    pool = crm.engine.pool
    crm.close()  # releases it too
    assert pool.checkedout() == 0


def test_nothing_stays_open_between_kept_scopes(crm, crmkit_backend):
    ada = crm.customers.add({"name": "Ada"})
    with crm.connection_scope(keep=True):
        crm.customers.get(ada.id)
        with pytest.raises(RuntimeError), crm.transaction():
            crm.customers.add({"name": "Gone"})
            raise RuntimeError("undo")
        crm.interactions.log(ada.id, "phone", subject="kept")
        assert crm.customers.count() == 1  # a read last
        driver = _driver(crm)
    assert not crm._kept.shared.connection.in_transaction()
    if crmkit_backend == "postgresql":
        assert driver.info.transaction_status == 0  # IDLE: no snapshot held
    else:
        assert not driver.in_transaction
    # another connection writes and sees everything the kept scope committed
    with crm.engine.begin() as other:
        other.execute(text("UPDATE customers SET name = 'Ada L' WHERE id = :id"), {"id": ada.id})
    with crm.connection_scope(keep=True):
        assert crm.customers.get(ada.id).name == "Ada L"
        assert [c.name for c in crm.customers.list()] == ["Ada L"]
        assert len(crm.interactions.list(customer_id=ada.id)) == 1


@pytest.fixture
def pg(database_url, crmkit_backend):
    """A CRM of its own on PostgreSQL, and its URL (ending sessions is PostgreSQL's matter)."""
    if crmkit_backend != "postgresql":
        pytest.skip("ending the server's sessions is a PostgreSQL matter")
    with crmkit.open(database_url, plugins=[], upgrade=True) as crm:
        yield crm, database_url


def test_a_kept_connection_whose_session_ended_is_replaced(pg):
    crm, pg_url = pg
    ada = crm.customers.add({"name": "Ada"})
    with crm.connection_scope(keep=True):
        before = _driver(crm)
    assert _terminate_others(pg_url) >= 1
    with crm.connection_scope(keep=True):  # no error: the scope takes another
        assert crm.customers.get(ada.id).name == "Ada"
        crm.interactions.log(ada.id, "phone", subject="after")
        after = _driver(crm)
    assert after is not before and before.closed
    assert crm.engine.pool.checkedout() == 1


def test_a_kept_connection_that_broke_mid_scope_is_let_go(pg):
    from sqlalchemy.exc import OperationalError

    crm, pg_url = pg
    ada = crm.customers.add({"name": "Ada"})
    with crm.connection_scope(keep=True):
        broken = _driver(crm)
        _terminate_others(pg_url)
        with pytest.raises(OperationalError):
            crm.customers.get(ada.id)
    assert crm._kept.shared.connection is None  # let go at the scope's end
    with crm.connection_scope(keep=True):
        assert crm.customers.get(ada.id).name == "Ada"
        assert _driver(crm) is not broken


def _lock_wait(crm) -> int:
    """The lock wait of the connection the current scope's reads run on, in ms."""
    with crm.reading() as connection:
        if connection.dialect.name == "sqlite":
            return int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar())
        shown = connection.exec_driver_sql("SHOW lock_timeout").scalar()
        return int(shown.removesuffix("ms")) if shown != "0" else 0


def test_a_scopes_lock_wait_is_set_and_reset_before_the_pool_gets_it_back(crm):
    default = 30000 if crm.engine.dialect.name == "sqlite" else 0
    with crm.connection_scope(keep=True, lock_wait_ms=250):
        kept = _driver(crm)
        assert _lock_wait(crm) == 250
    with crm.connection_scope(keep=True, lock_wait_ms=250):  # kept: not set again
        assert _driver(crm) is kept and _lock_wait(crm) == 250
    with crm.connection_scope(keep=True):  # the same thread without a wait: reset
        assert _driver(crm) is kept and _lock_wait(crm) == default
    with crm.connection_scope(keep=True, lock_wait_ms=400):
        assert _lock_wait(crm) == 400
    crm.release_kept_connections()
    with crm.engine.connect() as connection:  # the pool hands back the one just released
        assert connection.connection.dbapi_connection is kept
    assert _lock_wait(crm) == default
    with crm.connection_scope(lock_wait_ms=120):  # an unkept scope: reset at its end
        assert _lock_wait(crm) == 120
    assert _lock_wait(crm) == default
