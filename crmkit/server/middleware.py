"""ASGI middleware of ``crmkit serve``: request id, body limit, security headers, access log.

One pure-ASGI layer (no buffering of responses, so streamed bodies stay streamed):

* **Request id**: an incoming ``X-Request-ID`` of 1-64 characters ``[A-Za-z0-9._-]`` is
  kept, anything else is replaced by a fresh uuid4 hex; it is echoed in the response and
  put in ``scope["state"]["request_id"]`` (the dispatcher puts it into the actor, so the
  audit log records it).
* **Body limit**: a ``Content-Length`` over ``max_body_bytes`` is answered 413 at once;
  a body without one (chunked) is counted as it streams and reading past the limit
  raises :class:`~crmkit.server.problems.Problem` ``payload-too-large``.
* **Security headers**: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``,
  ``X-Frame-Options: DENY`` on every response, ``Cache-Control: no-store`` on the API's.
* **Connections recycled**: after ``keepalive_requests`` responses on one connection the
  next says ``Connection: close``, so the client reconnects. The workers share one
  listening socket and a worker serves only the connections it accepted; a worker that
  took most of the clients (all 32 of the bench's, now and then) hands them back this
  way, and the reconnections go to a worker free to accept (what nginx's
  ``keepalive_requests`` does). About one connect in that many requests.
* **Access log**: one JSON line per request on the logger ``crmkit.access``: request id,
  actor, method, path (no query string), status, milliseconds. Never headers, cookies,
  passwords or bodies.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from typing import Any

from crmkit.server.problems import MEDIA_TYPE, Problem, internal_error

access_log = logging.getLogger("crmkit.access")
log = logging.getLogger("crmkit.server")

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: connections whose responses are counted at most (a client's port, once its connection
#: closed, may come back on a new one: the count then ends that one sooner, harmless)
_MAX_TRACKED = 10_000

Scope = dict[str, Any]
Message = dict[str, Any]


def request_id_of(scope: Scope) -> str:
    """The request's id: the client's ``X-Request-ID`` when sane, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if REQUEST_ID.fullmatch(text):
                return text
            break
    return new_request_id()


def new_request_id() -> str:
    """A random uuid4 in hex, as ``uuid.uuid4().hex`` gives it, at a third of its cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class KeepAlive:
    """Counts the responses on each open connection (by the client's address and port)
    and says which one ends it: the ``limit``-th."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self._served: dict[Any, int] = {}

    def ends(self, scope: Scope) -> bool:
        """Whether this response ends its connection (``Connection: close``)."""
        client = scope.get("client")
        if client is None:
            return False
        served = self._served
        count = served.get(client, 0) + 1
        if count >= self.limit:
            served.pop(client, None)
            return True
        if len(served) >= _MAX_TRACKED and client not in served:
            served.clear()  # connections that closed before their count
        served[client] = count
        return False


class ServerMiddleware:
    """The layer described in the module's docstring, around the Starlette app."""

    def __init__(
        self, app: Any, *, max_body_bytes: int, keepalive: KeepAlive | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.keepalive = keepalive or KeepAlive()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send, self.app)

    async def serve(self, scope: Scope, receive: Any, send: Any, app: Any) -> None:
        """Serve an HTTP request with ``app`` inside this layer."""
        started = time.perf_counter()
        rid = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        path = scope.get("path", "")
        api = path.startswith("/api/")
        status = {"code": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = 1
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                names = {k.lower() for k, _ in headers}
                headers.append((b"x-request-id", rid.encode("ascii")))
                for name, value in _SECURITY_HEADERS:
                    if name not in names:
                        headers.append((name, value))
                if api and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                if self.keepalive.ends(scope) and b"connection" not in names:
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            length = content_length(scope)
            if length is not None and length > self.max_body_bytes:
                await self._too_large(scope, send_with_headers, rid)
                return
            await app(scope, self._counting(receive), send_with_headers)
        except Exception:
            # the application's own handlers answer errors; this is the last line
            log.exception("request %s failed outside the dispatcher", rid)
            if "started" in status:
                raise
            problem = internal_error()
            await self._send_problem(scope, send_with_headers, rid, problem)
        finally:
            self._log(scope, state, rid, status["code"], started)

    def _counting(self, receive: Any) -> Any:
        limit = self.max_body_bytes
        seen = {"bytes": 0}

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    raise too_large(limit)
            return message

        return counted

    async def _too_large(self, scope: Scope, send: Any, rid: str) -> None:
        await self._send_problem(scope, send, rid, too_large(self.max_body_bytes))

    @staticmethod
    async def _send_problem(scope: Scope, send: Any, rid: str, problem: Problem) -> None:
        body = problem.body(instance=scope.get("path", ""), request_id=rid)
        await send(
            {
                "type": "http.response.start",
                "status": problem.status,
                "headers": [
                    (b"content-type", MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log(scope: Scope, state: dict[str, Any], rid: str, status: int, started: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        raw_path = scope.get("path", "")
        path = raw_path.encode("utf-8", "backslashreplace").decode("utf-8")[:500]
        ms = round((time.perf_counter() - started) * 1000, 1)
        line = (
            f'{{"request_id": {_json(rid)}, "actor": {_json(state.get("actor_name"))}, '
            f'"staff_id": {_json(state.get("staff_id"))}, "method": {_json(scope.get("method"))}, '
            f'"path": {_json(path)}, "status": {_json(status)}, "ms": {_json(ms)}}}'
        )
        # a record without the caller's file and line (logging finds them by walking the
        # stack: a fifth of the line's cost; the access log's format never shows them)
        record = access_log.makeRecord(access_log.name, logging.INFO, "", 0, line, (), None, "_log")
        access_log.handle(record)


_encode = json.JSONEncoder(ensure_ascii=False).encode
_string = json.encoder.encode_basestring  # what that encoder writes for a str (C)


def _json(value: Any) -> str:
    """``value`` as the access log's JSON encoder writes it inside the line (strings,
    numbers and None here; anything else through the encoder itself): the line by
    hand costs a third of encoding a dict, which builds an encoder on every call."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _encode(value)


_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


def too_large(limit: int) -> Problem:
    return Problem(
        "payload-too-large",
        f"the request body is larger than {limit} bytes ([server] max_body_bytes)",
        limit=limit,
    )
