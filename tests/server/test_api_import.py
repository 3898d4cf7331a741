"""Bulk import over HTTP (``POST /api/v1/import/{kind}``) against a real ``crmkit serve``
process, on SQLite and PostgreSQL: a good CSV or JSON Lines body is stored; one bad row
stores nothing and the answer lists the rejects; the same file again stores nothing new;
skip_invalid; an oversize body is a 413 and stores nothing."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmkit.testing import BACKENDS

sys.path.insert(0, str(Path(__file__).parent))
from api_support import Api, problem_type, running_api  # noqa: E402

CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"api-import-{request.param}")
    extra = "[server]\nmax_body_bytes = 200000\n"
    with running_api(request.param, folder, config_extra=extra) as running:
        yield running


def _count(api: Api, region: str) -> int:
    return len(api.client.get("/customers", params={"region": region, "limit": 500}).json())


def test_good_csv_is_stored_and_a_second_time_nothing_new(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    rows = "".join(f"{region}-{n},Customer {n},{region}\n" for n in range(40))
    body = "external_id,name,region\n" + rows
    stored = api.client.post("/import/customers", content=body.encode(), headers=CSV)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {
        "kind": "customers", "read": 40, "stored": 40, "already_present": 0, "rejected": 0,
        "committed": True, "rejects": [],
    }  # fmt: skip
    assert _count(api, region) == 40
    again = api.client.post("/import/customers", content=body.encode(), headers=CSV)
    assert again.status_code == 200
    assert again.json()["stored"] == 0
    assert again.json()["already_present"] == 40
    assert _count(api, region) == 40

    lines = "\n".join(
        json.dumps({"external_id": f"{region}-o{n}", "customer": f"{region}-{n}",
                    "occurred_at": "2026-01-02T10:00:00+08:00", "amount": "12.50"})
        for n in range(5)
    )  # fmt: skip
    orders = api.client.post(
        "/import/orders", content=lines.encode(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert orders.status_code == 200, orders.text
    assert orders.json()["stored"] == 5
    listed = api.client.get("/orders", params={"region": region}).json()
    assert sorted(o["external_id"] for o in listed) == [f"{region}-o{n}" for n in range(5)]
    assert {o["amount"] for o in listed} == {"12.50"}


def test_one_bad_row_stores_nothing_and_lists_the_rejects(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    body = (
        "external_id,name,region,birth_date\n"
        f"{region}-1,Good,{region},1980-01-01\n"
        f"{region}-2,,{region},\n"
        f"{region}-3,Bad date,{region},31/12/1980\n"
        f"{region}-4,Good too,{region},\n"
    )
    refused = api.client.post("/import/customers", content=body.encode(), headers=CSV)
    assert refused.status_code == 422, refused.text
    assert problem_type(refused) == "validation-error"
    problem = refused.json()
    assert problem["stored"] == 0
    assert problem["rejected"] == 2
    assert problem["read"] == 4
    assert [r["line"] for r in problem["rejects"]] == [3, 4]
    assert problem["rejects"][0]["column"] == "name"
    assert "birth_date" in (problem["rejects"][1]["column"] or problem["rejects"][1]["reason"])
    assert _count(api, region) == 0

    kept = api.client.post(
        "/import/customers", params={"skip_invalid": "true"}, content=body.encode(), headers=CSV
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["stored"] == 2
    assert kept.json()["rejected"] == 2
    assert [r["line"] for r in kept.json()["rejects"]] == [3, 4]
    assert _count(api, region) == 2


def test_import_refusals(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    body = f"external_id,name,region\n{region}-1,A,{region}\n".encode()
    assert api.client.post("/import/widgets", content=body, headers=CSV).status_code == 404
    wrong_type = api.client.post(
        "/import/customers", content=body, headers={"Content-Type": "application/pdf"}
    )
    assert wrong_type.status_code == 415
    assert problem_type(wrong_type) == "unsupported-media-type"
    bad_json = api.client.post(
        "/import/orders", content=b"{not json\n", headers={"Content-Type": "application/x-ndjson"}
    )
    assert bad_json.status_code == 422
    assert (
        api.client.post(
            "/import/customers", params={"encoding": "klingon"}, content=body, headers=CSV
        ).status_code
        == 422
    )
    big = b"external_id,name,region\n" + b"".join(
        f"{region}-{n},Name {n},{region}\n".encode() for n in range(20000)
    )
    too_big = api.client.post("/import/customers", content=big, headers=CSV)
    assert too_big.status_code == 413, too_big.text
    assert problem_type(too_big) == "payload-too-large"
    assert _count(api, region) == 0
    forbidden = api.rep.post("/import/customers", content=body, headers=CSV)
    assert forbidden.status_code == 403, forbidden.text
    assert _count(api, region) == 0
