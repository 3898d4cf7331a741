"""Stopping ``crmkit serve``: SIGTERM lets requests in flight finish; a worker killed
outright (SIGKILL) mid-transaction leaves nothing half-written (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import sqlalchemy as sa

import crmkit
from crmkit.core.tables import customers
from crmkit.testing import LiveServer

T = "/api/v1/servertest"


def customer_names(crm: crmkit.CRM, prefix: str) -> list[str]:
    with crm.reading() as connection:
        query = sa.select(customers.c.name).where(customers.c.name.startswith(prefix))
        return sorted(connection.execute(query).scalars())


def wait_for_log(server: LiveServer, text: str, timeout: float = 30) -> None:
    """Wait until the server's output holds ``text`` (a handler's line: it is running)."""
    deadline = time.monotonic() + timeout
    while text not in server.output():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.output()}"
        time.sleep(0.05)


def test_sigterm_lets_the_request_in_flight_finish(
    make_crm: Callable[..., crmkit.CRM],
    database_url: str,
    tmp_path: Path,
    live_server: Callable[..., LiveServer],
    config_writer: Callable[..., Path],
    server_env: dict[str, str],
) -> None:
    crm = make_crm(plugins=[])
    server = live_server(config_writer(tmp_path, database_url), env=server_env)
    answers: list[httpx.Response] = []

    def slow_write() -> None:
        with server.client() as client:
            answers.append(
                client.post(
                    f"{T}/open-customers",
                    json={"name": "Graceful", "sleep": 0.75},
                    headers={"X-Request-ID": "graceful-write"},
                )
            )

    thread = threading.Thread(target=slow_write)
    thread.start()
    # the handler is inside its transaction, between its two writes
    wait_for_log(server, "servertest graceful-write: wrote one")
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert answers and answers[0].status_code == 201, answers and answers[0].text
    assert answers[0].json()["echo"] == "Graceful"
    server.process.wait(30)
    assert customer_names(crm, "Graceful") == ["Graceful one", "Graceful two"]
    # the server stopped accepting: a new request fails to connect
    try:
        httpx.get(f"{server.url}/healthz", timeout=2)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the server still answers after SIGTERM")


def test_sigterm_waits_for_a_slow_read(
    make_crm: Callable[..., crmkit.CRM],
    database_url: str,
    tmp_path: Path,
    live_server: Callable[..., LiveServer],
    config_writer: Callable[..., Path],
    server_env: dict[str, str],
) -> None:
    make_crm(plugins=[])
    server = live_server(config_writer(tmp_path, database_url), env=server_env, workers=2)
    answers: list[httpx.Response] = []

    def slow() -> None:
        with server.client() as client:
            answers.append(
                client.get(
                    f"{T}/slow", params={"seconds": "2"}, headers={"X-Request-ID": "slow-read"}
                )
            )

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for_log(server, "servertest slow-read: sleeping")  # the request is in the handler
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert answers and answers[0].status_code == 200 and answers[0].json() == {"slept": 2.0}
    server.process.wait(30)
    if database_url.startswith("sqlite"):
        assert "2 workers on SQLite" in server.output()  # allowed, with a warning
    assert time.monotonic() - started < 25


def test_killed_worker_leaves_nothing_half_written(
    make_crm: Callable[..., crmkit.CRM],
    database_url: str,
    tmp_path: Path,
    live_server: Callable[..., LiveServer],
    config_writer: Callable[..., Path],
    server_env: dict[str, str],
) -> None:
    """The handler adds one customer, sleeps inside the transaction, adds another: kill -9
    every worker while it sleeps; neither customer may exist afterwards."""
    crm = make_crm(plugins=[])
    server = live_server(config_writer(tmp_path, database_url), env=server_env, workers=2)
    deadline = time.monotonic() + 30
    while len(workers := server.worker_pids()) < 2:
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)
    assert server.pid not in workers, workers
    failures: list[BaseException] = []

    def doomed_write() -> None:
        try:
            with server.client(timeout=60) as client:
                client.post(
                    f"{T}/open-customers",
                    json={"name": "Halfway", "sleep": 3},
                    headers={"X-Request-ID": "doomed-write"},
                )
        except httpx.TransportError as exc:
            failures.append(exc)

    thread = threading.Thread(target=doomed_write)
    thread.start()
    # the handler logs once the first customer is inserted (uncommitted), then sleeps
    wait_for_log(server, "servertest doomed-write: wrote one")
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    thread.join(60)
    assert failures, "the request should have died with its worker"
    assert customer_names(crm, "Halfway") == []
    # the database still takes writes (no lock left behind by the dead worker)
    crm.customers.add(name="After the crash")
    assert customer_names(crm, "After") == ["After the crash"]
