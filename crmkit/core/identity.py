"""Identity: staff passwords, browser sessions, API tokens and the sign-in back-off.

* **Passwords** are hashed with argon2id (argon2-cffi's :class:`PasswordHasher` defaults);
  a hash made with older parameters is replaced at the next successful sign-in.
* **Sessions** are server-side: the browser's cookie holds a random token, the
  ``sessions`` table only its SHA-256 (a stolen database holds no usable cookie). A
  session ends after ``[server] session_idle_minutes`` without use or
  ``session_absolute_hours`` after sign-in, whichever comes first; each sign-in makes a
  new one (a cookie presented at sign-in is deleted: no session fixation). A password
  change ends all of the member's sessions.
* **API tokens** (``crm_...``) are shown once at creation; only their SHA-256 and a display
  prefix are stored. A token acts as its staff member narrowed to the token's scopes.
* **Back-off**: failed sign-ins are counted per account and per address. After
  :data:`FREE_FAILURES` failures within :data:`WINDOW` for one of them, the next attempt
  must wait ``2^(n-5)`` seconds after the last failure (at most :data:`WINDOW`), and an
  attempt that comes earlier is refused with :class:`~crmkit.errors.TooManyAttempts`
  before any password is checked. The answer to a failed sign-in never says whether the
  account exists: unknown accounts cost the same hash check and count the same way.

Nothing here stores or audits a password, hash or token: audit entries say
``{"password": [None, "changed"]}`` and name tokens by id.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, delete, event, func, insert, select, update

from crmkit.core import tables as t
from crmkit.core.actors import Actor
from crmkit.errors import (
    CrmError,
    Forbidden,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    ValidationError,
)

if TYPE_CHECKING:
    from crmkit.crm import CRM

#: Failures per account or address allowed within :data:`WINDOW` before the back-off.
FREE_FAILURES = 5
#: How long a failure counts, and the longest wait.
WINDOW = dt.timedelta(minutes=15)
#: Shortest password accepted by :func:`set_password`.
MIN_PASSWORD_LENGTH = 10
#: Longest password accepted (argon2 hashes any length; this bounds the work).
MAX_PASSWORD_LENGTH = 1024
#: How often ``last_seen_at`` / ``last_used_at`` are written at most.
TOUCH_EVERY = dt.timedelta(minutes=1)
#: Prefix of every API token's text.
TOKEN_PREFIX = "crm_"

#: The one message of every failed sign-in, whatever failed.
WRONG_CREDENTIALS = "wrong username or password"
SESSION_ENDED = "not signed in, or the session has ended; sign in again"
BAD_TOKEN = "unknown, expired or revoked API token"

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters


# -- passwords ------------------------------------------------------------------


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; a PHC string holding its parameters)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; False for a mismatch or a hash that
    is not argon2 (never raises for bad input)."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError, TypeError, ValueError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with other parameters than today's defaults."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


@functools.cache
def _dummy_hash() -> str:
    """A hash no password matches, verified for unknown accounts (same work either way)."""
    return hash_password(secrets.token_urlsafe(24))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _utcnow() -> dt.datetime:
    from crmkit.crm import utcnow

    return utcnow()


def _aware(moment: dt.datetime | None, what: str = "now") -> dt.datetime:
    if moment is None:
        return _utcnow()
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(f"{what} must be a timezone-aware datetime", field=what)
    return moment.astimezone(dt.UTC)


def set_password(crm: CRM, username: str, password: str, *, now: dt.datetime | None = None) -> None:
    """Set staff member ``username``'s password and end their sessions.

    Needs ``staff.admin`` unless the signed-in staff member changes their own password.
    Refuses a password shorter than :data:`MIN_PASSWORD_LENGTH` characters, or one equal
    to the username. Audited as ``staff.password`` (the entry holds no password or hash).
    """
    actor = crm.actor
    if not (actor.kind == "staff" and actor.username == username):
        crm.authorise("staff.admin")
    _check_password(username, password)
    hashed = hash_password(password)
    moment = _aware(now)
    with crm.transaction(now=moment) as ctx:
        member = crm.staff.get(username)
        ctx.connection.execute(
            update(t.staff)
            .where(t.staff.c.id == member.id)
            .values(password_hash=hashed, password_changed_at=moment)
        )
        ctx.connection.execute(delete(t.sessions).where(t.sessions.c.staff_id == member.id))
        ctx.audit("staff.password", "staff", member.id, changes={"password": [None, "changed"]})


def _check_password(username: str, password: str) -> None:
    if not isinstance(password, str):
        raise ValidationError("the password must be text", field="password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters "
            "(a few unrelated words make a good one)",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters",
            field="password",
        )
    if password.strip().casefold() == username.strip().casefold():
        raise ValidationError("the password must not be the username", field="password")


# -- bookkeeping writes -------------------------------------------------------------


@contextmanager
def _bookkeeping(crm: CRM) -> Iterator[Connection]:
    """A connection for bookkeeping writes (failures, last-seen times): the running
    transaction's, or a short one of its own, without audit or plugin catch-up."""
    outer = crm._current.get()
    if outer is not None:
        yield outer.connection
        return
    with crm._connect(write=True) as connection, connection.begin():
        yield connection


# -- back-off -------------------------------------------------------------------------


def _failure_keys(username: str, address: str | None) -> list[str]:
    keys = [f"account:{_clip(username, 150)}"]
    if address:
        keys.append(f"address:{_clip(address, 150)}")
    return keys


def _clip(text: Any, size: int) -> str:
    """Text safe to store and compare: a string, no NUL, at most ``size`` characters."""
    return str(text).replace("\x00", "\ufffd")[:size]


def retry_after(crm: CRM, username: str, address: str | None, now: dt.datetime) -> int:
    """Seconds the next sign-in for ``username`` from ``address`` must still wait (0: none)."""
    with crm.reading() as connection:
        return _wait(connection, _failure_keys(username, address), now)


def _wait(connection: Connection, keys: list[str], now: dt.datetime) -> int:
    f = t.login_failures.c
    wait = 0.0
    rows = connection.execute(
        select(f.key, func.count(), func.max(f.at))
        .where(f.key.in_(keys), f.at > now - WINDOW)
        .group_by(f.key)
    ).all()
    for _key, count, last in rows:
        if count < FREE_FAILURES:
            continue
        delay = min(2.0 ** (count - FREE_FAILURES), WINDOW.total_seconds())
        last_at = _as_utc(last)
        wait = max(wait, (last_at + dt.timedelta(seconds=delay) - now).total_seconds())
    return math.ceil(wait) if wait > 0 else 0


def _as_utc(value: Any) -> dt.datetime:
    """An aggregate's datetime (SQLite gives text, naive; PostgreSQL aware) as aware UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _claim_attempt(crm: CRM, keys: list[str], now: dt.datetime) -> tuple[int, list[int]]:
    """Check the back-off and count this attempt as a failure, in one step: ``(wait, [])``
    when it must wait, else ``(0, ids of the failure rows)`` (a success deletes them).

    Counting before the password is checked, atomically (SQLite: the write lock taken at
    BEGIN; PostgreSQL: an advisory lock per key), means parallel guesses cannot all pass
    the check before any of them is counted."""
    f = t.login_failures.c
    with _bookkeeping(crm) as connection:
        if connection.dialect.name == "postgresql":
            for key in sorted(keys):
                connection.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
        wait = _wait(connection, keys, now)
        if wait:
            return wait, []
        connection.execute(delete(t.login_failures).where(f.key.in_(keys), f.at <= now - WINDOW))
        ids = [
            connection.scalar(insert(t.login_failures).returning(f.id), {"key": key, "at": now})
            for key in keys
        ]
    return 0, ids


# -- sign-in and sessions ---------------------------------------------------------------


@attrs.frozen
class LoginResult:
    """A new session: the cookie's token (shown once), its CSRF token, who signed in."""

    session_token: str = attrs.field(repr=False)
    csrf_token: str = attrs.field(repr=False)
    actor: Actor
    expires_at: dt.datetime


@attrs.frozen
class SessionInfo:
    """A live session: its actor, the CSRF token unsafe requests must carry, its id
    (the SHA-256 of the cookie) and when it ends at the latest."""

    actor: Actor
    csrf_token: str = attrs.field(repr=False)
    session_id: str
    expires_at: dt.datetime | None = None


def _staff_row(connection: Connection, username: str) -> Any:
    if not isinstance(username, str) or not username or len(username) > 100 or "\x00" in username:
        return None
    return connection.execute(select(t.staff).where(t.staff.c.username == username)).first()


def _actor_of(row: Any, request_id: str | None = None) -> Actor:
    return Actor.for_staff(
        row.username,
        list(row.roles or []),
        staff_id=row.id,
        manager=row.manager,
        request_id=request_id,
    )


def login(
    crm: CRM,
    username: str,
    password: str,
    *,
    address: str | None = None,
    previous_session: str | None = None,
    previous_session_id: str | None = None,
    request_id: str | None = None,
    now: dt.datetime | None = None,
) -> LoginResult:
    """Sign staff member ``username`` in with ``password``; a new session.

    Raises :class:`~crmkit.errors.Unauthenticated` (``"wrong username or password"``) for
    any failure, whether or not the account exists or is active, and
    :class:`~crmkit.errors.TooManyAttempts` while the account or ``address`` is backed off
    (the password is then not checked). ``previous_session`` is a session token the
    client presented (or ``previous_session_id``, its SHA-256): it is deleted (the session
    id changes at every sign-in).
    """
    if crm._current.get() is not None:
        # a failure must be recorded although the attempt fails: never inside a transaction
        # that the failure would roll back (nor may a session token be stored with it)
        raise CrmError("identity.login runs on its own, never inside a transaction")
    moment = _aware(now)
    name = username if isinstance(username, str) else ""
    keys = _failure_keys(name, address)
    wait, claimed = _claim_attempt(crm, keys, moment)
    if wait:
        raise TooManyAttempts(
            f"too many failed sign-ins; try again in {wait} seconds", retry_after=wait
        )
    with crm.reading() as connection:
        row = _staff_row(connection, name)
    stored = row.password_hash if row is not None and row.password_hash else None
    matches = verify_password(
        stored or _dummy_hash(), password if isinstance(password, str) else ""
    )
    if row is None or stored is None or not matches or not row.active:
        raise Unauthenticated(WRONG_CREDENTIALS)  # counted already by _claim_attempt
    actor = _actor_of(row, request_id)
    replaced = previous_session_id
    if previous_session and isinstance(previous_session, str):
        replaced = _sha256(previous_session)
    return _start_session(crm, row, actor, password, (keys[0], claimed), address, replaced, moment)


def _start_session(
    crm: CRM,
    row: Any,
    actor: Actor,
    password: str,
    counted: tuple[str, list[int]],
    address: str | None,
    replaced: str | None,
    moment: dt.datetime,
) -> LoginResult:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires_at = moment + dt.timedelta(hours=crm.config.server.session_absolute_hours)
    with crm.transaction(actor=actor, now=moment) as ctx:
        c = ctx.connection
        if replaced:
            c.execute(delete(t.sessions).where(t.sessions.c.id == replaced))
        c.execute(
            insert(t.sessions),
            {
                "id": _sha256(token),
                "staff_id": row.id,
                "csrf_token": csrf,
                "created_at": moment,
                "last_seen_at": moment,
                "expires_at": expires_at,
                "address": _clip(address, 64) if address else None,
            },
        )
        # the account's failures end with a success; so does this attempt's own count
        f = t.login_failures.c
        account_key, claimed = counted
        c.execute(delete(t.login_failures).where((f.key == account_key) | f.id.in_(claimed)))
        _prune(crm, c, row.id, moment)
        if needs_rehash(row.password_hash):
            c.execute(
                update(t.staff)
                .where(t.staff.c.id == row.id)
                .values(password_hash=hash_password(password))
            )
        ctx.audit(
            "auth.login",
            "staff",
            row.id,
            changes={"session": [None, "started"], "address": [None, address]},
        )
    return LoginResult(token, csrf, actor, expires_at)


def _prune(crm: CRM, connection: Connection, staff_id: int, now: dt.datetime) -> None:
    """Housekeeping at each sign-in: the member's ended sessions, everyone's failures older
    than the back-off window (both tables only ever hold what still matters)."""
    s = t.sessions.c
    idle = dt.timedelta(minutes=crm.config.server.session_idle_minutes)
    connection.execute(
        delete(t.sessions).where(
            s.staff_id == staff_id, (s.expires_at <= now) | (s.last_seen_at < now - idle)
        )
    )
    connection.execute(delete(t.login_failures).where(t.login_failures.c.at <= now - WINDOW))


def session_actor(
    crm: CRM,
    session_token: str | None,
    *,
    address: str | None = None,
    request_id: str | None = None,
    now: dt.datetime | None = None,
) -> SessionInfo:
    """The staff member a session cookie belongs to, or
    :class:`~crmkit.errors.Unauthenticated` when the session is unknown, idle longer than
    ``[server] session_idle_minutes``, older than ``session_absolute_hours``, or its staff
    member is deactivated. Notes the use (at most once a minute). ``address`` is accepted
    for the server's calls; the session keeps the address it was signed in from."""
    if not session_token or not isinstance(session_token, str) or len(session_token) > 200:
        raise Unauthenticated(SESSION_ENDED)
    moment = _aware(now)
    session_id = _sha256(session_token)
    s = t.sessions.c
    with crm.reading() as connection:
        found = connection.execute(
            select(s.csrf_token, s.last_seen_at, s.expires_at, t.staff)
            .join(t.staff, t.staff.c.id == s.staff_id)
            .where(s.id == session_id)
        ).first()
    if found is None:
        raise Unauthenticated(SESSION_ENDED)
    idle = dt.timedelta(minutes=crm.config.server.session_idle_minutes)
    ended = moment >= found.expires_at or moment - found.last_seen_at > idle
    if ended or not found.active:
        with _bookkeeping(crm) as connection:
            connection.execute(delete(t.sessions).where(s.id == session_id))
        raise Unauthenticated(SESSION_ENDED)
    if moment - found.last_seen_at >= TOUCH_EVERY:
        with _bookkeeping(crm) as connection:
            connection.execute(
                update(t.sessions).where(s.id == session_id).values(last_seen_at=moment)
            )
    return SessionInfo(_actor_of(found, request_id), found.csrf_token, session_id, found.expires_at)


def logout(crm: CRM, session_token: str | None = None, *, session_id: str | None = None) -> bool:
    """End the session of ``session_token`` (or of ``session_id``, its SHA-256); True when
    there was one (audited as ``auth.logout`` by its staff member)."""
    if session_token and isinstance(session_token, str) and len(session_token) <= 200:
        session_id = _sha256(session_token)
    if not session_id or not isinstance(session_id, str) or len(session_id) != 64:
        return False
    with crm.reading() as connection:
        row = connection.execute(
            select(t.staff).join(t.sessions, t.sessions.c.staff_id == t.staff.c.id)
            .where(t.sessions.c.id == session_id)
        ).first()  # fmt: skip
    if row is None:
        return False
    with crm.transaction(actor=_actor_of(row, crm.actor.request_id)) as ctx:
        ctx.connection.execute(delete(t.sessions).where(t.sessions.c.id == session_id))
        ctx.audit("auth.logout", "staff", row.id, changes={"session": ["started", None]})
    return True


def session_csrf(crm: CRM, session_id: str | None) -> str | None:
    """The CSRF token of session ``session_id`` (a page reloaded after sign-in asks for it
    again through ``GET /auth/me``), or None."""
    if not session_id or not isinstance(session_id, str) or len(session_id) != 64:
        return None
    with crm.reading() as connection:
        return connection.scalar(
            select(t.sessions.c.csrf_token).where(t.sessions.c.id == session_id)
        )


# -- API tokens -------------------------------------------------------------------------


@attrs.frozen
class TokenInfo:
    """An API token as listed (never its text): ``prefix`` is the first 8 characters after
    ``crm_``, enough to recognise it; ``active`` is false once revoked or expired, or when
    its staff member is deactivated."""

    id: int
    staff: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    active: bool = True
    created_by: str | None = None


def _check_scopes(crm: CRM, scopes: Any) -> list[str]:
    if isinstance(scopes, str) or not isinstance(scopes, list | tuple) or not scopes:
        raise ValidationError(
            "give the token at least one scope: a permission ('customers.read'), all of "
            "one area ('customers.*') or everything ('*')",
            field="scopes",
        )
    names = crm.permissions.specs
    found: list[str] = []
    for scope in scopes:
        text = scope.strip() if isinstance(scope, str) else ""
        prefix = text[:-1] if text.endswith(".*") else None
        known = text == "*" or text in names or (
            bool(prefix) and any(n.startswith(prefix) for n in names)
        )  # fmt: skip
        if not known:
            raise ValidationError(
                f"unknown scope {scope!r}; use a permission ({', '.join(sorted(names))}), "
                "'<area>.*' or '*'",
                field="scopes",
            )
        if text not in found:
            found.append(text)
    return found


def _check_token_name(name: Any) -> str:
    if not isinstance(name, str) or "\x00" in name:
        raise ValidationError("the token's name must be text", field="name")
    name = name.strip()
    if len(name) > 100:
        raise ValidationError(
            f"the token's name is {len(name)} characters long; at most 100 fit", field="name"
        )
    return name


def create_token(
    crm: CRM,
    username: str,
    *,
    scopes: list[str],
    expires_at: dt.datetime | None = None,
    name: str = "",
    now: dt.datetime | None = None,
) -> tuple[str, TokenInfo]:
    """A new API token for staff member ``username`` with ``scopes``; returns its text
    (shown this once: only its SHA-256 is stored) and its :class:`TokenInfo`. Needs
    ``staff.admin``; audited as ``token.create`` (without the token)."""
    crm.authorise("staff.admin")
    moment = _aware(now)
    found = _check_scopes(crm, scopes)
    label = _check_token_name(name)
    if expires_at is not None:
        expires_at = _aware(expires_at, "expires_at")
        if expires_at <= moment:
            raise ValidationError(
                "the token would already have expired; give a future expiry", field="expires_at"
            )
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    prefix = text[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 8]
    with crm.transaction(now=moment) as ctx:
        member = crm.staff.get(username)
        crm.staff.refuse_inactive(username, "hold API tokens")
        values = {
            "staff_id": member.id,
            "name": label,
            "prefix": prefix,
            "token_hash": _sha256(text),
            "scopes": found,
            "created_at": moment,
            "created_by": ctx.actor.name,
            "expires_at": expires_at,
        }
        token_id = ctx.connection.scalar(insert(t.api_tokens).returning(t.api_tokens.c.id), values)
        ctx.audit(
            "token.create",
            "api_token",
            token_id,
            changes={
                "staff": [None, username],
                "name": [None, label],
                "prefix": [None, prefix],
                "scopes": [None, found],
                "expires_at": [None, expires_at],
            },
        )
    info = TokenInfo(
        id=token_id,
        staff=username,
        name=label,
        prefix=prefix,
        scopes=found,
        created_at=moment,
        expires_at=expires_at,
        created_by=ctx.actor.name,
    )
    return text, info


def _token_query() -> Any:
    return select(t.api_tokens, t.staff.c.username, t.staff.c.active.label("staff_active")).join(
        t.staff, t.staff.c.id == t.api_tokens.c.staff_id
    )


def _token_info(row: Any, now: dt.datetime) -> TokenInfo:
    active = (
        row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
        and bool(row.staff_active)
    )
    return TokenInfo(
        id=row.id,
        staff=row.username,
        name=row.name,
        prefix=row.prefix,
        scopes=list(row.scopes or []),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        active=active,
        created_by=row.created_by,
    )


def list_tokens(
    crm: CRM, username: str | None = None, *, now: dt.datetime | None = None
) -> list[TokenInfo]:
    """API tokens (all, or ``username``'s), newest first, revoked and expired ones too.
    Needs ``staff.admin``, except for a signed-in staff member listing their own."""
    actor = crm.actor
    try:
        crm.authorise("staff.admin")
    except Forbidden:
        if actor.kind != "staff" or username not in (None, actor.username):
            raise
        username = actor.username
    moment = _aware(now)
    query = _token_query().order_by(t.api_tokens.c.id.desc())
    if username is not None:
        query = query.where(t.staff.c.username == username)
    with crm.reading() as connection:
        if username is not None and _staff_row(connection, username) is None:
            raise NotFound(f"staff member {username!r} not found")
        rows = connection.execute(query).all()
    return [_token_info(row, moment) for row in rows]


def revoke_token(crm: CRM, token_id: int, *, now: dt.datetime | None = None) -> TokenInfo:
    """Revoke API token ``token_id`` (it stops working at once). Needs ``staff.admin``;
    audited as ``token.revoke``. Revoking a revoked token changes nothing."""
    crm.authorise("staff.admin")
    moment = _aware(now)
    with crm.transaction(now=moment) as ctx:
        row = ctx.connection.execute(_token_query().where(t.api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no API token {token_id}; see 'crmkit token list'")
        if row.revoked_at is not None:
            return _token_info(row, moment)
        ctx.connection.execute(
            update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(revoked_at=moment)
        )
        ctx.audit(
            "token.revoke", "api_token", token_id,
            changes={"revoked_at": [None, moment], "staff": [row.username, row.username]},
        )  # fmt: skip
    return attrs.evolve(_token_info(row, moment), revoked_at=moment, active=False)


def token_actor(
    crm: CRM, token_text: str | None, *, request_id: str | None = None,
    now: dt.datetime | None = None,
) -> Actor:  # fmt: skip
    """The actor of an API token: its staff member narrowed to its scopes, carrying
    ``request_id``. :class:`~crmkit.errors.Unauthenticated` when the token is unknown,
    revoked, expired, or its staff member is deactivated. Notes the use (at most once a
    minute). The lookup is by the token's SHA-256, so no secret is compared in Python."""
    moment = _aware(now)
    found = _token_lookup(crm, _token_hash(token_text), moment)
    _touch_token(crm, found, moment)
    return found.actor.with_request(request_id)


@attrs.define
class _Token:
    """A token looked up: the actor it gives (no request id), when it expires, its use."""

    id: int
    actor: Actor
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


def _token_hash(token_text: str | None) -> str:
    ok_text = isinstance(token_text, str) and token_text.startswith(TOKEN_PREFIX)
    if not ok_text or len(token_text) > 200:  # type: ignore[arg-type]
        raise Unauthenticated(BAD_TOKEN)
    return _sha256(token_text)  # type: ignore[arg-type]


def _token_lookup(crm: CRM, token_hash: str, moment: dt.datetime) -> _Token:
    with crm.reading() as connection:
        row = connection.execute(
            select(t.api_tokens, t.staff.c.username, t.staff.c.roles, t.staff.c.manager,
                   t.staff.c.active)
            .join(t.staff, t.staff.c.id == t.api_tokens.c.staff_id)
            .where(t.api_tokens.c.token_hash == token_hash)
        ).first()  # fmt: skip
    if row is None or row.revoked_at is not None or not row.active:
        raise Unauthenticated(BAD_TOKEN)
    found = _Token(
        id=row.id,
        actor=Actor.for_staff(
            row.username, list(row.roles or []), staff_id=row.staff_id, manager=row.manager
        ).through_token(row.id, frozenset(row.scopes or [])),
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )
    _check_expiry(found, moment)
    return found


def _check_expiry(found: _Token, moment: dt.datetime) -> None:
    if found.expires_at is not None and found.expires_at <= moment:
        raise Unauthenticated(BAD_TOKEN)


def _touch_token(crm: CRM, found: _Token, moment: dt.datetime) -> None:
    """Note the token's use, at most once per :data:`TOUCH_EVERY`."""
    if found.last_used_at is None or moment - found.last_used_at >= TOUCH_EVERY:
        with _bookkeeping(crm) as connection:
            connection.execute(
                update(t.api_tokens)
                .where(t.api_tokens.c.id == found.id)
                .values(last_used_at=moment)
            )
        found.last_used_at = moment


#: How long a server worker keeps a token it looked up (:class:`TokenCache`).
TOKEN_CACHE_SECONDS = 5.0
#: The tables whose committed writes empty a :class:`TokenCache` (what a token's actor is
#: made of: the token, its staff member's roles, manager and active flag).
_IDENTITY_TABLES = re.compile(
    r"\s*(?:UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+\"?(?:api_tokens|staff)\b", re.I
)
#: the one write to those tables that changes no actor: noting a token's last use
_TOUCH = re.compile(r"UPDATE api_tokens SET last_used_at=[^,]* WHERE")


class TokenCache:
    """API tokens a server worker looked up, kept :data:`TOKEN_CACHE_SECONDS`: a request
    with a token seen in the last seconds costs no lookup (hashing and one query are a
    tenth of a simple request's work).

    Correctness: expiry is checked on every use. Any committed write to ``api_tokens`` or
    ``staff`` through this CRM (a revocation, a deactivation, a role change made by this
    worker) empties the cache at its commit, so it takes effect at once here; one made by
    another process (another worker, the CLI) takes effect within the cache's lifetime.
    A lookup that raced such a commit is not kept (the generation counter).
    """

    def __init__(self, crm: CRM, seconds: float = TOKEN_CACHE_SECONDS) -> None:
        self.crm = crm
        self.seconds = seconds
        self._entries: dict[str, tuple[float, _Token]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        event.listen(crm.engine, "before_cursor_execute", self._noted)
        event.listen(crm.engine, "commit", self._committed)
        event.listen(crm.engine, "rollback", self._committed)

    def close(self) -> None:
        event.remove(self.crm.engine, "before_cursor_execute", self._noted)
        event.remove(self.crm.engine, "commit", self._committed)
        event.remove(self.crm.engine, "rollback", self._committed)

    def _noted(self, connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement[:1] == "S" or not _IDENTITY_TABLES.match(statement):
            return
        if not _TOUCH.match(statement):
            connection.info["crmkit_identity_written"] = True
            self.clear()  # at once, and again at the commit (a lookup in between is stale)

    def _committed(self, connection: Any) -> None:
        if connection.info.pop("crmkit_identity_written", False):
            self.clear()

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def actor(self, token_text: str | None, *, request_id: str | None = None) -> Actor:
        """As :func:`token_actor`, from the cache when the token was looked up lately."""
        token_hash = _token_hash(token_text)
        moment = _utcnow()
        clock = time.monotonic()
        entry = self._entries.get(token_hash)
        if entry is not None and clock - entry[0] < self.seconds:
            found = entry[1]
            _check_expiry(found, moment)
        else:
            generation = self._generation
            found = _token_lookup(self.crm, token_hash, moment)
            with self._lock:
                if generation == self._generation:
                    self._entries[token_hash] = (clock, found)
        _touch_token(self.crm, found, moment)
        return found.actor.with_request(request_id)


__all__ = [
    "FREE_FAILURES",
    "LoginResult",
    "SessionInfo",
    "TokenCache",
    "TokenInfo",
    "WINDOW",
    "create_token",
    "hash_password",
    "list_tokens",
    "login",
    "logout",
    "needs_rehash",
    "retry_after",
    "revoke_token",
    "session_actor",
    "session_csrf",
    "set_password",
    "token_actor",
    "verify_password",
]
