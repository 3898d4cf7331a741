"""The complaints routes against a real ``crmkit serve`` process (SQLite and PostgreSQL):
logging, the queue by SLA due with paging, scopes (another rep's customer's complaint is
404), permissions (403), transitions, replies, and the customer's public status page and
survey by tracking code, which need no credentials and leak nothing internal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from crmkit.testing import run_cli

API = "/api/v1/complaints"


def token(url: str, username: str) -> str:
    r = run_cli(
        ["token", "create", "--staff", username, "--scopes", "*", "--expires", "never",
         "--format", "json"],
        database=url, plugins=["complaints"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["token"]


@pytest.fixture
def served(make_crm: Any, database_url: str, live_server: Any) -> Any:
    crm = make_crm(plugins=["complaints"])
    crm.staff.add("rep_a", "Rep A", roles=["sales_rep"])
    crm.staff.add("rep_b", "Rep B", roles=["sales_rep"])
    crm.staff.add("mg", "Mona Manager", roles=["manager"])
    a = crm.customers.add(name="Acme Ann", owner="rep_a").id
    b = crm.customers.add(name="Bolt Bob", owner="rep_b").id
    tokens = {u: token(database_url, u) for u in ("rep_a", "mg")}
    server = live_server(database_url, env={"CRMKIT_PLUGINS": "complaints"})
    return crm, server, tokens, a, b


def client(server: Any, tokens: dict[str, str], username: str | None) -> Any:
    headers = {"Authorization": f"Bearer {tokens[username]}"} if username else {}
    return server.client(headers=headers)


def complaint(customer_id: int, **more: Any) -> dict[str, Any]:
    return {"customer_id": customer_id, "channel": "phone", "category": "delivery",
            "description": "The parcel came late", **more}  # fmt: skip


def test_log_queue_scopes_and_paging(served: Any) -> None:
    crm, server, tokens, a, b = served
    with client(server, tokens, "mg") as mg:
        r = mg.post(f"{API}/complaints", json=complaint(a))
        assert r.status_code == 201, r.text
        normal = r.json()
        assert r.headers["location"] == f"{API}/complaints/{normal['id']}"
        assert normal["stage"] == "received" and normal["created_by"] == "mg"
        assert normal["next_due_at"] == normal["first_response_due_at"]
        urgent = mg.post(f"{API}/complaints", json=complaint(a, priority="urgent")).json()
        theirs = mg.post(f"{API}/complaints", json=complaint(b)).json()
        r = mg.post(f"{API}/complaints", json=complaint(a, channel="pigeon"))
        assert r.status_code == 422 and r.json()["field"] == "channel"
        r = mg.post(f"{API}/complaints", json={**complaint(a), "secret": 1})
        assert r.status_code == 422
        r = mg.get(f"{API}/complaints", params={"limit": 2})
        assert [c["id"] for c in r.json()] == [urgent["id"], normal["id"]]  # by SLA due
        link = r.headers["link"]
        r = mg.get(link[1 : link.index(">")])
        assert [c["id"] for c in r.json()] == [theirs["id"]] and "link" not in r.headers
        assert mg.get(f"{API}/complaints", params={"cursor": "x"}).status_code == 422
    with client(server, tokens, "rep_a") as rep:
        r = rep.get(f"{API}/complaints")
        assert [c["id"] for c in r.json()] == [urgent["id"], normal["id"]]
        r = rep.get(f"{API}/complaints", params={"priority": "urgent"})
        assert [c["id"] for c in r.json()] == [urgent["id"]]
        r = rep.get(f"{API}/complaints/{theirs['id']}")
        assert r.status_code == 404 and r.json()["detail"] == f"no complaint {theirs['id']}"
        r = rep.post(f"{API}/complaints/{theirs['id']}/replies", json={"body": "hi"})
        assert r.status_code == 404
        r = rep.post(f"{API}/complaints", json=complaint(b))
        assert r.status_code == 404
        r = rep.post(f"{API}/complaints/{normal['id']}/assignment", json={"assignee": "rep_a"})
        assert r.status_code == 403 and r.json()["permission"] == "complaints.assign"
        r = rep.post(f"{API}/complaints/{normal['id']}/transitions",
                     json={"to_stage": "acknowledged"})  # fmt: skip
        assert r.status_code == 201 and r.json()["stage"] == "acknowledged"
        r = rep.get(f"{API}/complaints/{normal['id']}")
        assert r.status_code == 200 and r.json()["complaint"]["stage"] == "acknowledged"
    with client(server, tokens, None) as anonymous:
        assert anonymous.get(f"{API}/complaints").status_code == 401
        r = anonymous.post(f"{API}/complaints", json=complaint(a))
        assert r.status_code == 401 and "bearer" in r.headers["www-authenticate"].lower()
    with crm.reading() as connection:
        count = connection.execute(text("SELECT count(*) FROM complaints")).scalar_one()
    assert count == 3


def test_public_status_and_survey_by_tracking_code(served: Any) -> None:
    crm, server, tokens, a, _ = served
    with client(server, tokens, "mg") as mg:
        c = mg.post(f"{API}/complaints", json=complaint(a, assignee="rep_a")).json()
        one = f"{API}/complaints/{c['id']}"
        assert mg.post(f"{one}/replies", json={"body": "Courier Zed lost it again",
                                                "public": False}).status_code == 201  # fmt: skip
        assert mg.post(f"{one}/replies", json={"body": "A new parcel is on its way."}
                       ).status_code == 201  # fmt: skip
        r = mg.post(f"{one}/replies", json={"body": "Signed.", "show_author": True})
        assert r.status_code == 201 and r.json()["author"] == "mg"
        detail = mg.get(one).json()
        assert [x["public"] for x in detail["replies"]] == [False, True, True]
    code = c["tracking_code"]
    with client(server, tokens, None) as anonymous:
        r = anonymous.get(f"{API}/status/{code}")
        assert r.status_code == 200, r.text
        status = r.json()
        assert status["stage"] == "received" and status["survey_open"] is False
        assert [x["body"] for x in status["replies"]] == ["A new parcel is on its way.", "Signed."]
        assert [x["author"] for x in status["replies"]] == [None, "Mona Manager"]
        for secret in ("Courier Zed", "rep_a", '"mg"', "assignee", "description",
                       "due_at", "customer_id", "Acme"):  # fmt: skip
            assert secret not in r.text
        assert anonymous.get(f"{API}/status/C-nosuchcode000000").status_code == 404
        r = anonymous.post(f"{API}/status/{code}/survey", json={"csat": 5, "nps": 10})
        assert r.status_code == 422  # not resolved yet
    with client(server, tokens, "mg") as mg:
        r = mg.post(f"{one}/transitions", json={"to_stage": "resolved"})
        assert r.status_code == 409  # a resolution is required
        r = mg.post(f"{one}/transitions", json={"to_stage": "resolved", "resolution": "Resent"})
        assert r.status_code == 201 and r.json()["stage"] == "resolved"
    with client(server, tokens, None) as anonymous:
        assert anonymous.get(f"{API}/status/{code}").json()["survey_open"] is True
        r = anonymous.post(f"{API}/status/{code}/survey", json={"csat": 9, "nps": 10})
        assert r.status_code == 422 and r.json()["field"] == "csat"
        r = anonymous.post(f"{API}/status/{code}/survey",
                           json={"csat": 5, "nps": 10, "comment": "Quick, thanks"})  # fmt: skip
        assert r.status_code == 201 and r.json()["csat"] == 5
        again = anonymous.post(f"{API}/status/{code}/survey", json={"csat": 1, "nps": 0})
        assert again.status_code == 409
        assert anonymous.get(f"{API}/status/{code}").json()["survey_open"] is False
    with crm.reading() as connection:
        rows = connection.execute(
            text("SELECT actor_kind, action FROM audit_log WHERE action LIKE 'complaints.%' "
                 "ORDER BY id")
        ).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        ("token", "complaints.log"), ("token", "complaints.note"), ("token", "complaints.reply"),
        ("token", "complaints.reply"), ("token", "complaints.move"),
        ("anonymous", "complaints.survey"),
    ]  # fmt: skip


def test_routes_are_in_the_openapi_document(served: Any) -> None:
    _, server, tokens, _, _ = served
    with client(server, tokens, "mg") as mg:
        paths = mg.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/complaints",
        "/complaints/{complaint_id}",
        "/complaints/{complaint_id}/transitions",
        "/complaints/{complaint_id}/replies",
        "/complaints/{complaint_id}/survey",
        "/complaints/{complaint_id}/assignment",
        "/status/{tracking_code}",
        "/status/{tracking_code}/survey",
    ):
        assert f"{API}{path}" in paths, sorted(paths)
