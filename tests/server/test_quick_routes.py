"""Quick routes (``Route(quick=True)``) run on the worker's event loop thread, the others
in its handler threads; a quick route waits a bounded time for a lock and answers 503
busy with nothing written, while a route in a handler thread waits as long as the
database lets it; a keep-alive connection is closed after ``keepalive_requests``
responses, so clients spread over the workers again (real ``crmkit serve`` processes,
SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmkit.testing import BACKENDS, LiveServer

sys.path.insert(0, str(Path(__file__).parent))
from api_support import Api, problem_type, running_api  # noqa: E402

T = "/api/v1/servertest"
LOCK_WAIT_MS = 300


def test_quick_routes_run_on_the_loop_thread_the_others_in_handler_threads(
    served: LiveServer,
) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        handler = client.get(f"{T}/thread").json()["thread"]
        quick = client.get(f"{T}/thread-quick").json()["thread"]
    assert handler.startswith("crmkit-handler-"), handler
    assert quick == "MainThread"  # uvicorn runs a worker's event loop on its main thread


def test_a_slow_route_in_a_handler_thread_does_not_hold_up_quick_ones(
    served: LiveServer,
) -> None:
    answers: list[httpx.Response] = []

    def slow() -> None:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            answers.append(client.get(f"{T}/slow", params={"seconds": 3}))

    sleeper = threading.Thread(target=slow)
    sleeper.start()
    try:
        deadline = time.monotonic() + 20
        while "sleeping" not in served.output():
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.05)
        started = time.monotonic()
        with httpx.Client(base_url=served.url, timeout=30) as client:
            quick = client.get(f"{T}/thread-quick")
        took = time.monotonic() - started
        assert quick.status_code == 200
        assert sleeper.is_alive() and not answers, "the slow request ended first"
        assert took < 2.0, f"the quick request waited {took:.2f} s for the slow one"
    finally:
        sleeper.join(30)
    assert answers and answers[0].json() == {"slept": 3}


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"quick-{request.param}")
    extra = f"\n[server]\nquick_lock_wait_ms = {LOCK_WAIT_MS}\nkeepalive_requests = 3\n"
    with running_api(request.param, folder, config_extra=extra) as running:
        yield running


class _LockHolder:
    """Another transaction holding customers' rows (PostgreSQL) or the database's write
    lock (SQLite), on a connection of the tests' own."""

    def __init__(self, api: Api, customer_ids: list[int]) -> None:
        self.raw = api.crm.engine.raw_connection()
        cursor = self.raw.cursor()
        if api.crm.engine.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        else:
            ids = ", ".join(str(int(n)) for n in customer_ids)
            cursor.execute(f"UPDATE customers SET phone = phone WHERE id IN ({ids})")
        cursor.close()

    def release(self) -> None:
        self.raw.rollback()
        self.raw.close()


def test_a_quick_write_stops_waiting_for_a_lock_a_handler_thread_waits(api: Api) -> None:
    first = api.client.post("/customers", json={"name": "Locked", "phone": "111"})
    second = api.client.post("/customers", json={"name": "Erased later"})
    assert first.status_code == second.status_code == 201
    path = f"/customers/{first.json()['id']}"
    etag = api.client.get(path).headers["etag"]
    holder = _LockHolder(api, [first.json()["id"], second.json()["id"]])
    erasing: list[httpx.Response] = []
    eraser = threading.Thread(
        target=lambda: erasing.append(
            api.client.post(f"/customers/{second.json()['id']}/erase", json={"confirm": True})
        )
    )
    try:
        started = time.monotonic()
        refused = api.client.patch(path, json={"phone": "222"}, headers={"If-Match": etag})
        took = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert problem_type(refused) == "busy"
        assert refused.headers["retry-after"] == "1"
        assert LOCK_WAIT_MS / 1000 <= took < 10, took
        # the worker goes on serving: reads are not held up by the lock
        read = api.client.get(path)
        assert read.status_code == 200 and read.json()["phone"] == "111"
        assert read.headers["etag"] == etag

        # a route in a handler thread (erasure) waits for the lock, not a quick route's time
        eraser.start()
        time.sleep(1.0 + LOCK_WAIT_MS / 1000)
        assert eraser.is_alive() and not erasing, erasing and erasing[0].text
    finally:
        holder.release()
        if eraser.ident is not None:
            eraser.join(60)
    assert erasing and erasing[0].status_code == 200, erasing and erasing[0].text
    changed = api.client.patch(path, json={"phone": "222"}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.text
    updates = api.client.get(
        "/audit", params={"customer": first.json()["id"], "action": "customer.update"}
    ).json()
    assert [entry["changes"]["phone"] for entry in updates] == [["111", "222"]]


def test_a_connection_is_closed_after_keepalive_requests_responses(api: Api) -> None:
    with httpx.Client(
        base_url=api.base, headers={"Authorization": f"Bearer {api.tokens['boss']}"}
    ) as client:
        answers = [client.get("/workflows") for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 7
    closing = [a.headers.get("connection") == "close" for a in answers]
    assert closing == [False, False, True, False, False, True, False]
    # the same with an answer the dispatcher does not give (Starlette's 404)
    with httpx.Client(base_url=api.base) as client:
        missing = [client.get("/no-such-route") for _ in range(3)]
    assert [a.status_code for a in missing] == [404] * 3
    assert missing[2].headers.get("connection") == "close"
