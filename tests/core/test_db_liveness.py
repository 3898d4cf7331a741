"""A database that ended its sessions (restart, pg_terminate_backend) is hidden from callers:
the pool notices the dropped connections at checkout and opens new ones (crmkit.core.db)."""

from __future__ import annotations

import time
import warnings

import pytest
from sqlalchemy import create_engine, text

import crmkit
from crmkit.core import db


def _terminate_others(url: str, keep: int | None = None) -> int:
    """End every other session on the database at ``url`` (as a restart would); how many."""
    admin = create_engine(db.normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            mine = connection.scalar(text("SELECT pg_backend_pid()"))
            pids = connection.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> :mine"
                ),
                {"mine": mine},
            ).all()
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                left = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid = ANY(:pids)"
                    ),
                    {"pids": list(pids)},
                )
                if not left:
                    break
                time.sleep(0.05)
    finally:
        admin.dispose()
    return len(pids)


@pytest.fixture
def pg_url(database_url: str, crmkit_backend: str) -> str:
    if crmkit_backend != "postgresql":
        pytest.skip("ending the server's sessions is a PostgreSQL matter")
    return database_url


def test_reads_and_writes_after_the_sessions_were_ended_succeed(pg_url):
    with crmkit.open(pg_url, plugins=[], upgrade=True) as crm:
        crm.engine.pool.dispose()
        customer = crm.customers.add({"name": "Ada"})
        # fill the pool with several idle connections, as a server's threads leave it
        scopes = [crm.engine.connect() for _ in range(3)]
        for connection in scopes:
            connection.execute(text("SELECT 1"))
        for connection in scopes:
            connection.close()
        assert crm.engine.pool.checkedin() >= 3

        assert _terminate_others(pg_url) >= 3

        with crm.connection_scope():  # as the server serves a request
            assert crm.customers.get(customer.id).name == "Ada"
        assert [c.id for c in crm.customers.list()] == [customer.id]
        crm.interactions.log(customer.id, "phone", subject="after the restart")
        assert len(crm.interactions.list(customer_id=customer.id)) == 1


def test_without_the_check_the_first_read_fails(pg_url):
    """The scenario above does break a pool that trusts its idle connections (the check
    is what hides it)."""
    crmkit.open(pg_url, plugins=[], upgrade=True).close()
    engine = create_engine(db.normalise_url(pg_url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        _terminate_others(pg_url)
        with (
            pytest.raises(Exception, match="terminat|closed|connection"),
            engine.connect() as connection,
        ):
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_the_servers_next_request_after_the_sessions_were_ended_succeeds(pg_url):
    """Over HTTP (the ASGI app in process, its handler threads and pool): requests after
    every session was ended are answered as before."""
    with warnings.catch_warnings():  # its notice about httpx: the client works as is
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from crmkit.core import identity
    from crmkit.server.app import create_app

    with crmkit.open(pg_url, plugins=[], upgrade=True) as crm:
        crm.staff.add("boss", "Boss", roles=["manager"])
        customer = crm.customers.add({"name": "Ada"})
        token, _info = identity.create_token(crm, "boss", scopes=["*"], name="t")
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(crm)) as client:
            path = f"/api/v1/customers/{customer.id}"
            assert client.get(path, headers=headers).status_code == 200
            assert _terminate_others(pg_url) >= 1
            assert client.get(path, headers=headers).json()["name"] == "Ada"
            assert client.get(f"{path}/360", headers=headers).status_code == 200
            logged = client.post(
                "/api/v1/interactions",
                json={"customer_id": customer.id, "channel": "phone", "subject": "after"},
                headers=headers,
            )
            assert logged.status_code == 201


def test_a_session_ended_mid_request_is_sqlalchemys_error_and_the_next_request_works(pg_url):
    """A read on the driver (crmkit.core.prebuilt) that finds its session ended raises what
    SQLAlchemy raises (the server answers 503) and invalidates the connection."""
    from sqlalchemy.exc import OperationalError

    with crmkit.open(pg_url, plugins=[], upgrade=True) as crm:
        customer = crm.customers.add({"name": "Ada"})
        with crm.connection_scope():
            assert crm.customers.get(customer.id).name == "Ada"
            _terminate_others(pg_url)
            with pytest.raises(OperationalError) as failed:
                crm.customers.get(customer.id)
            assert failed.value.connection_invalidated
        with crm.connection_scope():
            assert crm.customers.get(customer.id).name == "Ada"
