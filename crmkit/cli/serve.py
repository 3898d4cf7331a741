"""``crmkit serve``: run the HTTP API under uvicorn.

The workers are separate processes: each builds its application with
``crmkit.server.app:create_app`` from the configuration this command passes through the
environment (``CRMKIT_CONFIG``, ``CRMKIT_DATABASE_URL``, ``CRMKIT_PLUGINS``). On SIGTERM
or Ctrl-C uvicorn stops accepting connections and lets requests in flight finish (up to
``--graceful-timeout`` seconds); every write is one database transaction, so a worker
killed outright leaves nothing half-written.
"""

from __future__ import annotations

import os
from typing import Any

import click

from crmkit.cli import CliState, UserError, cli, common_options
from crmkit.errors import SchemaOutOfDate

#: one JSON line per request on stderr (logger crmkit.access), uvicorn's own messages beside
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(message)s"},
        "default": {"format": "%(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
        "default": {
            "class": "logging.StreamHandler",
            "formatter": "default",
            "stream": "ext://sys.stderr",
        },
    },  # fmt: skip
    "loggers": {
        "crmkit.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "crmkit": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
    },
}


@cli.command("serve")
@click.option(
    "--host", default=None, help="Address to listen on (default [server] host, 127.0.0.1)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default [server] port, 8000).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Worker processes (default [server] workers, 1).")  # fmt: skip
@click.option("--graceful-timeout", type=click.IntRange(0, 3600), default=30, show_default=True,
              help="Seconds requests in flight get to finish on SIGTERM.")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No access log.")
@common_options
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    graceful_timeout: int,
    quiet: bool,
) -> None:
    """Serve the HTTP API (/api/v1, /healthz, /readyz) with uvicorn.

    Reads crmkit.toml ([server] host, port, workers, max_body_bytes, ...); the options
    override it. On PostgreSQL several workers serve one database; SQLite is for one
    machine.
    """
    import uvicorn

    state = ctx.ensure_object(CliState)
    config = state.load_config()
    settings = config.server
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if config.database.startswith("sqlite") and workers > 1:
        click.echo(
            f"warning: {workers} workers on SQLite: writes queue on one file lock; SQLite is "
            "for one machine, use PostgreSQL for a shared server",
            err=True,
        )
    _pass_configuration(state, config)
    _check_application()
    log_config = {**LOG_CONFIG, "loggers": dict(LOG_CONFIG["loggers"])}
    if quiet:
        log_config["loggers"]["crmkit.access"] = {"level": "WARNING", "propagate": False}
    click.echo(f"crmkit serve: http://{host}:{port}/api/v1/docs ({workers} worker(s))", err=True)
    if workers > 1:
        # the workers share one listening socket and a worker that wakes first took every
        # waiting connection; one accept at a time (libuv's switch, read by uvloop in each
        # worker) spreads keep-alive clients over the workers, which matters because a
        # worker serves its quick routes one at a time (docs/architecture.md)
        os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    try:
        uvicorn.run(
            "crmkit.server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_graceful_shutdown=graceful_timeout,
            access_log=False,
            log_config=log_config,
            server_header=False,
            proxy_headers=False,
        )
    except SystemExit as exc:  # uvicorn exits on a start-up failure (port in use, app error)
        if exc.code not in (0, None):
            raise UserError(f"the server stopped at start-up (exit status {exc.code})") from None


def _check_application() -> None:
    """Build what every worker builds once here, so a mistake (two routes with one path, a
    plugin failing to load) is one clear error instead of workers failing in a loop; warn
    when the schema is not at head (the server starts; /readyz answers 503 until upgraded)."""
    from crmkit.server import app, dispatch

    crm = app.open_crm()
    try:
        for status in crm.plugin_statuses:
            if status.enabled and not status.ok:
                click.echo(
                    f"warning: plugin {status.name!r} is not loaded: {status.reason}", err=True
                )
        dispatch.route_table(crm)
        try:
            crm.check_schema()
        except SchemaOutOfDate:
            click.echo(
                "warning: schema not at head: run crmkit db upgrade (until then /readyz and "
                "the API answer 503)",
                err=True,
            )
        except Exception as exc:  # the database does not answer: /readyz will say so
            click.echo(f"warning: database unreachable: {type(exc).__name__}: {exc}", err=True)
    finally:
        crm.close()


def _pass_configuration(state: CliState, config: Any) -> None:
    """Put this run's configuration where each worker's create_app reads it."""
    if config.path is not None:
        os.environ["CRMKIT_CONFIG"] = str(config.path.resolve())
    os.environ["CRMKIT_DATABASE_URL"] = config.database
    if state.plugins is not None:
        names = [p for p in state.plugins if isinstance(p, str)]
        if len(names) != len(state.plugins):
            raise UserError("crmkit serve takes plugins by name (plugin objects cannot be passed)")
        os.environ["CRMKIT_PLUGINS"] = ",".join(names)
