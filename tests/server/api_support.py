"""What the core API's tests share (imported beside them: importlib mode).

:func:`running_api` opens a fresh database on a backend, adds an admin and a sales rep with
API tokens (as the Python operator, through ``crmkit.core.identity``), writes a
crmkit.toml with no plugins and starts a real ``crmkit serve`` process on a loopback port.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

import crmkit
from crmkit.core import identity
from crmkit.testing import (
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
    start_server,
)


@attrs.define
class Api:
    """A running server: ``client`` acts as the admin, ``rep`` as sales rep ``rep_a``."""

    crm: crmkit.CRM
    url: str
    base: str
    client: httpx.Client
    rep: httpx.Client
    server: Any
    tokens: dict[str, str]
    folder: Path

    def as_token(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def token_for(self, username: str, roles: list[str], scopes: list[str] | None = None) -> str:
        """A staff member (added when new) and an API token acting as them."""
        if self.crm.staff.find(username) is None:
            self.crm.staff.add(username, username, roles=roles)
        text, _ = identity.create_token(self.crm, username, scopes=scopes or ["*"])
        return text


def backend_or_skip(backend: str) -> None:
    if backend == "postgresql" and postgres_server_url() is None:
        if os.environ.get("CRMKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail("CRMKIT_REQUIRE_POSTGRES=1 but CRMKIT_TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL run skipped: set CRMKIT_TEST_DATABASE_URL to a server URL")


@contextlib.contextmanager
def running_api(
    backend: str, folder: Path, *, workers: int = 1, config_extra: str = ""
) -> Iterator[Api]:
    """A server on a fresh database of ``backend``; ``config_extra`` is added to its
    crmkit.toml (``[attributes.vip]`` ...)."""
    backend_or_skip(backend)
    server_url = postgres_server_url()
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'crm.db'}"
    else:
        assert server_url is not None
        url = create_postgres_database(server_url)
    crm = crmkit.open(url, plugins=[], upgrade=True)
    live = None
    clients: list[httpx.Client] = []
    try:
        crm.staff.add("boss", "Boss", roles=["admin"])
        crm.staff.add("rep_a", "Rep A", roles=["sales_rep"])
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        tokens = {
            name: identity.create_token(crm, name, scopes=["*"], expires_at=expires)[0]
            for name in ("boss", "rep_a")
        }
        config = folder / "crmkit.toml"
        config.write_text(f'database = "{url}"\nplugins = []\n{config_extra}', encoding="utf-8")
        live = start_server(config, workers=workers, cwd=folder)
        base = f"{live.url}/api/v1"
        for name in ("boss", "rep_a"):
            clients.append(
                httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {tokens[name]}"}, timeout=60
                )
            )
        yield Api(crm, url, base, clients[0], clients[1], live, tokens, folder)
    finally:
        for client in clients:
            client.close()
        if live is not None:
            live.stop()
        crm.close()
        if backend == "postgresql" and server_url is not None:
            drop_postgres_database(server_url, url)


def problem_type(response: httpx.Response) -> str:
    """The slug of a problem document's type (``not-found``)."""
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.status_code,
        response.text,
    )
    return response.json()["type"].rsplit("#", 1)[-1]


def all_pages(client: httpx.Client, path: str, **params: Any) -> tuple[list[Any], int]:
    """Every item of a list, following Link rel="next"; and the number of pages."""
    response = client.get(path, params=params)
    items: list[Any] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        items.extend(response.json())
        pages += 1
        following = response.links.get("next")
        if not following:
            return items, pages
        response = client.get(following["url"])
