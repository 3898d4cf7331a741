"""The ASGI application of ``crmkit serve`` (Starlette), one per worker process.

``uvicorn.run("crmkit.server.app:create_app", factory=True)`` calls :func:`create_app` in
every worker: each opens its own CRM from the configuration the environment names
(``CRMKIT_CONFIG``, ``CRMKIT_DATABASE_URL``, ``CRMKIT_PLUGINS``: ``crmkit serve`` sets
them from its options), so several workers serve one PostgreSQL database.

Routes: ``GET /healthz`` (the process is up; touches no database), ``GET /readyz`` (the
database answers and its schema is at head, else 503 naming what is missing), the API
under ``/api/v1`` (:mod:`crmkit.server.dispatch`), its OpenAPI document, docs page and
problem types (:mod:`crmkit.server.openapi`). Until the schema is at head every API
request is answered 503 ``not-ready``.

``CRMKIT_EXTRA_PLUGINS`` (comma-separated module paths, or ``.py`` files) registers plugin
objects that are not installed distributions, beside the configured plugins: how the test
suite serves its test routes from a real server process.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from crmkit import config as config_module
from crmkit import plugins as plugin_loader
from crmkit.core import identity
from crmkit.crm import CRM
from crmkit.errors import ConfigError, SchemaOutOfDate
from crmkit.server import dispatch, openapi, problems
from crmkit.server.front import Front
from crmkit.server.middleware import KeepAlive, ServerMiddleware
from crmkit.server.problems import Problem
from crmkit.server.threads import HandlerThreads

log = logging.getLogger("crmkit.server")

EXTRA_PLUGINS_VARIABLE = "CRMKIT_EXTRA_PLUGINS"
#: how often a server whose schema was behind looks again (seconds)
READY_RECHECK = 2.0


class Server:
    """What the application's routes share: the CRM and whether its schema is ready."""

    def __init__(self, crm: CRM, *, owns_crm: bool) -> None:
        self.crm = crm
        self.owns_crm = owns_crm
        self.ready = False
        self.not_ready_reason = "not checked yet"
        self._checked_at = 0.0
        self.mounted = dispatch.route_table(crm)
        self.tokens = identity.TokenCache(crm)
        self.threads = HandlerThreads(crm.config.server.threads)
        self._document: dict[str, Any] | None = None

    def check(self) -> str | None:
        """Why the server is not ready (database unreachable, schema behind), or None."""
        try:
            self.crm.check_schema()
        except SchemaOutOfDate:
            reason = "schema not at head: run crmkit db upgrade"
        except Exception as exc:  # the database does not answer
            log.warning("readiness check failed: %s: %s", type(exc).__name__, exc)
            reason = f"database unreachable ({type(exc).__name__})"
        else:
            reason = None
        self.ready = reason is None
        self.not_ready_reason = reason or ""
        self._checked_at = time.monotonic()
        return reason

    async def require_ready(self) -> None:
        if self.ready:
            return
        if time.monotonic() - self._checked_at > READY_RECHECK:
            await run_in_threadpool(self.check)
        if not self.ready:
            raise Problem("not-ready", f"the server is not ready: {self.not_ready_reason}")

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = openapi.document(self.mounted, version=_version())
        return self._document

    def close(self) -> None:
        self.threads.close()
        self.tokens.close()
        # the handler threads' connections (graceful shutdown: no request runs any more)
        self.crm.release_kept_connections()
        if self.owns_crm:
            self.crm.close()


def _version() -> str:
    import crmkit

    return crmkit.__version__


def open_crm() -> CRM:
    """The worker's CRM from the configuration (no schema check: /readyz reports it)."""
    config = config_module.load()
    extra = extra_plugins()
    if extra:
        names = list(plugin_loader.installed()) if config.plugins is None else config.plugins
        config.plugins = [*names, *extra]
    return CRM(config)


def extra_plugins() -> list[Any]:
    """Plugin objects named by ``CRMKIT_EXTRA_PLUGINS`` (module paths or .py files)."""
    found = []
    for item in os.environ.get(EXTRA_PLUGINS_VARIABLE, "").split(","):
        item = item.strip()
        if not item:
            continue
        if item.endswith(".py"):
            path = Path(item)
            name = f"crmkit_extra_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"{EXTRA_PLUGINS_VARIABLE}: cannot load {item}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(item)
        found.append(module)
    return found


def create_app(crm: CRM | None = None) -> Front:
    """The application: over ``crm`` (kept open), or over a CRM opened from the
    configuration in the environment (closed at shutdown)."""
    server = Server(crm if crm is not None else open_crm(), owns_crm=crm is None)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # handlers run in server.threads ([server] threads of them), streaming imports and
        # readiness checks in anyio's: a few threads keep the GIL's hand-offs short
        # (measured in bench/api_load.py: 40 threads, anyio's default, 169 req/s; 8: 190)
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = server.crm.config.server.threads
        for status in server.crm.plugin_statuses:
            if status.enabled and not status.ok:
                log.warning("plugin %r is not loaded: %s", status.name, status.reason)
        await run_in_threadpool(server.check)
        if not server.ready:
            log.warning("crmkit serve: not ready: %s", server.not_ready_reason)
        try:
            yield
        finally:
            server.close()

    routes = [
        StarletteRoute("/healthz", healthz, methods=["GET"]),
        StarletteRoute("/readyz", _readyz(server), methods=["GET"]),
        *openapi.routes(server),
        *dispatch.starlette_routes(server, server.mounted),
    ]
    settings = server.crm.config.server
    # the front's layer and Starlette's count one connection's responses together
    layer = {
        "max_body_bytes": settings.max_body_bytes,
        "keepalive": KeepAlive(settings.keepalive_requests),
    }
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ServerMiddleware, **layer)],
        exception_handlers={HTTPException: http_problem, Exception: internal_problem},
        lifespan=lifespan,
    )
    app.state.server = server
    return Front(server, app, **layer)


async def healthz(_request: Request) -> Response:
    return dispatch.json_response({"status": "ok"})


def _readyz(server: Server) -> Any:
    async def readyz(request: Request) -> Response:
        reason = await run_in_threadpool(server.check)
        if reason is None:
            return dispatch.json_response({"status": "ready"})
        return dispatch.problem_response(Problem("not-ready", reason), request)

    return readyz


async def http_problem(request: Request, exc: Exception) -> Response:
    """The router's own answers (404 no route, 405 method) as problem documents."""
    assert isinstance(exc, HTTPException)
    slug = problems.SLUG_BY_STATUS.get(exc.status_code, "internal-error")
    if exc.status_code == 404:
        detail = f"no API resource at {request.url.path!r}; see /api/v1/openapi.json"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{request.method} is not allowed here; allowed: {allowed}"
    else:
        detail = str(exc.detail)
    problem = Problem(slug, detail, status=exc.status_code, headers=exc.headers)
    return dispatch.problem_response(problem, request)


async def internal_problem(request: Request, exc: Exception) -> Response:
    log.error("request %s failed", dispatch.request_id(request), exc_info=exc)
    return dispatch.problem_response(problems.internal_error(), request)
