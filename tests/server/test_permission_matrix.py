"""The permission matrix (tests/server/matrix.py) through the three doors.

The same table of operations x principals, with the same expected outcome, through the
Python API (``crm.acting_as``), the CLI (``crmkit --as USER``) and HTTP against a real
``crmkit serve`` process, on SQLite and on PostgreSQL. One database and one server per
backend for the whole module; cases that change a record for good (erasure, an order's
status, a workflow move) get a fresh record of rep_a each.

Python door: Forbidden=403, NotFound=404, Unauthenticated=401, Conflict or
TransitionRefused=409. The revoked token and the expired session go through the same
identity functions the server uses (``token_actor``, ``session_actor``); the missing CSRF
header exists only over HTTP. CLI door: the staff principals only (``--as`` names a staff
member), exit 0 when allowed, exit 1 with one ``error:`` line when refused, naming the
permission (``customers.erase``) for a 403, "may not" for a stage role (409), "not found" or
"no <thing> <id>" (and no permission) for another rep's record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import crmkit
from crmkit.core import identity
from crmkit.core.actors import Actor
from crmkit.errors import Conflict, Forbidden, NotFound, TransitionRefused, Unauthenticated
from crmkit.testing import (
    BACKENDS,
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
    run_cli,
    start_server,
)

sys.path.insert(0, str(Path(__file__).parent))
from matrix import (  # noqa: E402 - the table beside this file (importlib mode)
    OK,
    OPERATIONS,
    PASSWORD,
    PLUGINS,
    PRINCIPALS,
    STAFF_PRINCIPALS,
    USERNAME,
    Operation,
    Target,
    World,
    expected,
    seed,
)


def _backend_or_skip(backend: str) -> None:
    if backend == "postgresql" and postgres_server_url() is None:
        if os.environ.get("CRMKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail("CRMKIT_REQUIRE_POSTGRES=1 but CRMKIT_TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL run skipped: set CRMKIT_TEST_DATABASE_URL to a server URL")


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[World]:
    """One seeded database per backend for the module, with every credential the HTTP
    door needs: an API token per staff principal, a revoked token, an expired session
    and a live session (both the manager's)."""
    _backend_or_skip(request.param)
    folder = tmp_path_factory.mktemp(f"matrix-{request.param}")
    server = postgres_server_url()
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'crm.db'}"
    else:
        assert server is not None
        url = create_postgres_database(server)
    crm = crmkit.open(url, plugins=PLUGINS, upgrade=True)
    try:
        found = seed(crm, folder)
        for principal in STAFF_PRINCIPALS:
            found.tokens[principal] = identity.create_token(
                crm, USERNAME[principal], scopes=["*"], name="matrix"
            )[0]
        revoked, info = identity.create_token(crm, "boss", scopes=["*"], name="revoked")
        identity.revoke_token(crm, info.id)
        found.tokens["revoked_token"] = revoked
        past = dt.datetime.now(dt.UTC) - dt.timedelta(
            hours=crm.config.server.session_absolute_hours + 1
        )
        found.sessions["expired_session"] = identity.login(crm, "boss", PASSWORD, now=past)
        found.sessions["no_csrf"] = identity.login(crm, "boss", PASSWORD)
        yield found
    finally:
        crm.close()
        if request.param == "postgresql":
            assert server is not None
            drop_postgres_database(server, url)


# -- the Python door --------------------------------------------------------------------


def python_actor(world: World, principal: str) -> Actor:
    """The actor a principal is in Python; Unauthenticated for a dead credential."""
    crm = world.crm
    if principal == "anonymous":
        return Actor.anonymous()
    if principal == "revoked_token":
        return identity.token_actor(crm, world.tokens["revoked_token"])
    if principal == "expired_session":
        return identity.session_actor(crm, world.sessions["expired_session"].session_token).actor
    return crm.staff.actor(USERNAME[principal])


def python_status(world: World, op: Operation, principal: str, target: Target) -> tuple[int, str]:
    try:
        actor = python_actor(world, principal)
        with world.crm.acting_as(actor):
            op.python(world.crm, target)
    except Unauthenticated as exc:
        return 401, str(exc)
    except Forbidden as exc:
        return 403, str(exc)
    except NotFound as exc:
        return 404, str(exc)
    except (Conflict, TransitionRefused) as exc:
        return 409, str(exc)
    return OK, ""


def outcome_matches(want: int, got: int) -> bool:
    return (200 <= got < 300) if want == OK else got == want


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_python_door(world: World, op: Operation) -> None:
    wrong = []
    for principal in PRINCIPALS:
        if principal == "no_csrf":  # a header: only HTTP has it
            continue
        want = expected(op.name, principal)
        target = world.target(op)
        mark = world.audit_mark()
        got, why = python_status(world, op, principal, target)
        if principal == "anonymous" and want == 401 and got == 403:
            got = 401  # no identity in Python: the permission check refuses it (Forbidden)
        if not outcome_matches(want, got):
            wrong.append(f"{principal}: expected {want}, got {got} {why}")
        elif want >= 400 and world.audit_mark() != mark:
            wrong.append(f"{principal}: refused ({got}) but something was written (audited)")
    assert not wrong, f"{op.name} through the Python API:\n" + "\n".join(wrong)


# -- the CLI door ------------------------------------------------------------------------

NOT_FOUND = re.compile(r"not found|\bno [a-z ]+ \d+", re.IGNORECASE)
#: a refusal names the permission it lacks (customers.erase, knowledgebase.write:own ...)
PERMISSION = re.compile(r"\b[a-z]+\.[a-z_]+\b")


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_cli_door(world: World, op: Operation) -> None:
    assert op.cli is not None
    wrong = []
    for principal in STAFF_PRINCIPALS:
        want = expected(op.name, principal)
        target = world.target(op)
        args = ["--as", USERNAME[principal], *op.cli(target)]
        mark = world.audit_mark()
        result = run_cli(args, database=world.url, plugins=PLUGINS)
        err = result.stderr
        if want == OK:
            ok = result.exit_code == 0
        else:
            ok = result.exit_code == 1 and err.startswith("error:")
            if want == 404:
                ok = ok and bool(NOT_FOUND.search(err)) and not PERMISSION.search(err)
            elif want == 403:
                ok = ok and bool(PERMISSION.search(err)) and not NOT_FOUND.search(err)
            elif want == 409:
                ok = ok and "may not" in err
            ok = ok and world.audit_mark() == mark  # a refusal writes nothing
        if not ok:
            wrong.append(
                f"{principal} ({' '.join(args)}): expected {want}, got exit "
                f"{result.exit_code}: {' '.join((err or result.output).split())[:200]}"
            )
    assert not wrong, f"{op.name} through the CLI:\n" + "\n".join(wrong)


# -- the HTTP door -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    """``crmkit serve`` on the world's database, on a free loopback port: its base URL."""
    config = world.folder / "crmkit.toml"
    config.write_text(f'database = "{world.url}"\nplugins = {json.dumps(PLUGINS)}\n')
    live = start_server(config, cwd=world.folder)
    try:
        yield live.url
    finally:
        live.stop()


def http_credentials(world: World, principal: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and cookies a principal sends."""
    if principal == "anonymous":
        return {}, {}
    if principal in world.tokens:
        return {"Authorization": f"Bearer {world.tokens[principal]}"}, {}
    session = world.sessions[principal]
    cookies = {"crmkit_session": session.session_token}
    if principal == "no_csrf":
        return {}, cookies
    return {"X-CSRF-Token": session.csrf_token}, cookies


def http_status(
    client: httpx.Client, world: World, op: Operation, principal: str, target: Target
) -> httpx.Response:
    request = op.http(target)
    headers, cookies = http_credentials(world, principal)
    headers = {**headers, **request.get("headers", {})}
    if request.get("if_match"):
        admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
        current = client.get(f"/api/v1/customers/{target.customer_id}", headers=admin)
        headers["If-Match"] = current.headers.get("ETag", '"v1"')
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)
    return client.request(
        request["method"], "/api/v1" + request["path"], headers=headers,
        json=request.get("json"), content=request.get("content"),
    )  # fmt: skip


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_http_door(server: str, world: World, op: Operation) -> None:
    wrong = []
    with httpx.Client(base_url=server, timeout=30) as client:
        for principal in PRINCIPALS:
            want = expected(op.name, principal)
            target = world.target(op)
            mark = world.audit_mark()
            response = http_status(client, world, op, principal, target)
            if not outcome_matches(want, response.status_code):
                wrong.append(
                    f"{principal}: expected {want}, got {response.status_code} "
                    f"{response.text[:300]}"
                )
            elif want >= 400:
                problem = response.json()
                assert response.headers["content-type"].startswith("application/problem+json")
                assert problem["status"] == want
                if want == 401:
                    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
                if principal == "no_csrf":
                    assert "csrf" in problem.get("detail", "").lower(), problem
                if world.audit_mark() != mark:
                    wrong.append(f"{principal}: refused ({want}) but something was written")
    assert not wrong, f"{op.name} over HTTP:\n" + "\n".join(wrong)


def test_http_lists_only_what_the_scope_shows(server: str, world: World) -> None:
    """A rep's customer list holds their own customers only; another rep's is absent."""
    with httpx.Client(base_url=server, timeout=30) as client:
        listed = client.get(
            "/api/v1/customers?limit=500",
            headers={"Authorization": f"Bearer {world.tokens['other_rep']}"},
        )
        assert listed.status_code == 200
        ids = {c["id"] for c in listed.json()}
        assert world.customer_b in ids
        assert world.customer_a not in ids
