"""Interactions and orders over HTTP against a real ``crmkit serve`` process, on SQLite and
PostgreSQL: logging and adding, the CLI's filters, keyset cursor paging (records added
meanwhile never shift a page), Idempotency-Key on POST /orders, 404s and 422s."""

from __future__ import annotations

import base64
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
    folder = tmp_path_factory.mktemp(f"api-records-{request.param}")
    with running_api(request.param, folder) as running:
        yield running


def _customer(api: Api, **fields: Any) -> int:
    made = api.client.post("/customers", json={"name": "Buyer", **fields})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_log_and_list_interactions_with_filters_and_paging(api: Api) -> None:
    cid = _customer(api)
    other = _customer(api)
    ids = []
    # ten at one time (ties broken by id), five at later times
    times = ["2026-02-01T10:00:00+00:00"] * 10 + [
        f"2026-02-0{d}T10:00:00+08:00" for d in range(2, 7)
    ]
    for n, at in enumerate(times):
        logged = api.client.post(
            "/interactions",
            json={"customer_id": cid, "channel": "email" if n % 3 else "phone",
                  "occurred_at": at, "subject": f"about tea {n}", "direction": "outbound"},
        )  # fmt: skip
        assert logged.status_code == 201, logged.text
        assert logged.json()["staff"] == "boss"  # the signed-in member by default
        ids.append(logged.json()["id"])
    api.client.post("/interactions", json={"customer_id": other, "channel": "web"})

    expected = list(reversed(ids[10:])) + list(reversed(ids[:10]))
    items, pages = all_pages(api.client, "/interactions", customer=str(cid), limit=4)
    assert [i["id"] for i in items] == expected
    assert pages == 4
    nested, _ = all_pages(api.client, f"/customers/{cid}/interactions", limit=3)
    assert [i["id"] for i in nested] == expected

    # a page boundary inside the ten equal times; then a new, newer record: no shift
    first = api.client.get("/interactions", params={"customer": cid, "limit": 7})
    api.client.post("/interactions", json={"customer_id": cid, "channel": "chat",
                                           "occurred_at": "2026-03-01T00:00:00+00:00"})  # fmt: skip
    seen = [i["id"] for i in first.json()]
    following = first.links.get("next")
    while following:
        page = api.client.get(following["url"])
        seen += [i["id"] for i in page.json()]
        following = page.links.get("next")
    assert seen == expected

    phone, _ = all_pages(api.client, "/interactions", customer=cid, channel="phone")
    assert [i["id"] for i in phone] == [i for i in expected if ids.index(i) % 3 == 0]
    text, _ = all_pages(api.client, "/interactions", customer=cid, q="TEA 1")
    assert sorted(i["subject"] for i in text) == ["about tea 1", "about tea 10", "about tea 11",
                                                 "about tea 12", "about tea 13", "about tea 14"]  # fmt: skip
    window, _ = all_pages(
        api.client, "/interactions", customer=cid, since="2026-02-03", until="2026-02-05T10:00:00+08:00"
    )  # fmt: skip
    assert [i["subject"] for i in window] == ["about tea 12", "about tea 11"]
    by_staff, _ = all_pages(api.client, "/interactions", customer=cid, staff="nobody")
    assert by_staff == []

    one = api.client.get(f"/interactions/{ids[0]}")
    assert one.status_code == 200
    assert one.json()["occurred_at"] == "2026-02-01T10:00:00+00:00"


def test_interaction_refusals(api: Api) -> None:
    cid = _customer(api)
    key = f"ext-{uuid.uuid4().hex[:8]}"
    assert api.client.post("/interactions", json={"customer_id": cid, "channel": "web",
                                                  "external_id": key}).status_code == 201  # fmt: skip
    again = api.client.post("/interactions", json={"customer_id": cid, "channel": "web",
                                                   "external_id": key})  # fmt: skip
    assert again.status_code == 409
    for body in (
        {"customer_id": cid, "channel": "pigeon"},
        {"customer_id": cid},
        {"customer_id": cid, "channel": "web", "occurred_at": "2026-01-01T10:00:00"},
        {"customer_id": "x", "channel": "web"},
        {"customer_id": cid, "channel": "web", "mood": "good"},
    ):
        refused = api.client.post("/interactions", json=body)
        assert refused.status_code == 422, (body, refused.text)
    ghost = api.client.post("/interactions", json={"customer_id": 987654, "channel": "web"})
    assert ghost.status_code in (404, 422), ghost.text
    assert api.client.get("/interactions/987654").status_code == 404
    early = {"customer_id": cid, "channel": "web", "occurred_at": "0001-01-01T00:00:00+01:00"}
    assert api.client.post("/interactions", json=early).status_code == 422
    assert api.client.post("/orders", json={**early, "amount": "1"}).status_code == 422
    for state in ('{"at":"9999-12-31T23:59:59.999999+00:00","n":0}', '{"at":5,"n":0}',
                  '{"at":"2026-01-01T00:00:00+00:00","n":-1}', '{"o":1}', "[]",
                  '{"at":"2026-01-01T00:00:00+00:00","n":1000000000000000000000}'):  # fmt: skip
        cursor = base64.urlsafe_b64encode(state.encode()).decode().rstrip("=")
        for path in ("/interactions", "/orders", "/customers", "/audit", "/workflow-instances"):
            tampered = api.client.get(path, params={"cursor": cursor})
            assert tampered.status_code == 422, (path, state, tampered.text)
            assert tampered.json()["field"] == "cursor"
    for params in ({"channel": "pigeon"}, {"since": "yesterday"}, {"customer": "no-such"},
                   {"since": "0001-01-01T00:00:00+05:00"}, {"until": "2026-02-30"}):  # fmt: skip
        refused = api.client.get("/interactions", params=params)
        assert refused.status_code in (404, 422), (params, refused.text)


def test_orders_round_trip_filters_and_paging(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    cid = _customer(api, region=region, name=f"Tea House {region}")
    ids = []
    for n in range(6):
        added = api.client.post(
            "/orders",
            json={
                "customer_id": cid,
                "amount": "199.00" if n % 2 else "50.25",
                "cost": "20.00",
                "occurred_at": f"2026-01-0{n + 1}T12:00:00+00:00",
                "external_id": f"{region}-{n}",
                "channel": "web" if n < 3 else "store",
                "lines": [
                    {"product": "tea", "quantity": "1", "price": "199.00" if n % 2 else "50.25"}
                ],
            },
        )
        assert added.status_code == 201, added.text
        assert added.headers["location"] == f"/api/v1/orders/{added.json()['id']}"
        ids.append(added.json()["id"])
    got = api.client.get(f"/orders/{ids[1]}").json()
    assert got["amount"] == "199.00"
    assert got["margin"] == "179.00"
    assert got["currency"] == "EUR"
    assert got["lines"][0]["product"] == "tea"
    assert got["occurred_at"] == "2026-01-02T12:00:00+00:00"

    items, pages = all_pages(api.client, "/orders", region=region, limit=4)
    assert [o["id"] for o in items] == list(reversed(ids))
    assert pages == 2
    store, _ = all_pages(api.client, "/orders", region=region, channel="store")
    assert [o["id"] for o in store] == list(reversed(ids[3:]))
    text, _ = all_pages(api.client, "/orders", q=f"{region}-4")
    assert [o["id"] for o in text] == [ids[4]]
    dated, _ = all_pages(api.client, "/orders", customer=str(cid), since="2026-01-05")
    assert [o["id"] for o in dated] == [ids[5], ids[4]]

    refunded = api.client.post(f"/orders/{ids[0]}/status", json={"status": "refunded"})
    assert refunded.status_code == 200
    assert refunded.json()["status"] == "refunded"
    only, _ = all_pages(api.client, "/orders", region=region, status="refunded")
    assert [o["id"] for o in only] == [ids[0]]
    bad = api.client.post(f"/orders/{ids[0]}/status", json={"status": "lost"})
    assert bad.status_code == 422
    assert api.client.post("/orders/987654/status", json={"status": "paid"}).status_code == 404
    assert api.client.get("/orders/987654").status_code == 404


def test_an_added_order_answers_as_a_later_read(api: Api) -> None:
    """POST /orders answers without reading the order back: its body must still be what
    every later GET gives (money scale, UTC time, lines), whatever the input's form."""
    cid = _customer(api, region=f"r-{uuid.uuid4().hex[:8]}")
    for body in (
        {"customer_id": cid, "amount": "12.5", "cost": "0.0001",
         "occurred_at": "2026-03-01T08:30:00.123456+08:00",
         "lines": [{"product": "a", "quantity": "2.50", "price": "5"}]},
        {"customer_id": cid, "amount": "-3", "status": "refunded", "currency": "cny"},
        {"customer_id": cid, "amount": "1000000.1230", "cost": "7",
         "lines": [{"product": "b", "quantity": "3", "price": "333333.3743"},
                   {"product": "c", "price": "0.0001", "category": "x"}]},
    ):  # fmt: skip
        added = api.client.post("/orders", json=body)
        assert added.status_code == 201, added.text
        assert api.client.get(f"/orders/{added.json()['id']}").json() == added.json()


def test_order_refusals_store_nothing(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    cid = _customer(api, region=region)
    for body in (
        {"customer_id": cid, "amount": "12,50"},
        {"customer_id": cid, "amount": "-5"},  # negative only when refunded
        {"customer_id": cid, "amount": "10", "lines": [{"product": "a", "price": "3"}]},
        {"customer_id": cid, "amount": "10", "currency": "euro"},
        {"customer_id": cid, "amount": "10", "status": "stolen"},
        {"customer_id": cid, "amount": "10", "lines": [{"product": "a", "colour": "red"}]},
        {"customer_id": cid},
    ):
        refused = api.client.post("/orders", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert problem_type(refused) in ("validation-error", "unknown-field")
    assert api.client.get("/orders", params={"region": region}).json() == []


def test_idempotency_key_on_post_orders(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    cid = _customer(api, region=region)
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    sent = {"customer_id": cid, "amount": "75.00"}
    first = api.client.post("/orders", json=sent, headers=key)
    second = api.client.post("/orders", json=sent, headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert len(api.client.get("/orders", params={"region": region}).json()) == 1
    reused = api.client.post("/orders", json={**sent, "amount": "76.00"}, headers=key)
    assert reused.status_code == 422
    assert problem_type(reused) == "idempotency-key-reused"
    assert len(api.client.get("/orders", params={"region": region}).json()) == 1


def test_a_sales_rep_sees_only_their_own_customers_records(api: Api) -> None:
    region = f"r-{uuid.uuid4().hex[:8]}"
    mine = _customer(api, region=region, owner="rep_a")
    other = _customer(api, region=region, owner="boss")
    records = {}
    for cid in (mine, other):
        order = api.client.post("/orders", json={"customer_id": cid, "amount": "5.00"})
        logged = api.client.post("/interactions", json={"customer_id": cid, "channel": "web"})
        assert order.status_code == logged.status_code == 201
        records[cid] = (order.json()["id"], logged.json()["id"])

    seen = api.rep.get("/customers", params={"region": region})
    assert [c["id"] for c in seen.json()] == [mine]
    orders = api.rep.get("/orders", params={"region": region})
    assert [o["customer_id"] for o in orders.json()] == [mine]
    assert api.rep.get(f"/orders/{records[mine][0]}").status_code == 200
    assert api.rep.get(f"/interactions/{records[mine][1]}").status_code == 200
    for path in (f"/customers/{other}", f"/customers/{other}/360", f"/orders/{records[other][0]}",
                 f"/interactions/{records[other][1]}", f"/customers/{other}/interactions",
                 f"/customers/{other}/consent"):  # fmt: skip
        hidden = api.rep.get(path)
        assert hidden.status_code == 404, (path, hidden.text)
        assert problem_type(hidden) == "not-found"
    refused = api.rep.post("/orders", json={"customer_id": other, "amount": "1.00"})
    assert refused.status_code in (404, 422), refused.text
    assert len(api.client.get("/orders", params={"customer": other}).json()) == 1
