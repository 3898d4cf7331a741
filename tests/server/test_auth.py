"""Sign-in over HTTP (crmkit/server/api/auth.py) against a real ``crmkit serve`` process,
SQLite and PostgreSQL: the session cookie's flags, the generic 401, the 429 back-off,
rotation, sign-out and ``/auth/me``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import crmkit
from crmkit.core import identity
from crmkit.core import tables as t
from crmkit.testing import LiveServer

PASSWORD = "correct horse battery staple"
UNAUTHENTICATED = "/api/v1/problems#unauthenticated"


def config(folder: Path, database_url: str, **server: Any) -> Path:
    lines = [f"database = {json.dumps(database_url)}", "plugins = []", "", "[server]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in server.items()]
    path = folder / "crmkit.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def people(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    crm = make_crm(plugins=[])
    crm.staff.add("li.na", "Li Na", roles=["sales_rep"])
    crm.staff.add("boss", roles=["admin"])
    identity.set_password(crm, "li.na", PASSWORD)
    return crm


@pytest.fixture
def start(
    people: crmkit.CRM, database_url: str, tmp_path: Path, live_server: Callable[..., LiveServer]
) -> Callable[..., httpx.Client]:
    """Start a server with ``[server]`` settings; returns a client of its /api/v1."""
    clients: list[httpx.Client] = []

    def begin(**server: Any) -> httpx.Client:
        folder = tmp_path / f"server{len(clients)}"
        folder.mkdir()
        live = live_server(config(folder, database_url, **server), env={"CRMKIT_PLUGINS": ""})
        client = httpx.Client(base_url=f"{live.url}/api/v1", timeout=60)
        clients.append(client)
        return client

    yield begin
    for client in clients:
        client.close()


def sign_in(client: httpx.Client, username: str = "li.na", password: str = PASSWORD, **kw):
    return client.post("/auth/login", json={"username": username, "password": password}, **kw)


def cookie_parts(response: httpx.Response) -> list[str]:
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    return [part.strip() for part in headers[0].split(";")]


def test_login_sets_a_session_cookie_and_me_answers(people, start):
    client = start()
    response = sign_in(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == "li.na" and body["roles"] == ["sales_rep"]
    assert len(body["csrf_token"]) >= 40
    assert dt.datetime.fromisoformat(body["expires_at"]).utcoffset() is not None
    parts = cookie_parts(response)
    name, _, token = parts[0].partition("=")
    assert name == "crmkit_session" and len(token) >= 40
    assert {"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"} <= set(parts)
    assert "Secure" not in parts  # [server] secure_cookies is off
    assert response.headers["cache-control"] == "no-store"
    with people.reading() as connection:
        stored = connection.scalar(select(t.sessions.c.id))
    assert stored == hashlib.sha256(token.encode()).hexdigest()

    me = client.get("/auth/me")  # the client sends the cookie back
    assert me.status_code == 200, me.text
    assert me.json() == {
        "kind": "staff",
        "name": "li.na",
        "username": "li.na",
        "roles": ["sales_rep"],
        "scopes": None,
        "csrf_token": body["csrf_token"],
    }
    anonymous = httpx.get(str(client.base_url).rstrip("/") + "/auth/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    text, info = identity.create_token(people, "li.na", scopes=["customers.read"])
    by_token = httpx.get(
        str(client.base_url).rstrip("/") + "/auth/me", headers={"Authorization": f"Bearer {text}"}
    )
    assert by_token.json() == {
        "kind": "token",
        "name": f"token:{info.id}:li.na",
        "username": "li.na",
        "roles": ["sales_rep"],
        "scopes": ["customers.read"],
        "csrf_token": None,
    }


def test_wrong_password_is_a_generic_401(people, start):
    client = start()
    wrong = sign_in(client, password="not the password")
    unknown = sign_in(client, username="nobody")
    no_password = sign_in(client, username="boss", password="whatever it is")
    for response in (wrong, unknown, no_password):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert (problem["type"], problem["detail"]) == (
            UNAUTHENTICATED,
            "wrong username or password",
        )
        assert "set-cookie" not in response.headers
    for body in ({"username": "li.na"}, {"username": "li.na", "password": PASSWORD, "x": 1}):
        assert client.post("/auth/login", json=body).status_code == 422


def test_repeated_failures_get_429_with_retry_after(people, start):
    client = start()
    statuses = [sign_in(client, password=f"guess number {i}").status_code for i in range(5)]
    assert statuses == [401] * 5
    # from now on each failure doubles the wait (1, 2, 4, 8 s after the last failure); an
    # attempt inside it is refused with Retry-After, and is not counted
    failed = 5
    while failed < 8:
        response = sign_in(client, password="another guess")
        if response.status_code == 429:
            time.sleep(int(response.headers["retry-after"]))
        else:
            assert response.status_code == 401, response.text
            failed += 1
    refused = sign_in(client, password="and another")
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/api/v1/problems#rate-limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 8
    # while backed off even the right password is refused (it is not checked)
    right = sign_in(client)
    assert right.status_code == 429 and "set-cookie" not in right.headers
    with people.reading() as connection:
        assert connection.execute(select(t.sessions)).all() == []


def test_logout_and_rotation(people, start):
    client = start()
    first = sign_in(client)
    first_token = client.cookies["crmkit_session"]
    csrf = first.json()["csrf_token"]
    # signed in, a second sign-in is a write with the session: it needs the CSRF token
    assert sign_in(client).status_code == 403
    second = sign_in(client, headers={"X-CSRF-Token": csrf})
    assert second.status_code == 200
    second_token = client.cookies["crmkit_session"]
    assert second_token != first_token
    old = httpx.get(
        str(client.base_url).rstrip("/") + "/auth/me", cookies={"crmkit_session": first_token}
    )
    assert old.status_code == 401  # the session the sign-in replaced has ended
    with people.reading() as connection:
        assert len(connection.execute(select(t.sessions)).all()) == 1

    refused = client.post("/auth/logout")  # no CSRF token: refused, nothing ended
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert client.get("/auth/me").status_code == 200
    out = client.post("/auth/logout", headers={"X-CSRF-Token": second.json()["csrf_token"]})
    assert out.status_code == 204
    parts = cookie_parts(out)
    assert parts[0] == "crmkit_session=" and "Max-Age=0" in parts
    after = httpx.get(
        str(client.base_url).rstrip("/") + "/auth/me", cookies={"crmkit_session": second_token}
    )
    assert after.status_code == 401
    with people.reading() as connection:
        assert connection.execute(select(t.sessions)).all() == []
    assert client.post("/auth/logout").status_code == 204  # signed out already: still fine


def test_secure_cookies_by_configuration(people, start):
    client = start(secure_cookies=True, session_absolute_hours=2)
    response = sign_in(client)
    assert response.status_code == 200
    parts = cookie_parts(response)
    assert {"Secure", "HttpOnly", "SameSite=Lax", "Max-Age=7200"} <= set(parts)


def test_sign_in_ignores_idempotency_keys(people, start):
    """A stored sign-in response would hold a live session cookie for anyone replaying the
    key, and a failure inside the stored transaction would roll back its own counting."""
    client = start()
    first = sign_in(client, headers={"Idempotency-Key": "same-key"})
    second = httpx.post(
        str(client.base_url).rstrip("/") + "/auth/login",
        json={"username": "li.na", "password": PASSWORD},
        headers={"Idempotency-Key": "same-key"},
    )
    assert first.status_code == second.status_code == 200
    assert "idempotent-replayed" not in second.headers
    assert cookie_parts(first)[0] != cookie_parts(second)[0]
    for i in range(3):
        wrong = httpx.post(  # no cookie: a fresh client
            str(client.base_url).rstrip("/") + "/auth/login",
            json={"username": "li.na", "password": "wrong"},
            headers={"Idempotency-Key": f"k{i}"},
        )
        assert wrong.status_code == 401
    with people.reading() as connection:
        assert connection.execute(select(t.idempotency_keys)).all() == []
        failed = connection.execute(select(t.login_failures.c.key)).scalars().all()
    assert failed.count("account:li.na") == 3
