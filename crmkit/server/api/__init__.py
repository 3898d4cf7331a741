"""The core's HTTP API routes (``/api/v1``): one module per resource."""

from __future__ import annotations

from crmkit.server.routing import Route


def core_routes() -> list[Route]:
    """Every core route, relative to ``/api/v1`` (auth, customers, ... audit, import)."""
    return []
