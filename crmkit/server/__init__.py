"""``crmkit serve``: the HTTP API (``/api/v1``) over the same services as the CLI.

:mod:`crmkit.server.routing` declares routes (importable without the web stack, so a
plugin's ``crmkit_register_routes`` costs nothing at CLI start-up); the application,
its middleware and the OpenAPI document are built in :mod:`crmkit.server.app`.
"""
