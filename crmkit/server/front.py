"""The server's outermost ASGI layer: API routes served without Starlette's router.

A request whose path and method one of the dispatcher's routes takes goes straight to
:class:`~crmkit.server.dispatch.Dispatch` inside the same
:class:`~crmkit.server.middleware.ServerMiddleware` (request id, body limit, security
headers, access log), and its answer is sent as raw ASGI messages. Everything else (the
lifespan, /healthz, /readyz, the OpenAPI document and docs, 404, 405 with ``Allow``, HEAD,
a trailing-slash redirect) goes to the Starlette application unchanged.

Measured (py-spy on a worker under bench/api_load.py's mix): Starlette's middleware
stack, router, exception wrappers and Response objects were about 8% of the CPU of an
API request; with this layer and the handler threads (crmkit/server/threads.py) a request
that runs no SQL costs crmkit about as much CPU as the bare ASGI app's /healthz.

The choice is Starlette's own: routes are tried in the application's order, and a
request goes the fast way only when the first route whose path matches is a dispatcher
route taking its method, which is the route Starlette would run.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route as StarletteRoute

from crmkit.server.dispatch import Dispatch, Mounted
from crmkit.server.middleware import KeepAlive, Scope, ServerMiddleware


class RouteTable:
    """The application's routes in order, each with the static start of its path."""

    def __init__(self, routes: list[Any]) -> None:
        self.entries: list[tuple[str, Any, dict[str, Mounted] | None]] = []
        for route in routes:
            methods = None
            if isinstance(route, StarletteRoute):
                methods = getattr(route.endpoint, "crmkit_methods", None)
                prefix = route.path.split("{", 1)[0]
            else:  # a mount or anything else: may match any path, Starlette decides
                prefix = ""
            self.entries.append((prefix, route, methods))

    def match(self, path: str, method: str) -> tuple[Mounted, dict[str, Any]] | None:
        """The dispatcher route and path parameters Starlette would serve ``method
        path`` with, or None when Starlette should answer (another route, 404, 405)."""
        for prefix, route, methods in self.entries:
            if not path.startswith(prefix):
                continue
            regex = getattr(route, "path_regex", None)
            if regex is None or methods is None:
                return None
            found = regex.match(path)
            if found is None:
                continue
            item = methods.get(method)
            if item is None:
                return None
            convertors = route.param_convertors
            params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            return item, params
        return None


class Front:
    """The ASGI application ``crmkit serve`` runs (see the module's docstring)."""

    def __init__(
        self, server: Any, app: Starlette, *, max_body_bytes: int, keepalive: KeepAlive
    ) -> None:
        self.server = server
        self.app = app
        self.table = RouteTable(list(app.router.routes))
        self.middleware = ServerMiddleware(app, max_body_bytes=max_body_bytes, keepalive=keepalive)

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        # uvicorn gives no root_path unless configured; with one, Starlette routes
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self.table.match(scope["path"], scope["method"])
            if found is not None:
                item, params = found
                scope["app"] = self.app
                scope["path_params"] = params
                await self.middleware.serve(scope, receive, send, _Serve(self.server, item))
                return
        await self.app(scope, receive, send)


class _Serve:
    """One API request as an ASGI app (inside the middleware)."""

    __slots__ = ("item", "server")

    def __init__(self, server: Any, item: Mounted) -> None:
        self.server = server
        self.item = item

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        rendered = await Dispatch(self.server, self.item, request).run()
        await rendered.send(send)
