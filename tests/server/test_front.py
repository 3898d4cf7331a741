"""The server's route table (crmkit.server.front) picks the route Starlette's router would.

The fast path serves a request only when the first route whose path matches is a
dispatcher route taking its method; anything else (another route, 404, 405, HEAD, a
trailing-slash redirect) must go to Starlette. Checked for every route of the core, the
test plugin and the docs, with good and bad path parameters and every method.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from starlette.routing import Match

import crmkit
from crmkit.server.app import create_app
from crmkit.server.front import Front

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAMPLES = ("1", "42", "abc", "a b", "x/y", "", "99999999999999999999999")


def _serverplugin() -> Any:
    name = "crmkit_test_serverplugin"
    if name not in sys.modules:
        path = Path(__file__).with_name("serverplugin.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def starlette_choice(routes: list[Any], path: str, method: str) -> Any:
    """What Starlette's router does with ``method path``, as the table should say it:
    (the dispatcher's route, path parameters) or None when Starlette answers itself."""
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            methods = getattr(route.endpoint, "crmkit_methods", None) or {}
            item = methods.get(method)
            return (item, child["path_params"]) if item is not None else None
    return None


def test_the_table_picks_starlettes_route(tmp_path: Path) -> None:
    crm = crmkit.open(f"sqlite:///{tmp_path / 'crm.db'}", plugins=[_serverplugin()], upgrade=True)
    try:
        front = create_app(crm)
        assert isinstance(front, Front)
        routes = list(front.app.router.routes)
        paths = {"/", "/api", "/api/v1", "/api/v1/", "/api/v1/nope", "/healthz/"}
        for route in routes:
            for sample in SAMPLES:
                path = re.sub(r"\{[^}]*\}", sample, route.path)
                paths |= {path, path + "/", path.rstrip("/") + "x"}
        served = 0
        for path in sorted(paths):
            for method in METHODS:
                expected = starlette_choice(routes, path, method)
                assert front.table.match(path, method) == expected, (method, path)
                served += expected is not None
        # the comparison covers the routes the fast path serves, not only refusals
        assert served > 50
        item, params = front.table.match("/api/v1/customers/42/360", "GET")
        assert (item.operation_id, params) == ("customer_360", {"customer_id": 42})
        assert front.table.match("/api/v1/openapi.json", "GET") is None
        assert front.table.match("/api/v1/customers/42/360", "HEAD") is None
    finally:
        crm.close()
