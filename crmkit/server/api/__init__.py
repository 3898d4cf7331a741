"""The core's HTTP API routes (``/api/v1``): one module per resource."""

from __future__ import annotations

import importlib

from crmkit.server.routing import Route

#: the modules whose ``routes()`` make up the core's API, in the order of the docs
MODULES = (
    "auth",
    "customers",
    "contacts",
    "consent",
    "interactions",
    "orders",
    "staff",
    "workflows",
    "audit",
    "imports",
)


def core_routes() -> list[Route]:
    """Every core route, relative to ``/api/v1`` (auth, customers, ... audit, import)."""
    found: list[Route] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue  # a module not written yet (the identity routes come separately)
        found.extend(module.routes())
    return found
