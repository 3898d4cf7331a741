"""Fixtures for the server tests: a real ``crmkit serve`` process serving the test plugin.

``serverplugin.py`` (routes exercising the framework) is not an installed distribution, so
the server process loads it through ``CRMKIT_EXTRA_PLUGINS``. Each server gets its own
crmkit.toml in ``tmp_path`` on this run's database (SQLite file or fresh PostgreSQL
database) with a small body limit (64 KiB) so the 413 test sends little.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import crmkit
from crmkit.testing import (
    BACKENDS,
    LiveServer,
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
    start_server,
)

SERVERPLUGIN = Path(__file__).with_name("serverplugin.py")
MAX_BODY = 65536
PASSWORD = "correct horse battery staple"


def write_config(folder: Path, database_url: str, **server: Any) -> Path:
    """A crmkit.toml on ``database_url`` with no installed plugins and ``[server]`` keys."""
    settings = {"max_body_bytes": MAX_BODY, **server}
    lines = [f"database = {json.dumps(database_url)}", "plugins = []", "", "[server]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    path = folder / "crmkit.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


SERVER_ENV = {"CRMKIT_EXTRA_PLUGINS": str(SERVERPLUGIN), "CRMKIT_PLUGINS": ""}


@attrs.define
class Setup:
    """One backend's served database, shared by a module's tests."""

    database_url: str
    crm: crmkit.CRM
    server: LiveServer
    token: str


@pytest.fixture(scope="module", params=BACKENDS)
def served_setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    """A database at head (SQLite file or fresh PostgreSQL database) with staff member
    'ann' (role admin, password PASSWORD, an API token of every scope) and ``crmkit serve``
    on it serving the test routes: started once per module and backend (a server takes
    seconds to start on a busy machine)."""
    from crmkit.core import identity

    folder = tmp_path_factory.mktemp(f"served-{request.param}")
    pg_server = None
    if request.param == "postgresql":
        pg_server = postgres_server_url()
        if pg_server is None:
            if os.environ.get("CRMKIT_REQUIRE_POSTGRES") == "1":
                pytest.fail("CRMKIT_REQUIRE_POSTGRES=1 but CRMKIT_TEST_DATABASE_URL is not set")
            pytest.skip("PostgreSQL run skipped: set CRMKIT_TEST_DATABASE_URL to a server URL")
        url = create_postgres_database(pg_server)
    else:
        url = f"sqlite:///{folder / 'crm.db'}"
    crm = crmkit.open(url, plugins=[], upgrade=True)
    server = None
    try:
        crm.staff.add("ann", "Ann Admin", roles=["admin"])
        identity.set_password(crm, "ann", PASSWORD)
        token, _info = identity.create_token(crm, "ann", scopes=["*"])
        server = start_server(write_config(folder, url), env=SERVER_ENV)
        yield Setup(database_url=url, crm=crm, server=server, token=token)
    finally:
        if server is not None:
            server.cleanup()
        crm.close()
        if pg_server is not None:
            drop_postgres_database(pg_server, url)


@pytest.fixture(scope="module")
def served(served_setup: Setup) -> LiveServer:
    """``crmkit serve`` (one worker) with the test routes, on this module run's backend."""
    return served_setup.server


@pytest.fixture(scope="module")
def server_crm(served_setup: Setup) -> crmkit.CRM:
    """The tests' own CRM on the served database, for setup and checks."""
    return served_setup.crm


@pytest.fixture(scope="module")
def staff_token(served_setup: Setup) -> str:
    """An API token (every scope) of staff member 'ann' (role admin)."""
    return served_setup.token


@pytest.fixture
def server_env() -> dict[str, str]:
    """The environment a test server needs to serve the test routes."""
    return dict(SERVER_ENV)


@pytest.fixture
def config_writer() -> Callable[..., Path]:
    """``config_writer(folder, database_url, **server_settings)``: see :func:`write_config`."""
    return write_config


@pytest.fixture
def staff_password() -> str:
    return PASSWORD
