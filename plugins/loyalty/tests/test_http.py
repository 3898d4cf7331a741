"""The loyalty routes against a real ``crmkit serve`` process (SQLite and PostgreSQL):
sign-in, scopes (another rep's member is 404), permissions (403), paging, idempotent
writes and their audit entries with the request id."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty.plugin import EXAMPLES
from crmkit_loyalty.testing import at, pay
from sqlalchemy import text

from crmkit.testing import run_cli

API = "/api/v1/loyalty"


def token(url: str, username: str) -> str:
    r = run_cli(
        ["token", "create", "--staff", username, "--scopes", "*", "--expires", "never",
         "--format", "json"],
        database=url, plugins=["loyalty"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["token"]


@pytest.fixture
def served(make_crm: Any, database_url: str, live_server: Any) -> Any:
    crm = make_crm(plugins=["loyalty"])
    crm.staff.add("rep_a", "Rep A", roles=["sales_rep"])
    crm.staff.add("rep_b", "Rep B", roles=["sales_rep"])
    crm.staff.add("mg", "Manager", roles=["manager"])
    service = loyalty(crm)
    service.load_program_file(EXAMPLES / "retail_club.toml")
    a = crm.customers.add(name="Acme Ann", owner="rep_a").id
    b = crm.customers.add(name="Bolt Bob", owner="rep_b").id
    for customer_id in (a, b):
        service.enrol(customer_id)
    pay(crm, a, "2000.00", at(2026, 3, 1))
    tokens = {u: token(database_url, u) for u in ("rep_a", "mg")}
    server = live_server(database_url, env={"CRMKIT_PLUGINS": "loyalty"})
    return crm, server, tokens, a, b


def client(server: Any, tokens: dict[str, str], username: str | None) -> Any:
    headers = {"Authorization": f"Bearer {tokens[username]}"} if username else {}
    return server.client(headers=headers)


def test_members_balance_statement_and_scopes(served: Any) -> None:
    crm, server, tokens, a, b = served
    with client(server, tokens, None) as anonymous:
        r = anonymous.get(f"{API}/members")
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    with client(server, tokens, "rep_a") as rep:
        r = rep.get(f"{API}/members")
        assert r.status_code == 200 and [m["customer_id"] for m in r.json()] == [a]
        r = rep.get(f"{API}/members/{b}")
        assert r.status_code == 404 and r.json()["type"].endswith("#not-found")
        assert str(b) in r.json()["detail"] and "Bolt" not in r.text
        r = rep.get(f"{API}/members/999999/balance")
        assert r.status_code == 404
        r = rep.get(f"{API}/members/{a}/balance")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["balance"] == loyalty(crm).balance(a) and body["program"] == "retail-club"
        assert isinstance(body["value"], str) and isinstance(body["discount"], str)
        r = rep.get(f"{API}/members/{a}/statement")
        assert r.status_code == 200
        statement = r.json()
        assert statement["entries"][-1]["balance"] == statement["balance"] == body["balance"]
        assert statement["entries"][0]["occurred_at"].endswith("+00:00")
        r = rep.get(f"{API}/rewards")
        assert r.status_code == 200 and "voucher-5" in [x["code"] for x in r.json()]
    with client(server, tokens, "mg") as mg:
        r = mg.get(f"{API}/members", params={"limit": 1})
        assert [m["customer_id"] for m in r.json()] == [a]
        link = r.headers["link"]
        assert link.endswith('>; rel="next"')
        r = mg.get(link[1 : link.index(">")])
        assert [m["customer_id"] for m in r.json()] == [b] and "link" not in r.headers
        assert mg.get(f"{API}/members", params={"cursor": "nonsense"}).status_code == 422
        assert mg.get(f"{API}/members", params={"limit": 0}).status_code == 422


def test_adjust_is_a_managers_and_idempotent(served: Any) -> None:
    crm, server, tokens, a, b = served
    service = loyalty(crm)
    before = service.balance(a)
    with client(server, tokens, "rep_a") as rep:
        r = rep.post(f"{API}/members/{a}/adjust", json={"points": 100000, "reason": "test"})
        assert r.status_code == 403 and r.json()["permission"] == "loyalty.adjust"
        r = rep.post(f"{API}/members/{b}/redeem", json={"reward": "voucher-5"})
        assert r.status_code == 404
        r = rep.post(f"{API}/members/{a}/redeem", json={"reward": "voucher-5", "extra": 1})
        assert r.status_code == 422
    assert service.balance(a) == before
    with client(server, tokens, "mg") as mg:
        headers = {"Idempotency-Key": "adjust-1", "X-Request-ID": "req-adjust-1"}
        body = {"points": 250, "reason": "damaged parcel"}
        first = mg.post(f"{API}/members/{a}/adjust", json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert first.json()["balance"] == before + 250
        assert first.json()["entry"]["staff"] == "mg"
        again = mg.post(f"{API}/members/{a}/adjust", json=body, headers=headers)
        assert again.status_code == 201 and again.json() == first.json()
        assert again.headers.get("idempotent-replayed") == "true"
        other = mg.post(f"{API}/members/{a}/adjust", json={**body, "points": 1}, headers=headers)
        assert other.status_code == 422
        r = mg.post(f"{API}/members/{a}/adjust", json={"points": "many", "reason": "x"})
        assert r.status_code == 422 and r.json()["field"] == "points"
        r = mg.post(f"{API}/members/{a}/adjust", json={"points": 2**62, "reason": "x"})
        assert r.status_code == 422 and r.json()["field"] == "points"
    assert service.balance(a) == before + 250
    with crm.reading() as connection:
        rows = connection.execute(
            text("SELECT actor, request_id, customer_id FROM audit_log WHERE action = :a"),
            {"a": "loyalty.adjust"},
        ).all()
    assert [tuple(r) for r in rows] == [(f"token:{_token_id(crm, 'mg')}:mg", "req-adjust-1", a)]


def _token_id(crm: Any, username: str) -> int:
    with crm.reading() as connection:
        return connection.execute(
            text(
                "SELECT t.id FROM api_tokens t JOIN staff s ON s.id = t.staff_id "
                "WHERE s.username = :u"
            ),
            {"u": username},
        ).scalar_one()


def test_redeem_and_earn_over_http(served: Any) -> None:
    crm, server, tokens, a, b = served
    service = loyalty(crm)
    before = service.balance(a)
    with client(server, tokens, "rep_a") as rep:
        r = rep.post(f"{API}/members/{a}/redeem", json={"reward": "voucher-5"})
        assert r.status_code == 201, r.text
        assert r.json()["balance"] == before - 500 and r.json()["entry"]["points"] == -500
        r = rep.post(f"{API}/members/{a}/redeem", json={"reward": "coffee-machine"})
        assert r.status_code == 422  # not enough points: nothing written
        r = rep.post(f"{API}/members/{a}/earn", json={})
        assert r.status_code == 200 and r.json()["points"] == 0  # every order earned already
    assert service.balance(a) == before - 500
    with crm.reading() as connection:
        actions = connection.execute(
            text("SELECT action FROM audit_log WHERE actor LIKE 'token:%' ORDER BY id")
        ).scalars().all()  # fmt: skip
    assert actions == ["loyalty.redeem"]


def test_routes_are_in_the_openapi_document(served: Any) -> None:
    _, server, tokens, _, _ = served
    with client(server, tokens, "mg") as mg:
        paths = mg.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/members",
        "/members/{customer_id}",
        "/members/{customer_id}/balance",
        "/members/{customer_id}/statement",
        "/members/{customer_id}/earn",
        "/members/{customer_id}/redeem",
        "/members/{customer_id}/adjust",
        "/rewards",
    ):
        assert f"{API}{path}" in paths, sorted(paths)
