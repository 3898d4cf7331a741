"""The knowledge base over HTTP: a real ``crmkit serve`` process on a loopback port, driven
with httpx, on both backends (routes, permissions per role, ETag/If-Match, paging,
problem documents, the public search without sign-in, audit entries with request ids)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from crmkit_knowledgebase import service

from crmkit.testing import run_cli

PLUGINS = ["knowledgebase"]
PREFIX = "/api/v1/knowledgebase"


def token(url: str, username: str) -> str:
    """An API token acting as ``username``, made as an operator would: ``crmkit token create``."""
    result = run_cli(
        ["token", "create", "--staff", username, "--scopes", "*", "--expires", "never",
         "--format", "json"],
        database=url, plugins=PLUGINS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["token"]


@pytest.fixture
def api(make_crm: Any, database_url: str, live_server: Any) -> Iterator[dict[str, Any]]:
    """A server with the knowledge base; clients acting as a technical support agent, a
    complaint handler, a sales rep and a manager; ``anonymous`` with no credentials."""
    crm = make_crm(plugins=PLUGINS)
    users = {"support": "technical_support", "handler": "complaint_handler",
             "rep": "sales_rep", "boss": "manager"}  # fmt: skip
    for name, role in users.items():
        crm.staff.add(name, roles=[role])
    kb = service(crm)
    kb.add("Refund policy", "Refunds within **14 days**.", slug="refund-policy",
           audience="public", status="published", tags=["refund"])  # fmt: skip
    for i in range(5):
        kb.add(f"Internal note {i}", f"note {i} about refunds", slug=f"note-{i}")
    server = live_server(database_url, env={"CRMKIT_PLUGINS": ",".join(PLUGINS)})
    clients = {
        name: server.client(headers={"Authorization": f"Bearer {token(database_url, name)}"})
        for name in users
    }
    clients["anonymous"] = server.client()
    try:
        yield {"crm": crm, **clients}
    finally:
        for client in clients.values():
            client.close()


def slug_of(problem: httpx.Response) -> str:
    assert problem.headers["content-type"].startswith("application/problem+json"), problem.text
    return problem.json()["type"].rsplit("#", 1)[-1]


def test_search_suggest_and_the_public_search(api: dict[str, Any]) -> None:
    rep, anonymous = api["rep"], api["anonymous"]
    found = rep.get(f"{PREFIX}/search", params={"q": "refund", "mode": "any"})
    assert found.status_code == 200, found.text
    assert {h["slug"] for h in found.json()} == {"refund-policy", *(f"note-{i}" for i in range(5))}
    assert found.json()[0]["slug"] == "refund-policy" and "<mark>" in found.json()[0]["snippet"]
    page = rep.get(f"{PREFIX}/search", params={"q": "refunds", "mode": "any", "limit": 2})
    assert len(page.json()) == 2 and 'rel="next"' in page.headers["link"]
    following = rep.get(page.links["next"]["url"])
    assert following.status_code == 200 and len(following.json()) == 2
    assert not {h["id"] for h in following.json()} & {h["id"] for h in page.json()}

    suggested = rep.post(f"{PREFIX}/suggest", json={"message": "I want a refund please"})
    assert suggested.status_code == 200, suggested.text
    assert suggested.json()[0]["ref"] == "refund-policy"
    assert slug_of(rep.post(f"{PREFIX}/suggest", json={"text": "refund"})) in (
        "unknown-field", "validation-error")  # fmt: skip

    # no sign-in: the public search answers, with published public articles only
    assert anonymous.get(f"{PREFIX}/search", params={"q": "refund"}).status_code == 401
    public = anonymous.get(f"{PREFIX}/public/search", params={"q": "refund"})
    assert public.status_code == 200, public.text
    assert [h["slug"] for h in public.json()] == ["refund-policy"]


def test_articles_create_read_patch_with_etags(api: dict[str, Any]) -> None:
    support, handler, rep = api["support"], api["handler"], api["rep"]
    created = handler.post(f"{PREFIX}/articles", json={"title": "Delivery", "body": "2 days"})
    assert created.status_code == 201, created.text
    article = created.json()
    assert (article["revision"], article["created_by"]) == (1, "handler")
    assert created.headers["etag"] == '"r1"'
    assert created.headers["location"].endswith(f"/articles/{article['id']}")
    path = f"{PREFIX}/articles/{article['id']}"

    got = rep.get(path)
    assert got.status_code == 200 and got.headers["etag"] == '"r1"'
    assert [r["number"] for r in got.json()["revisions"]] == [1]

    without = support.patch(path, json={"body": "3 days"})
    # the server refuses every PATCH without If-Match itself; nothing is written
    assert without.status_code == 428 and slug_of(without) == "precondition-required"
    assert "If-Match" in without.json()["detail"] and rep.get(path).json()["revision"] == 1
    edited = support.patch(path, json={"body": "3 days"}, headers={"If-Match": '"r1"'})
    assert edited.status_code == 200, edited.text
    assert edited.headers["etag"] == '"r2"' and edited.json()["updated_by"] == "support"
    stale = handler.patch(path, json={"body": "4 days"}, headers={"If-Match": '"r1"'})
    assert stale.status_code == 412 and slug_of(stale) == "precondition-failed"
    assert rep.get(path).json()["body"] == "3 days"
    revision = rep.get(f"{path}/revisions/1")
    assert revision.status_code == 200 and revision.json()["body"] == "2 days"

    # a complaint handler writes drafts but may not publish; a sales rep may not write
    refused = handler.patch(path, json={"status": "published"}, headers={"If-Match": '"r2"'})
    assert refused.status_code == 403 and refused.json()["permission"] == "knowledgebase.publish"
    denied = rep.post(f"{PREFIX}/articles", json={"title": "Mine"})
    assert denied.status_code == 403 and slug_of(denied) == "forbidden"
    published = support.patch(path, json={"status": "published"}, headers={"If-Match": '"r2"'})
    assert published.status_code == 200 and published.json()["revision"] == 3

    assert slug_of(rep.get(f"{PREFIX}/articles/no-such-article")) == "not-found"
    assert slug_of(support.post(f"{PREFIX}/articles", json={"title": 7})) == "validation-error"
    bad = support.post(f"{PREFIX}/articles", json={"title": "X", "status": "live"})
    assert bad.status_code == 422 and bad.json().get("field") == "status"
    assert api["anonymous"].get(path).status_code == 401


def test_article_list_pages_by_cursor(api: dict[str, Any]) -> None:
    rep = api["rep"]
    seen: list[int] = []
    response = rep.get(f"{PREFIX}/articles", params={"limit": 2})
    while True:
        assert response.status_code == 200, response.text
        seen += [a["id"] for a in response.json()]
        if "next" not in response.links:
            break
        response = rep.get(response.links["next"]["url"])
    assert len(seen) == 6 and seen == sorted(seen)
    drafts = rep.get(f"{PREFIX}/articles", params={"status": "draft"}).json()
    assert {a["slug"] for a in drafts} == {f"note-{i}" for i in range(5)}
    assert slug_of(rep.get(f"{PREFIX}/articles", params={"cursor": "nonsense!"})) in (
        "validation-error",)  # fmt: skip


def test_http_writes_are_audited_with_the_request_id(api: dict[str, Any]) -> None:
    created = api["support"].post(
        f"{PREFIX}/articles", json={"title": "Audited"}, headers={"X-Request-ID": "kb-req-1"}
    )
    assert created.status_code == 201, created.text
    entries = api["boss"].get("/api/v1/audit", params={"action": "kb_article.create"})
    assert entries.status_code == 200, entries.text
    (entry,) = [e for e in entries.json() if e["entity_id"] == str(created.json()["id"])]
    assert (entry["actor"], entry["request_id"]) == ("token:" + entry["actor"].split(":")[1]
                                                     + ":support", "kb-req-1")  # fmt: skip
