"""pytest fixtures for crmkit and for plugin authors (registered through ``pytest11``).

Every test that uses :func:`database_url` (directly or through :func:`crm`
or :func:`make_crm`) runs twice: on a fresh SQLite file and on a fresh
PostgreSQL database. The PostgreSQL run needs ``CRMKIT_TEST_DATABASE_URL``
naming a server where the user may create databases, for example
``postgresql://postgres@127.0.0.1:54329/postgres``; without it that run is
skipped, unless ``CRMKIT_REQUIRE_POSTGRES=1`` (set by CI) turns the skip into
a failure.

Use in a plugin's tests::

    def test_points_are_earned(make_crm):
        crm = make_crm(plugins=["loyalty"])
        ...

Migrations are checked against the table definitions with
:func:`assert_migrations_match_tables`.

HTML pages are checked in a real browser with :func:`chromium` (headless
Debian Chromium): the test is skipped when it is missing, unless
``CRMKIT_REQUIRE_BROWSER=1`` (set by CI). Screenshots go to
:func:`artifacts_dir`.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import crmkit
from crmkit.core.db import normalise_url

BACKENDS = ("sqlite", "postgresql")

#: the browser :func:`chromium` runs (Debian's ``chromium`` package)
CHROMIUM = os.environ.get("CRMKIT_CHROMIUM", "/usr/bin/chromium")


def chromium(tmp_path: Path, *args: str, timeout: float = 60) -> str:
    """Run headless Chromium with ``args`` (e.g. ``"--dump-dom", page.as_uri()``); return stdout.

    Skips the calling test when Chromium is not installed, or fails it when
    ``CRMKIT_REQUIRE_BROWSER=1``. Each call gets its own profile under ``tmp_path``
    and no network services (updates, sync), so runs are repeatable offline.
    """
    if not Path(CHROMIUM).exists():
        if os.environ.get("CRMKIT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CRMKIT_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
        pytest.skip(f"headless Chromium not installed at {CHROMIUM}")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]  # fmt: skip
    done = subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout


def artifacts_dir() -> Path:
    """Folder for files a test run keeps (screenshots): ``$CRMKIT_ARTIFACTS`` or ./artifacts."""
    folder = Path(os.environ.get("CRMKIT_ARTIFACTS", "artifacts")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def postgres_server_url() -> str | None:
    """The server URL tests may create databases on, or None."""
    url = os.environ.get("CRMKIT_TEST_DATABASE_URL")
    return normalise_url(url) if url else None


def create_postgres_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    name = f"crmkit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def crmkit_backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``: the backend this run of the test uses."""
    if request.param == "postgresql" and postgres_server_url() is None:
        if os.environ.get("CRMKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail("CRMKIT_REQUIRE_POSTGRES=1 but CRMKIT_TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL run skipped: set CRMKIT_TEST_DATABASE_URL to a server URL")
    return request.param


@pytest.fixture
def database_url(crmkit_backend: str, tmp_path: Any) -> Iterator[str]:
    """URL of a fresh, empty database on the backend of this run."""
    if crmkit_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'crm.db'}"
        return
    server = postgres_server_url()
    assert server is not None
    url = create_postgres_database(server)
    try:
        yield url
    finally:
        drop_postgres_database(server, url)


@pytest.fixture
def make_crm(database_url: str) -> Iterator[Callable[..., crmkit.CRM]]:
    """Factory: ``make_crm(plugins=[...], settings={...})`` opens a CRM on this run's database.

    The schema is upgraded to head for the chosen plugins; every CRM opened is
    closed at the end of the test. ``plugins`` takes names of installed
    plugins and plugin objects (a module or class with hook implementations).
    """
    opened: list[crmkit.CRM] = []

    def factory(
        plugins: Sequence[str | Any] = (),
        settings: dict[str, dict[str, Any]] | None = None,
        upgrade: bool = True,
        **config: Any,
    ) -> crmkit.CRM:
        crm = crmkit.open(database_url, plugins=list(plugins), settings=settings, upgrade=upgrade)
        for key, value in config.items():
            setattr(crm.config, key, value)
        opened.append(crm)
        return crm

    yield factory
    for crm in opened:
        crm.close()


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM with no plugins on a fresh database of this run's backend."""
    return make_crm()


def run_cli(
    args: Sequence[str],
    *,
    database: str | None = None,
    plugins: Sequence[str | Any] | None = None,
    input: str | None = None,  # noqa: A002 - click's name for it
    env: dict[str, str] | None = None,
) -> Any:
    """Run ``crmkit ARGS`` in-process and return click's ``Result``.

    ``database`` is passed as ``--database``; ``plugins`` (names or plugin objects)
    override the configuration's list, as ``crmkit.open(plugins=...)`` does. The result
    has ``exit_code``, ``output`` (stdout), ``stderr`` and ``exception``.
    """
    from click.testing import CliRunner

    from crmkit.cli import CliState, cli

    prefix = ["--database", database] if database is not None else []
    state = CliState(plugins=list(plugins) if plugins is not None else None)
    return CliRunner().invoke(cli, [*prefix, *args], obj=state, input=input, env=env)


@pytest.fixture
def cli_runner(database_url: str) -> Callable[..., Any]:
    """Run the ``crmkit`` command line on this run's database: ``cli_runner(["customer",
    "list"], plugins=["loyalty"])`` returns click's ``Result`` (see :func:`run_cli`)."""

    def invoke(args: Sequence[str], **options: Any) -> Any:
        options.setdefault("database", database_url)
        return run_cli(args, **options)

    return invoke


def import_file(crm: crmkit.CRM, kind: str, path: str | Path, **options: Any) -> Any:
    """Import a file in-process as ``crmkit import KIND FILE`` does (``batch_size``,
    ``skip_invalid`` ...: the command's options); returns its result (``stored``,
    ``summary()``). Called inside ``crm.transaction()`` it joins that transaction once
    and stores every batch in it without joining again, as the command does: a test
    can write before and after an import in one transaction."""
    from crmkit.transfer import import_file as run

    return run(crm, kind, str(path), **options)


def generate_demo_data(crm: crmkit.CRM, **options: Any) -> Any:
    """Fill an empty ``crm`` with the seeded data set ``crmkit demo`` builds (customers,
    orders, interactions, deals; enabled plugins add theirs). Options: ``customers``
    (default 2000), ``seed``, ``today`` (a date), ``plugins`` (False: core data only)."""
    from crmkit.demo_data import generate

    return generate(crm, **options)


def assert_migrations_match_tables(
    crm: crmkit.CRM, plugin: str | None = None, *, unmanaged_tables: Sequence[str] = ()
) -> None:
    """Fail when ``plugin``'s migrations (the core's when None) drift from its table definitions.

    Upgrades ``crm`` to head, then compares the migrated schema with the tables
    defined on ``crmkit.plugin.metadata`` using Alembic's ``compare_metadata``,
    restricted to that branch's tables: for a plugin, the tables its package's
    modules define, plus tables in the database that nobody defines whose names
    start with its prefixes (``<plugin>_``), except those matching ``unmanaged_tables``
    (``fnmatch`` patterns of tables the migrations create on purpose outside the
    metadata, such as a full-text index: ``("kb_fts*", "kb_search")``). The
    assertion lists every difference
    (a column the code defines but no migration adds, a type that differs, ...);
    ``crmkit db revision --autogenerate --plugin NAME`` writes the missing revision.

    Use it in a plugin's tests::

        def test_migrations_match_tables(make_crm):
            assert_migrations_match_tables(make_crm(plugins=["visits"]), plugin="visits")
    """
    from crmkit.core import migrate

    if plugin is not None and plugin not in crm.plugin_names:
        raise AssertionError(
            f"plugin {plugin!r} is not enabled in this CRM (enabled: "
            f"{', '.join(crm.plugin_names) or 'none'}); open it with plugins=[{plugin!r}]"
        )
    crm.upgrade()
    owned = migrate.owned_tables(crm.pm, plugin, unmanaged_tables)
    with crm.engine.connect() as connection:
        differences = migrate.schema_differences(connection, owned)
    if differences:
        branch = f"plugin {plugin!r}" if plugin else "the core"
        lines = "\n".join(f"  - {migrate.describe_difference(d)}" for d in differences)
        raise AssertionError(
            f"the migrations of {branch} do not match its table definitions on "
            f"{crm.engine.dialect.name} ({len(differences)} difference(s)):\n{lines}"
        )


# -- a live crmkit serve process -------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A ``crmkit serve`` subprocess on a loopback port: ``url``, ``client()``, ``stop()``.

    Its stdout and stderr (the JSON access log included) go to ``log_path``; read them
    with :meth:`output`.
    """

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, **options: Any) -> Any:
        """An ``httpx.Client`` on the server (close it, or use it in a ``with`` block)."""
        import httpx

        options.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **options)

    def output(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def worker_pids(self) -> list[int]:
        """The processes serving requests: the children of a multi-worker server, else the
        server itself (Linux: read from /proc)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            found = [int(p) for p in children.read_text().split()]
        except OSError:
            found = []
        # uvicorn's supervisor also starts a resource tracker: keep the processes serving
        workers = [p for p in found if "resource_tracker" not in _cmdline(p)]
        return workers or [self.pid]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful: requests in flight finish), then wait; returns the exit status."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)

    def cleanup(self) -> None:
        """Stop the server and delete its log folder."""
        import shutil

        self.stop()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode()
    except OSError:
        return ""


def start_server(
    config_path_or_url: str | os.PathLike[str],
    workers: int = 1,
    env: dict[str, str] | None = None,
    *,
    timeout: float = 60,
    cwd: str | os.PathLike[str] | None = None,
) -> LiveServer:
    """Start ``crmkit serve`` as a real subprocess on a free 127.0.0.1 port and wait until
    ``/healthz`` answers.

    ``config_path_or_url`` is a crmkit.toml (``CRMKIT_CONFIG``) or a database URL
    (``CRMKIT_DATABASE_URL``); ``env`` adds environment variables, e.g.
    ``{"CRMKIT_PLUGINS": "loyalty"}``. Stop it with :meth:`LiveServer.stop` (SIGTERM).
    """
    import sys
    import tempfile
    import time

    import httpx

    port = free_port()
    variables = dict(os.environ)
    target = os.fspath(config_path_or_url)
    if "://" in target:
        variables.pop("CRMKIT_CONFIG", None)
        variables["CRMKIT_DATABASE_URL"] = target
    else:
        variables.pop("CRMKIT_DATABASE_URL", None)
        variables["CRMKIT_CONFIG"] = str(Path(target).resolve())
    variables.update(env or {})
    folder = Path(tempfile.mkdtemp(prefix="crmkit-serve-"))
    log_path = folder / "server.log"
    command = [
        sys.executable, "-c", "from crmkit.cli import main; main()", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=variables, stdout=log, stderr=subprocess.STDOUT,
            cwd=os.fspath(cwd) if cwd is not None else folder,
        )  # fmt: skip
    server = LiveServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            output = server.output()
            server.cleanup()
            raise RuntimeError(f"crmkit serve exited with status {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop(5)
            output = server.output()
            server.cleanup()
            raise RuntimeError(f"crmkit serve did not answer /healthz in {timeout}s:\n{output}")
        time.sleep(0.1)


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(config_or_url, workers=1, env={...})`` starts ``crmkit serve``
    (see :func:`start_server`); every server started is stopped at the end of the test."""
    started: list[LiveServer] = []

    def factory(
        config_path_or_url: str | os.PathLike[str],
        workers: int = 1,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> LiveServer:
        server = start_server(config_path_or_url, workers=workers, env=env, **options)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.cleanup()
