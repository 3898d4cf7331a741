"""Concurrent PATCH with the same If-Match against a real ``crmkit serve`` (two worker
processes), on SQLite and PostgreSQL: exactly one request wins (200) and the others get
412 with nothing written: two people editing one record never overwrite each other."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crmkit.testing import BACKENDS

sys.path.insert(0, str(Path(__file__).parent))
from api_support import Api, running_api  # noqa: E402

THREADS = 8


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"api-concurrency-{request.param}")
    with running_api(request.param, folder, workers=2) as running:
        yield running


def _race(api: Api, path: str, etag: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Send the PATCHes at once (each thread its own connection), all with ``etag``."""
    barrier = threading.Barrier(len(bodies))
    answers: list[httpx.Response | None] = [None] * len(bodies)

    def send(n: int) -> None:
        with api.as_token(api.tokens["boss"]) as client:
            client.get("/workflows")  # connected and warm before the barrier
            barrier.wait()
            answers[n] = client.patch(path, json=bodies[n], headers={"If-Match": etag})

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def test_concurrent_customer_patches_one_wins(api: Api) -> None:
    made = api.client.post("/customers", json={"name": "Contested", "phone": "start"})
    assert made.status_code == 201, made.text
    path = f"/customers/{made.json()['id']}"
    etag = api.client.get(path).headers["etag"]
    answers = _race(api, path, etag, [{"phone": f"p{n}"} for n in range(THREADS)])

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * (THREADS - 1), [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200)
    after = api.client.get(path)
    assert after.json()["phone"] == winner.json()["phone"]
    assert after.headers["etag"] == winner.headers["etag"] != etag
    assert after.json()["version"] == made.json()["version"] + 1
    updates = api.client.get(
        "/audit", params={"customer": made.json()["id"], "action": "customer.update"}
    ).json()
    assert len(updates) == 1


def test_concurrent_contact_patches_one_wins(api: Api) -> None:
    org = api.client.post("/customers", json={"name": "Org", "type": "organisation"}).json()
    contact = api.client.post(f"/customers/{org['id']}/contacts", json={"name": "Pat"}).json()
    path = f"/contacts/{contact['id']}"
    etag = api.client.get(path).headers["etag"]
    answers = _race(api, path, etag, [{"role": f"role {n}"} for n in range(THREADS)])

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * (THREADS - 1), [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200)
    after = api.client.get(path)
    assert after.json()["role"] == winner.json()["role"]
    assert after.headers["etag"] == winner.headers["etag"]


def test_concurrent_staff_patches_one_wins(api: Api) -> None:
    added = api.client.post("/staff", json={"username": "contested", "name": "C"})
    assert added.status_code == 201, added.text
    path = "/staff/contested"
    etag = api.client.get(path).headers["etag"]
    answers = _race(api, path, etag, [{"department": f"d{n}"} for n in range(THREADS)])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [412] * (THREADS - 1), [a.text for a in answers]
    winner = next(a for a in answers if a.status_code == 200)
    assert api.client.get(path).json()["department"] == winner.json()["department"]
