"""Workflows over HTTP against a real ``crmkit serve`` process, on SQLite and PostgreSQL:
definitions, starting instances, moving them (as the signed-in staff member, whose stage
roles count), refused moves storing nothing, the transition history, list filters and
paging."""

from __future__ import annotations

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
    folder = tmp_path_factory.mktemp(f"api-workflows-{request.param}")
    with running_api(request.param, folder) as running:
        yield running


def _customer(api: Api) -> int:
    made = api.client.post("/customers", json={"name": "Prospect", "owner": "rep_a"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_definitions(api: Api) -> None:
    listed = api.client.get("/workflows")
    assert listed.status_code == 200
    sales = next(w for w in listed.json() if w["name"] == "sales")
    assert sales["initial"] == "need_discovery"
    assert [s["name"] for s in sales["stages"]][:2] == ["need_discovery", "presentation"]
    assert api.client.get("/workflows/sales").json() == sales
    missing = api.client.get("/workflows/nope")
    assert missing.status_code == 404
    assert problem_type(missing) == "not-found"


def test_start_move_and_history(api: Api) -> None:
    cid = _customer(api)
    started = api.client.post(
        "/workflow-instances",
        json={"workflow": "sales", "customer_id": cid, "title": "Big deal", "value": "12000.00",
              "due_on": "2026-06-30", "owner": "rep_a", "fields": {"source": "fair"}},
    )  # fmt: skip
    assert started.status_code == 201, started.text
    deal = started.json()
    assert deal["stage"] == "need_discovery"
    assert deal["value"] == "12000.00"
    assert deal["next_steps"][0] == "Find the decision maker"
    assert [(t["from_stage"], t["to_stage"]) for t in deal["transitions"]] == [
        (None, "need_discovery")
    ]
    one = f"/workflow-instances/{deal['id']}"

    moved = api.rep.post(one + "/transitions", json={"to_stage": "presentation", "reason": "met"})
    assert moved.status_code == 201, moved.text
    assert moved.json()["stage"] == "presentation"
    assert moved.json()["transitions"][-1]["actor"] == "rep_a"

    needs_field = api.rep.post(one + "/transitions", json={"to_stage": "tender"})
    assert needs_field.status_code == 409
    assert problem_type(needs_field) == "transition-refused"
    assert "tender_reference" in needs_field.json()["detail"]
    nowhere = api.rep.post(one + "/transitions", json={"to_stage": "won"})
    assert nowhere.status_code == 409
    assert api.client.get(one).json()["stage"] == "presentation"  # nothing stored

    tender = api.rep.post(
        one + "/transitions",
        json={"to_stage": "tender", "fields": {"tender_reference": "T-1"}},
    )
    assert tender.status_code == 201, tender.text
    assert tender.json()["fields"] == {"source": "fair", "tender_reference": "T-1"}
    for stage in ("negotiation", "contract"):
        step = api.rep.post(one + "/transitions", json={"to_stage": stage})
        assert step.status_code == 201, step.text
    # the contract stage is the sales manager's: the rep's roles may not move it on
    refused = api.rep.post(one + "/transitions", json={"to_stage": "won"})
    assert refused.status_code in (403, 409), refused.text
    won = api.client.post(one + "/transitions", json={"to_stage": "won", "reason": "signed"})
    assert won.status_code == 201, won.text

    detail = api.client.get(one).json()
    assert detail["stage"] == "won"
    assert detail["closed_at"] is not None
    assert detail["next_steps"] == []
    assert [t["to_stage"] for t in detail["transitions"]] == [
        "need_discovery", "presentation", "tender", "negotiation", "contract", "won",
    ]  # fmt: skip
    assert detail["transitions"][-1]["reason"] == "signed"


def test_instance_list_filters_paging_and_refusals(api: Api) -> None:
    cid = _customer(api)
    title = f"deal-{uuid.uuid4().hex[:6]}"
    ids = []
    for n in range(5):
        made = api.client.post(
            "/workflow-instances",
            json={"workflow": "sales", "customer_id": cid, "title": f"{title} {n}"},
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    lost = api.client.post(f"/workflow-instances/{ids[1]}/transitions", json={"to_stage": "lost"})
    assert lost.status_code == 201

    items, pages = all_pages(api.client, "/workflow-instances", customer=str(cid), limit=2)
    assert [i["id"] for i in items] == ids
    assert pages == 3
    still_open, _ = all_pages(api.client, "/workflow-instances", customer=cid, open="true")
    assert [i["id"] for i in still_open] == [ids[0], *ids[2:]]
    at_lost, _ = all_pages(
        api.client, "/workflow-instances", customer=cid, workflow="sales", stage="lost"
    )
    assert [i["id"] for i in at_lost] == [ids[1]]

    assert api.client.get("/workflow-instances", params={"workflow": "nope"}).status_code == 404
    bad_stage = api.client.get("/workflow-instances", params={"workflow": "sales", "stage": "x"})
    assert bad_stage.status_code == 422
    assert api.client.get("/workflow-instances/987654").status_code == 404
    assert (
        api.client.post("/workflow-instances/987654/transitions", json={"to_stage": "lost"})
    ).status_code == 404
    for body in (
        {"workflow": "sales", "customer_id": cid},
        {"workflow": "sales", "customer_id": cid, "title": " "},
        {"workflow": "sales", "customer_id": cid, "title": "x", "value": "lots"},
        {"workflow": "sales", "customer_id": cid, "title": "x", "owner": "nobody"},
    ):
        refused = api.client.post("/workflow-instances", json=body)
        assert refused.status_code in (404, 422), (body, refused.text)
    unknown = api.client.post(
        "/workflow-instances", json={"workflow": "nope", "customer_id": cid, "title": "x"}
    )
    assert unknown.status_code in (404, 422)
    assert len(all_pages(api.client, "/workflow-instances", customer=cid)[0]) == 5
