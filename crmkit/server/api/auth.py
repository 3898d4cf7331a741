"""Sign-in for browsers: ``POST /auth/login``, ``POST /auth/logout``, ``GET /auth/me``.

A successful sign-in sets the ``crmkit_session`` cookie (``HttpOnly; SameSite=Lax;
Path=/``, ``Secure`` when ``[server] secure_cookies``) and answers with the CSRF token
that unsafe requests made with the cookie must send as ``X-CSRF-Token`` (or the form
field ``csrf_token``). A failed one is a 401 saying only "wrong username or password";
repeated failures for one account or from one address are a 429 with ``Retry-After``
(:mod:`crmkit.core.identity`). Systems use API tokens (``Authorization: Bearer crm_...``,
made with ``crmkit token create``) instead.
"""

from __future__ import annotations

import datetime as dt

import attrs

from crmkit.core import identity
from crmkit.server.routing import ApiRequest, ApiResponse, Route

TAGS = ("auth",)
COOKIE = "crmkit_session"


@attrs.define
class LoginIn:
    """A staff member's username and password."""

    username: str
    password: str = attrs.field(repr=False)


@attrs.define
class LoginOut:
    """Who signed in, the CSRF token for unsafe requests, and when the session ends at the
    latest (it also ends after ``[server] session_idle_minutes`` without use)."""

    username: str
    roles: list[str]
    csrf_token: str
    expires_at: dt.datetime


@attrs.define
class MeOut:
    """The caller: ``kind`` is ``staff`` (a browser session) or ``token`` (an API token);
    ``scopes`` narrows a token (null for a session); ``csrf_token`` is the session's (null
    for a token)."""

    kind: str
    name: str
    username: str | None
    roles: list[str]
    scopes: list[str] | None = None
    csrf_token: str | None = None


def _cookie(req: ApiRequest, value: str, max_age: int) -> str:
    parts = [f"{COOKIE}={value}", "HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={max_age}"]
    if req.crm.config.server.secure_cookies:
        parts.append("Secure")
    return "; ".join(parts)


def login(req: ApiRequest) -> ApiResponse:
    """Sign in with a username and password: sets the session cookie (a new session at
    every sign-in; the one the request carried ends) and returns the CSRF token."""
    body: LoginIn = req.body
    result = identity.login(
        req.crm,
        body.username,
        body.password,
        address=req.client,
        previous_session_id=req.session_id,
        request_id=req.request_id or None,
    )
    hours = req.crm.config.server.session_absolute_hours
    out = LoginOut(
        username=result.actor.username or body.username,
        roles=list(result.actor.roles),
        csrf_token=result.csrf_token,
        expires_at=result.expires_at,
    )
    return ApiResponse(
        body=out,
        headers={
            "Set-Cookie": _cookie(req, result.session_token, hours * 3600),
            "Cache-Control": "no-store",
        },
    )


def logout(req: ApiRequest) -> ApiResponse:
    """Sign out: ends the session of the cookie and clears it (also when it had already
    ended). A live session must send its CSRF token, like every unsafe request."""
    identity.logout(req.crm, session_id=req.session_id)
    return ApiResponse(status=204, headers={"Set-Cookie": _cookie(req, "", 0)})


def me(req: ApiRequest) -> ApiResponse:
    """Who the request acts as: a signed-in staff member or an API token."""
    actor = req.actor
    csrf = identity.session_csrf(req.crm, req.session_id) if actor.kind == "staff" else None
    out = MeOut(
        kind=actor.kind,
        name=actor.name,
        username=actor.username,
        roles=list(actor.roles),
        scopes=sorted(actor.scopes) if actor.scopes is not None else None,
        csrf_token=csrf,
    )
    return ApiResponse(body=out, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The sign-in routes, relative to ``/api/v1``."""
    return [
        Route("POST", "/auth/login", login, "Sign in (sets the session cookie)",
              body=LoginIn, response=LoginOut, public=True, tags=TAGS, operation_id="login",
              errors=(401, 429)),
        Route("POST", "/auth/logout", logout, "Sign out (ends the session, clears the cookie)",
              status=204, public=True, tags=TAGS, operation_id="logout"),
        Route("GET", "/auth/me", me, "Who is signed in", response=MeOut, tags=TAGS, quick=True,
              operation_id="me"),
    ]  # fmt: skip
