"""Staff and the audit log over HTTP against a real ``crmkit serve`` process, on SQLite
and PostgreSQL: staff round trips with content ETags (428, 412, deactivation), and the
audit entries of HTTP writes (actor, request id, changed fields), filtered and paged."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmkit.testing import BACKENDS

sys.path.insert(0, str(Path(__file__).parent))
from api_support import Api, all_pages, problem_type, running_api  # noqa: E402


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"api-staff-{request.param}")
    with running_api(request.param, folder) as running:
        yield running


def test_staff_round_trip(api: Api) -> None:
    name = f"li.{uuid.uuid4().hex[:6]}"
    added = api.client.post(
        "/staff",
        json={"username": name, "name": "Li", "email": f"{name}@example.com",
              "roles": ["sales_rep"], "department": "Sales", "manager": "boss"},
    )  # fmt: skip
    assert added.status_code == 201, added.text
    assert added.headers["location"] == f"/api/v1/staff/{name}"
    member = added.json()
    one = f"/staff/{name}"
    got = api.client.get(one)
    assert got.json() == member
    assert got.headers["etag"] == f'"{member["etag"]}"'

    assert api.client.post("/staff", json={"username": name}).status_code == 409
    for body in (
        {"username": "x1", "email": "nope"},
        {"username": "x2", "manager": "nobody"},
        {"username": "x3", "roles": "sales_rep"},
        {"username": "x4", "colour": "red"},
        {},
    ):
        refused = api.client.post("/staff", json=body)
        assert refused.status_code == 422, (body, refused.text)

    assert api.client.patch(one, json={"department": "HQ"}).status_code == 428
    changed = api.client.patch(
        one, json={"department": "HQ", "roles": ["sales_manager"]},
        headers={"If-Match": got.headers["etag"]},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert changed.json()["department"] == "HQ"
    assert changed.json()["roles"] == ["sales_manager"]
    assert changed.headers["etag"] != got.headers["etag"]
    stale = api.client.patch(
        one, json={"department": "X"}, headers={"If-Match": got.headers["etag"]}
    )
    assert stale.status_code == 412
    assert problem_type(stale) == "precondition-failed"
    assert api.client.get(one).json()["department"] == "HQ"

    off = api.client.patch(
        one, json={"active": False}, headers={"If-Match": changed.headers["etag"]}
    )
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    listed = [m["username"] for m in api.client.get("/staff", params={"limit": 500}).json()]
    assert name not in listed
    everyone, _ = all_pages(api.client, "/staff", include_inactive="true", limit=1)
    assert name in [m["username"] for m in everyone]
    names = [m["username"] for m in everyone]
    assert names == sorted(names)
    reps, _ = all_pages(api.client, "/staff", role="sales_rep")
    assert "rep_a" in [m["username"] for m in reps]

    assert api.client.get("/staff/nobody-here").status_code == 404
    forbidden = api.rep.post("/staff", json={"username": f"x{uuid.uuid4().hex[:6]}"})
    assert forbidden.status_code == 403, forbidden.text
    assert problem_type(forbidden) == "forbidden"


def test_non_ascii_username(api: Api) -> None:
    name = f"王磊{uuid.uuid4().hex[:4]}"
    added = api.client.post("/staff", json={"username": name, "name": "王磊"})
    assert added.status_code == 201, added.text
    got = api.client.get(added.headers["location"].removeprefix("/api/v1"))
    assert got.status_code == 200
    assert got.json()["username"] == name


def test_audit_entries_of_http_writes(api: Api) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    made = api.client.post(
        "/customers", json={"name": "Audited", "phone": "1"}, headers={"X-Request-ID": request_id}
    )
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    etag = made.headers["etag"]
    changed = api.client.patch(f"/customers/{cid}", json={"phone": "2"}, headers={"If-Match": etag})
    assert changed.status_code == 200, changed.text

    entries, _ = all_pages(api.client, "/audit", customer=cid)
    actions = [e["action"] for e in entries]
    assert actions[0] == "customer.update"
    assert "customer.create" in actions
    created = next(e for e in entries if e["action"] == "customer.create")
    assert created["request_id"] == request_id
    assert created["actor_kind"] == "token"
    assert created["actor"].endswith(":boss")
    assert created["at"].endswith("+00:00")
    assert entries[0]["changes"]["phone"] == ["1", "2"]
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)

    paged, pages = all_pages(api.client, "/audit", customer=cid, limit=1)
    assert [e["id"] for e in paged] == ids
    assert pages == len(ids)
    only, _ = all_pages(api.client, "/audit", customer=cid, action="customer.update")
    assert [e["action"] for e in only] == ["customer.update"]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert api.client.get("/audit", params={"since": later}).json() == []
    mine, _ = all_pages(api.client, "/audit", staff=created["actor"], customer=cid)
    assert len(mine) == len(ids)

    refused = api.rep.get("/audit")
    assert refused.status_code == 403
    assert problem_type(refused) == "forbidden"
    assert api.client.get("/audit", params={"since": "soon"}).status_code == 422
