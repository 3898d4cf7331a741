"""The dispatcher: each :class:`~crmkit.server.routing.Route` becomes a Starlette route.

For every request it: checks the path parameters; decodes the query string and the JSON
body into the route's attrs classes (:mod:`crmkit.server.codec`); identifies the caller
(``Authorization: Bearer`` token, else the ``crmkit_session`` cookie with its CSRF token
on writes, else anonymous on public routes, else 401); runs the handler in a worker thread
with the actor bound (``crm.acting_as``), inside one transaction with the stored response
when the POST carries an ``Idempotency-Key``; encodes what the handler returned; and
turns every refusal into a problem document. An unexpected exception is a 500 carrying
only the request id; its traceback goes to the log.

The route table (:func:`route_table`) is the core's routes under ``/api/v1`` and each
plugin's under ``/api/v1/<plugin>``; two routes with the same method and path, or the
same operation id, stop the server at start-up naming the plugins.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio.from_thread
import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from crmkit import plugins as plugin_loader
from crmkit.core import db
from crmkit.core.actors import Actor
from crmkit.errors import PluginError, Unauthenticated
from crmkit.server import codec, problems
from crmkit.server.problems import MEDIA_TYPE, Problem
from crmkit.server.routing import METHODS, ApiRequest, ApiResponse, Page, Route

if TYPE_CHECKING:
    from crmkit.crm import CRM

log = logging.getLogger("crmkit.server")

API_PREFIX = "/api/v1"
SESSION_COOKIE = "crmkit_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: request headers a handler never sees (credentials)
HIDDEN_HEADERS = frozenset({"authorization", "cookie", "x-csrf-token"})
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")
TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,512}")
_CONVERTER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")


@attrs.define
class Mounted:
    """A route as served: its full path, the plugin it came from, its operation id."""

    route: Route
    path: str
    plugin: str | None
    operation_id: str

    @property
    def key(self) -> tuple[str, str]:
        """(method, path with parameter names erased): two routes with one key clash."""
        return self.route.method.upper(), _CONVERTER.sub("{}", self.path)


def route_table(crm: CRM) -> list[Mounted]:
    """The core's routes and every enabled plugin's, as served; refuses clashes."""
    from crmkit.server.api import core_routes

    mounted = [_mount(route, None) for route in core_routes()]
    for plugin, call in plugin_loader.each_implementation(crm.pm, "crmkit_register_routes"):
        core = plugin.startswith("crmkit.")
        try:
            routes = list(call({}) or ())
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin!r} failed in crmkit_register_routes: {type(exc).__name__}: {exc}",
                plugin=plugin,
            ) from exc
        for route in routes:
            if not isinstance(route, Route):
                raise PluginError(
                    f"plugin {plugin!r}: crmkit_register_routes returned {route!r}, "
                    "not a crmkit.plugin.Route",
                    plugin=plugin,
                )
            mounted.append(_mount(route, None if core else plugin))
    _refuse_clashes(mounted)
    return mounted


def _mount(route: Route, plugin: str | None) -> Mounted:
    if route.method.upper() not in METHODS:
        raise PluginError(
            f"{_owner(plugin)}: route {route.path!r} has method {route.method!r}; "
            f"use one of {', '.join(METHODS)}",
            plugin=plugin,
        )
    if not route.path.startswith("/"):
        raise PluginError(
            f"{_owner(plugin)}: route path {route.path!r} must start with '/'", plugin=plugin
        )
    prefix = f"{API_PREFIX}/{plugin}" if plugin else API_PREFIX
    path = prefix + (route.path if route.path != "/" else "")
    name = route.operation_id or getattr(route.handler, "__name__", "operation")
    operation_id = f"{plugin}_{name}" if plugin else name
    return Mounted(route=route, path=path, plugin=plugin, operation_id=operation_id)


def _owner(plugin: str | None) -> str:
    return f"plugin {plugin!r}" if plugin else "the core"


def _refuse_clashes(mounted: list[Mounted]) -> None:
    seen: dict[tuple[str, str], Mounted] = {}
    ids: dict[str, Mounted] = {}
    for item in mounted:
        other = seen.get(item.key)
        if other is not None:
            raise PluginError(
                f"{_owner(item.plugin)} declares {item.route.method.upper()} {item.path}, "
                f"which {_owner(other.plugin)} already declares; give one of them another path",
                plugin=item.plugin or other.plugin,
            )
        seen[item.key] = item
        same = ids.get(item.operation_id)
        if same is not None:
            raise PluginError(
                f"{_owner(item.plugin)}: operation id {item.operation_id!r} of "
                f"{item.route.method.upper()} {item.path} is already used by "
                f"{same.route.method.upper()} {same.path}; set Route(operation_id=...)",
                plugin=item.plugin or same.plugin,
            )
        ids[item.operation_id] = item


def starlette_routes(server: Any, mounted: list[Mounted]) -> list[StarletteRoute]:
    """One Starlette route per path, dispatching on the method (so 405 lists ``Allow``)."""
    by_path: dict[str, dict[str, Mounted]] = {}
    for item in mounted:
        by_path.setdefault(item.path, {})[item.route.method.upper()] = item
    routes = []
    for path, methods in by_path.items():
        routes.append(StarletteRoute(path, _endpoint(server, methods), methods=sorted(methods)))
    return routes


def _endpoint(server: Any, methods: dict[str, Mounted]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        method = request.method.upper()
        item = methods.get("GET" if method == "HEAD" else method)
        assert item is not None  # Starlette answered 405 for the others
        return (await Dispatch(server, item, request).run()).response()

    # the fast path (crmkit.server.front) serves these routes without Starlette's router
    endpoint.crmkit_methods = methods  # type: ignore[attr-defined]
    return endpoint


# -- one request ---------------------------------------------------------------


@attrs.define
class Rendered:
    """A response ready to send (and, for an idempotent POST, to store)."""

    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str = "application/json"
    #: the headers as sent (:meth:`prepared`), once encoded
    raw: list[tuple[bytes, bytes]] | None = None

    def prepared(self) -> Rendered:
        """Encode the headers now, in the handler's thread: a header value that is not
        latin-1 fails where building the Response used to, inside the dispatcher's
        error handling (and an idempotent POST's transaction)."""
        self.raw = self.raw_headers()
        return self

    def response(self) -> Response:
        if self.status in (204, 304):
            return Response(status_code=self.status, headers=self.headers)
        return Response(
            self.body, status_code=self.status, headers=self.headers, media_type=self.media_type
        )

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers :meth:`response` would send, in its order (Starlette's rules:
        the given ones, then Content-Length and Content-Type unless given)."""
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if self.status in (204, 304):
            return raw
        names = {name for name, _ in raw}
        if b"content-length" not in names:
            raw.append((b"content-length", str(len(self.body)).encode("latin-1")))
        if b"content-type" not in names:
            media = self.media_type
            if media.startswith("text/") and "charset=" not in media.lower():
                media += "; charset=utf-8"
            raw.append((b"content-type", media.encode("latin-1")))
        return raw

    async def send(self, send: Any) -> None:
        """Send it as :meth:`response` would, without building a Response."""
        headers = self.raw if self.raw is not None else self.raw_headers()
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def problem_rendered(problem: Problem, request: Request) -> Rendered:
    rid = request_id(request)
    body = problem.body(instance=request.url.path, request_id=rid)
    return Rendered(problem.status, dict(problem.headers or {}), body, MEDIA_TYPE)


def problem_response(problem: Problem, request: Request) -> Response:
    return problem_rendered(problem, request).response()


def _session_id(cookie: str | None) -> str | None:
    """The id the sessions table knows a cookie's token by (its SHA-256), or None."""
    return hashlib.sha256(cookie.encode()).hexdigest() if cookie else None


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


class Dispatch:
    """Serving one request of one route."""

    def __init__(self, server: Any, item: Mounted, request: Request) -> None:
        self.server = server
        self.crm: CRM = server.crm
        self.item = item
        self.route = item.route
        self.request = request
        self.rid = request_id(request)

    async def run(self) -> Rendered:
        try:
            return await self._run()
        except Exception as exc:
            return self.failure(exc)

    def failure(self, exc: BaseException) -> Rendered:
        problem = problems.from_exception(exc) or _database_problem(exc)
        if problem is None:
            log.error(
                "request %s: %s %s failed", self.rid, self.request.method,
                self.request.url.path, exc_info=exc,
            )  # fmt: skip
            problem = problems.internal_error()
        return problem_rendered(problem, self.request)

    async def _run(self) -> Rendered:
        await self.server.require_ready()
        if self.route.body_kind == "stream":
            # the body is the handler's to read: identify the caller before it starts
            identity = await run_in_threadpool(self._identify)
            return await run_in_threadpool(self._serve, identity, b"")
        raw = b""
        if self.request.method.upper() in UNSAFE:
            raw = await self.request.body()
        if self.route.quick:
            # bounded work: on the loop's thread, on its own kept connection, in a copy of
            # the task's context as a handler thread would run it (Route.quick)
            wait = self.server.crm.config.server.quick_lock_wait_ms
            return contextvars.copy_context().run(self._serve, None, raw, True, wait)
        # one trip to a handler thread: identity, decoding, the handler (on the thread's
        # own connection, kept from its last request)
        return await self.server.threads.run(self._serve, None, raw, True)

    def _serve(
        self,
        identity: tuple[Actor, str | None] | None,
        raw: bytes,
        keep: bool = False,
        lock_wait_ms: int | None = None,
    ) -> Rendered:
        """On one database connection for the whole request (the identity lookup, the
        handler's reads and its write): see :meth:`_answer`. With ``keep`` (the handler
        threads, the loop's thread), the thread keeps that connection for its next request;
        ``lock_wait_ms`` bounds its waits for locks (:meth:`CRM.connection_scope`)."""
        with self.crm.connection_scope(keep=keep, lock_wait_ms=lock_wait_ms):
            return self._answer(identity, raw)

    def _answer(self, identity: tuple[Actor, str | None] | None, raw: bytes) -> Rendered:
        """Identify the caller (unless done), decode, run the handler.

        Who asks comes first: without credentials every route but a public one is a 401,
        whatever else is wrong with the request.
        """
        actor, csrf = identity or self._identify()
        if self.request.method.upper() == "PATCH" and not self.request.headers.get("if-match"):
            # every edit names the version it was made against (core and plugins alike)
            raise Problem(
                "precondition-required",
                "this change needs an If-Match header with the record's ETag (from a GET of it)",
            )
        path = self._path_params()
        # no query string (most requests): no QueryParams to build
        query_string = self.request.scope.get("query_string")
        pairs = self.request.query_params.multi_items() if query_string else ()
        query = codec.decode_query(self.route.query, pairs)
        if csrf is not None and self.request.method.upper() in UNSAFE:
            self._check_csrf(csrf, raw)
        body = self._decode_body(raw)
        stream = _BodyStream(self.request) if self.route.body_kind == "stream" else None
        api_request = ApiRequest(
            crm=self.crm,
            actor=actor,
            path=path,
            query=query,
            body=body,
            headers={k: v for k, v in self.request.headers.items() if k not in HIDDEN_HEADERS},
            request_id=self.rid,
            if_match=if_match(self.request.headers.get("if-match")),
            stream=stream,
            language=self._language(),
            client=self.request.client.host if self.request.client else None,
            session_id=_session_id(self.request.cookies.get(SESSION_COOKIE)),
        )
        # public routes (sign-in) store no response: it would hold a session cookie, be
        # shared by every anonymous caller, and run the sign-in inside another transaction
        key = None if self.route.public else self._idempotency_key()
        if key is None:
            return self._call(api_request).prepared()
        digest = request_hash(self.request, raw)
        return self._idempotent(api_request, key, digest, stream)

    def _identify(self) -> tuple[Actor, str | None]:
        """The caller (noted for the access log) and the session's CSRF token, if any."""
        actor, csrf = self._authenticate()
        state = self.request.scope.setdefault("state", {})
        state["actor_name"] = actor.name
        state["staff_id"] = actor.staff_id
        return actor, csrf

    # -- inputs ----------------------------------------------------------------

    def _path_params(self) -> dict[str, Any]:
        params = dict(self.request.path_params)
        for name, value in params.items():
            bad_int = isinstance(value, int) and not codec.INT_MIN <= value <= codec.INT_MAX
            bad_text = isinstance(value, str) and ("\x00" in value or not _encodable(value))
            if bad_int or bad_text:
                raise Problem("not-found", f"no resource at {self.request.url.path!r} ({name})")
        return params

    def _authenticate(self) -> tuple[Actor, str | None]:
        """The actor, and the session's CSRF token when a cookie identified them."""
        header = self.request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not TOKEN_TEXT.fullmatch(token):
                raise problems.unauthenticated(
                    "the Authorization header must be 'Bearer <token>' with an API token"
                )
            return self._token_actor(token), None
        cookie = self.request.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                session = self._session(cookie)
            except Unauthenticated:
                if self.route.public:  # an expired cookie does not hide public pages
                    return Actor.anonymous(self.rid), None
                raise
            return session.actor.with_request(self.rid), session.csrf_token
        if self.route.public:
            return Actor.anonymous(self.rid), None
        raise problems.unauthenticated(
            "sign in first: send 'Authorization: Bearer <token>' or the crmkit_session cookie "
            "from POST /api/v1/auth/login"
        )

    def _token_actor(self, token: str) -> Actor:
        # the worker's cache (crmkit.core.identity.TokenCache): no lookup for a token seen
        # in the last seconds; revocations through this worker apply at once. The actor
        # it gives carries this request's id already.
        actor = self.server.tokens.actor(token, request_id=self.rid)
        return actor if actor.request_id == self.rid else actor.with_request(self.rid)

    def _session(self, cookie: str) -> Any:
        from crmkit.core import identity

        if not TOKEN_TEXT.fullmatch(cookie):
            raise Unauthenticated("the session cookie is not valid; sign in again")
        client = self.request.client
        address = client.host if client else None
        return identity.session_actor(self.crm, cookie, address=address, request_id=self.rid)

    def _check_csrf(self, expected: str, raw: bytes) -> None:
        given = self.request.headers.get("x-csrf-token")
        ctype = self.request.headers.get("content-type", "")
        if given is None and ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=1000)
            given = (form.get("csrf_token") or [None])[0]
        if not given or not hmac.compare_digest(given.encode(), str(expected).encode()):
            raise Problem(
                "forbidden",
                "missing or wrong CSRF token: send the X-CSRF-Token header with the "
                "csrf_token your sign-in returned",
            )

    def _decode_body(self, raw: bytes) -> Any:
        cls = self.route.body
        if cls is None or self.route.body_kind == "stream":
            return None
        if not raw.strip():
            raise Problem("malformed-body", "this operation needs a JSON object as its body")
        ctype = self.request.headers.get("content-type", "")
        media = ctype.split(";", 1)[0].strip().lower()
        if media != "application/json" and not (
            media.startswith("application/") and media.endswith("+json")
        ):
            raise Problem(
                "unsupported-media-type",
                f"the body must be application/json, not {media or 'without a Content-Type'}",
            )
        return codec.decode_json(cls, raw)

    def _language(self) -> str:
        header = self.request.headers.get("accept-language", "")
        for part in header.split(","):
            tag = part.split(";", 1)[0].strip().lower()
            if tag.startswith("zh"):
                return "zh"
            if tag.startswith("en"):
                return "en"
        return self.crm.config.server.language

    def _idempotency_key(self) -> str | None:
        if self.request.method.upper() != "POST":
            return None
        key = self.request.headers.get("idempotency-key")
        if key is None:
            return None
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise Problem(
                "validation-error",
                "Idempotency-Key must be 1 to 200 printable ASCII characters",
                field="Idempotency-Key",
            )
        return key

    # -- running the handler (worker thread) -----------------------------------

    def _call(self, api_request: ApiRequest) -> Rendered:
        with self.crm.acting_as(api_request.actor):
            result = self.route.handler(api_request)
            return self._render(result)

    def _render(self, result: Any) -> Rendered:
        status = self.route.status
        headers: dict[str, str] = {}
        if isinstance(result, ApiResponse):
            status = result.status
            headers.update({str(k): str(v) for k, v in result.headers.items()})
            if result.etag is not None:
                headers["ETag"] = quote_etag(result.etag)
            result = result.body
        if isinstance(result, Page):
            if result.next_cursor:
                url = self.request.url.include_query_params(cursor=result.next_cursor)
                headers["Link"] = f'<{url}>; rel="next"'
            result = list(result.items)
        if status in (204, 304):
            return Rendered(status, headers, b"")
        return Rendered(status, headers, codec.encode(result))

    def _idempotent(
        self, api_request: ApiRequest, key: str, digest: str, stream: _BodyStream | None
    ) -> Rendered:
        """Run the POST once per (actor, key): the stored response is written by the same
        transaction as the handler's writes, so a retry finds both or neither."""
        from crmkit.core.tables import idempotency_keys as keys

        actor = api_request.actor
        with self.crm.acting_as(actor):
            try:
                with self.crm.transaction() as ctx:
                    stored = _stored(ctx.connection, actor.name, key)
                    if stored is None:
                        result = self.route.handler(api_request)
                        rendered = self._render(result)
                        if stream is not None:
                            digest = stream.finish(digest)
                        self._store(ctx, keys, actor.name, key, digest, rendered)
                        return rendered.prepared()
            except _KeyTaken:
                stored = self._stored_after_race(actor.name, key)
            if stream is not None:
                digest = stream.finish(digest)
            return self._replay(stored, digest)

    def _store(
        self, ctx: Any, keys: sa.Table, actor: str, key: str, digest: str, rendered: Rendered
    ) -> None:
        row = {
            "actor": actor,
            "key": key,
            "request_hash": digest,
            "status": rendered.status,
            "headers": rendered.headers,
            "body": rendered.body.decode("utf-8"),
            "created_at": ctx.now,
        }
        try:
            with ctx.connection.begin_nested():
                ctx.connection.execute(keys.insert().values(**row))
        except sa_exc.IntegrityError:
            raise _KeyTaken() from None

    def _stored_after_race(self, actor: str, key: str) -> Any:
        """After losing the race for a key, the winner's stored response, waiting a little
        for it to commit; a 409 when it is still running."""
        deadline = time.monotonic() + 5
        while True:
            with self.crm.reading() as connection:
                stored = _stored(connection, actor, key)
            if stored is not None:
                return stored
            if time.monotonic() > deadline:
                raise Problem("conflict", "a request with this Idempotency-Key is in progress")
            time.sleep(0.05)

    def _replay(self, stored: Any, digest: str) -> Rendered:
        if stored.request_hash != digest:
            raise Problem(
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different request (method, path, query "
                "or body); use a new key for a new request",
            )
        headers = {**(stored.headers or {}), "Idempotent-Replayed": "true"}
        return Rendered(stored.status, headers, stored.body.encode("utf-8")).prepared()


class _KeyTaken(Exception):
    """Another request stored a response under this idempotency key first."""


def _stored(connection: sa.Connection, actor: str, key: str) -> Any:
    from crmkit.core.tables import idempotency_keys as keys

    query = sa.select(keys).where(keys.c.actor == actor, keys.c.key == key)
    return connection.execute(query).first()


def request_hash(request: Request, raw: bytes) -> str:
    """sha256 of the method, path, query string and body: what makes two requests 'the same'."""
    digest = hashlib.sha256()
    for part in (request.method.upper(), request.url.path, request.url.query):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\x00")
    digest.update(raw)
    return digest.hexdigest()


class _BodyStream:
    """The request body as a blocking iterator of chunks, for a handler in a worker thread.

    Reads through the event loop (``anyio.from_thread``), so a large import streams without
    being held in memory; the middleware's byte count still applies.
    """

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream().__aiter__()
        self._done = False
        self._hash = hashlib.sha256()

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def __iter__(self) -> Iterator[bytes]:
        while not self._done:
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
                return
            if chunk:
                self._hash.update(chunk)
                yield chunk

    def finish(self, head: str) -> str:
        """Read what the handler left, then the hash of ``head`` (method, path, query) and
        the whole body."""
        for _ in self:
            pass
        return hashlib.sha256(head.encode() + self._hash.digest()).hexdigest()


def if_match(value: str | None) -> str | None:
    """The If-Match version: ``W/"v3"`` and ``"v3"`` give ``v3``; None when absent."""
    if value is None:
        return None
    text = value.strip()
    text = text.removeprefix("W/").strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    return text


def quote_etag(etag: str) -> str:
    text = str(etag)
    if text.startswith(('"', 'W/"')):
        return text
    return f'"{text}"'


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _database_problem(exc: BaseException) -> Problem | None:
    """A database refusal the codec did not foresee: never a 500 for the client's input."""
    if db.lock_wait_expired(exc):
        log.warning("a lock wait ran out; answered 503 busy: %s", getattr(exc, "orig", exc))
        return Problem(
            "busy",
            "another change holds this record (or the database) and this request stopped "
            "waiting for it; nothing was written: try again shortly",
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, sa_exc.IntegrityError):
        log.warning("integrity error answered as 409: %s", exc.orig)
        return Problem("conflict", "the write conflicts with stored data; nothing was written")
    if isinstance(exc, sa_exc.DataError):
        log.warning("data error answered as 422: %s", exc.orig)
        return Problem("validation-error", "a value does not fit the database; nothing was written")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        log.error("database error: %s", exc.orig)
        return Problem("not-ready", "the database is unreachable; try again shortly")
    return None


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False).encode(), status_code=status,
        media_type="application/json",
    )  # fmt: skip
