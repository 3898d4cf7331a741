"""Customers, contacts and consent over HTTP against a real ``crmkit serve`` process, on
SQLite and PostgreSQL: round trips, typed attributes, filters and cursor paging with Link,
ETag/If-Match (428, 412 with nothing written, the ETag bumped), Idempotency-Key, the 360
view, timeline, export and erasure, 404s and 422s."""

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

ATTRIBUTES = """
[attributes.vip]
type = "boolean"

[attributes.credit_limit]
type = "decimal"

[attributes.tier]
type = "choice"
choices = ["gold", "silver"]
"""


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp(f"api-customers-{request.param}")
    with running_api(request.param, folder, config_extra=ATTRIBUTES) as running:
        yield running


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def test_customer_round_trip_with_typed_attributes(api: Api) -> None:
    tag = _tag()
    sent = {
        "name": "Li Na",
        "email": f"li.{tag}@example.com",
        "region": f"r-{tag}",
        "birth_date": "1980-04-30",
        "attributes": {"vip": "yes", "credit_limit": "1500.50", "tier": "gold", "note": "x"},
        "consents": {"marketing": True},
    }
    created = api.client.post("/customers", json=sent)
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/api/v1/customers/{body['id']}"
    assert created.headers["etag"] == '"v1"'
    assert body["attributes"] == {
        "vip": True, "credit_limit": "1500.50", "tier": "gold", "note": "x",
    }  # fmt: skip
    assert body["birth_date"] == "1980-04-30"
    assert body["consents"] == {"marketing": True}
    assert body["created_at"].endswith("+00:00")

    got = api.client.get(f"/customers/{body['id']}")
    assert got.status_code == 200
    assert got.headers["etag"] == '"v1"'
    assert got.json() == body

    listed = api.client.get("/attributes").json()
    assert {a["name"]: a["type"] for a in listed} == {
        "credit_limit": "decimal", "tier": "choice", "vip": "boolean",
    }  # fmt: skip

    wrong = api.client.post("/customers", json={"name": "X", "attributes": {"tier": "bronze"}})
    assert wrong.status_code == 422
    assert problem_type(wrong) == "validation-error"
    assert wrong.json()["field"] == "tier"


def test_patch_needs_if_match_and_refuses_a_stale_one(api: Api) -> None:
    made = api.client.post("/customers", json={"name": "Wang", "phone": "1"}).json()
    one = f"/customers/{made['id']}"

    missing = api.client.patch(one, json={"phone": "2"})
    assert missing.status_code == 428
    assert problem_type(missing) == "precondition-required"

    wrong = api.client.patch(one, json={"phone": "2"}, headers={"If-Match": '"v7"'})
    assert wrong.status_code == 412
    assert problem_type(wrong) == "precondition-failed"
    assert api.client.get(one).json()["phone"] == "1"  # nothing written

    etag = api.client.get(one).headers["etag"]
    changed = api.client.patch(
        one,
        json={"phone": "2", "attributes": {"vip": False, "credit_limit": "10"}},
        headers={"If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["phone"] == "2"
    assert changed.json()["attributes"] == {"vip": False, "credit_limit": "10"}
    assert changed.headers["etag"] != etag
    assert changed.headers["etag"] == '"v2"'
    assert changed.json()["version"] == 2

    stale = api.client.patch(one, json={"phone": "3"}, headers={"If-Match": etag})
    assert stale.status_code == 412
    after = api.client.get(one)
    assert after.json()["phone"] == "2"
    assert after.headers["etag"] == changed.headers["etag"]

    cleared = api.client.patch(
        one, json={"phone": "", "attributes": {"vip": None}}, headers={"If-Match": after.headers["etag"]}
    )  # fmt: skip
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["phone"] is None
    assert "vip" not in cleared.json()["attributes"]


def test_list_filters_and_cursor_paging(api: Api) -> None:
    region = f"r-{_tag()}"
    ids = []
    for n in range(7):
        made = api.client.post(
            "/customers",
            json={
                "name": f"Paged {n}",
                "region": region,
                "status": "lead" if n % 2 else "active",
                "attributes": {"vip": n < 3},
                "consents": {"marketing": n == 4},
            },
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])

    first = api.client.get("/customers", params={"region": region, "limit": 3})
    assert first.status_code == 200
    assert [c["id"] for c in first.json()] == ids[:3]
    link = first.headers["link"]
    assert link.startswith("<") and link.endswith('>; rel="next"')
    items, pages = all_pages(api.client, "/customers", region=region, limit=3)
    assert [c["id"] for c in items] == ids
    assert pages == 3
    last = api.client.get("/customers", params={"region": region, "limit": 7})
    assert "link" not in last.headers

    leads, _ = all_pages(api.client, "/customers", region=region, status="lead")
    assert [c["id"] for c in leads] == ids[1::2]
    vips, _ = all_pages(api.client, "/customers", region=region, attr="vip:true")
    assert [c["id"] for c in vips] == ids[:3]
    both = api.client.get("/customers", params=[("region", region), ("attr", "vip:true"),
                                                ("attr", "credit_limit:5")])  # fmt: skip
    assert both.json() == []
    consenting, _ = all_pages(api.client, "/customers", region=region, consent="marketing")
    assert [c["id"] for c in consenting] == [ids[4]]
    text, _ = all_pages(api.client, "/customers", region=region, q="paged 6")
    assert [c["id"] for c in text] == [ids[6]]

    for params, field in (
        ({"status": "gone"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"attr": "novalue"}, "attr"),
        ({"attr": "vip:perhaps"}, "vip"),
    ):
        refused = api.client.get("/customers", params=params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.json().get("field") == field, refused.text
    unknown = api.client.get("/customers", params={"colour": "red"})
    assert unknown.status_code == 422
    assert problem_type(unknown) == "unknown-field"


def test_idempotency_key_on_post_customers(api: Api) -> None:
    region = f"r-{_tag()}"
    key = {"Idempotency-Key": f"k-{_tag()}"}
    sent = {"name": "Once", "region": region}
    first = api.client.post("/customers", json=sent, headers=key)
    again = api.client.post("/customers", json=sent, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert len(api.client.get("/customers", params={"region": region}).json()) == 1
    other = api.client.post("/customers", json={**sent, "name": "Twice"}, headers=key)
    assert other.status_code == 422
    assert problem_type(other) == "idempotency-key-reused"
    assert len(api.client.get("/customers", params={"region": region}).json()) == 1


def test_unknown_ids_and_bad_bodies(api: Api) -> None:
    for path in ("/customers/987654", "/customers/987654/360", "/customers/987654/timeline",
                 "/customers/987654/consent", "/customers/987654/contacts",
                 "/contacts/987654"):  # fmt: skip
        missing = api.client.get(path)
        assert missing.status_code == 404, (path, missing.text)
        assert problem_type(missing) == "not-found"
    gone = api.client.patch("/customers/987654", json={"name": "x"}, headers={"If-Match": '"v1"'})
    assert gone.status_code == 404

    for body, slug in (
        ({}, "validation-error"),  # name is required
        ({"name": "x", "colour": "red"}, "unknown-field"),
        ({"name": 5}, "validation-error"),
        ({"name": "x", "email": "not-an-address"}, "validation-error"),
        ({"name": "x", "status": "gone"}, "validation-error"),
        ({"name": "x", "birth_date": "30/04/1980"}, "validation-error"),
        ({"name": "x", "owner": "nobody"}, "validation-error"),
        ({"name": ""}, "validation-error"),
    ):
        refused = api.client.post("/customers", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert problem_type(refused) == slug
    malformed = api.client.post(
        "/customers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    made = api.client.post("/customers", json={"name": "Edit me"}).json()
    etag = api.client.get(f"/customers/{made['id']}").headers["etag"]
    for body in ({}, {"name": ""}, {"status": ""}, {"email": "nope"}, {"nick": "x"}):
        refused = api.client.patch(
            f"/customers/{made['id']}", json=body, headers={"If-Match": etag}
        )
        assert refused.status_code == 422, (body, refused.text)
    assert api.client.get(f"/customers/{made['id']}").headers["etag"] == etag


def test_contacts_with_content_etags(api: Api) -> None:
    org = api.client.post("/customers", json={"name": "Acme", "type": "organisation"}).json()
    person = api.client.post("/customers", json={"name": "Solo"}).json()
    refused = api.client.post(f"/customers/{person['id']}/contacts", json={"name": "Bob"})
    assert refused.status_code == 422

    added = api.client.post(
        f"/customers/{org['id']}/contacts", json={"name": "Bob", "email": "bob@acme.example"}
    )
    assert added.status_code == 201, added.text
    contact = added.json()
    one = f"/contacts/{contact['id']}"
    assert api.client.get(f"/customers/{org['id']}/contacts").json() == [contact]
    got = api.client.get(one)
    assert got.headers["etag"] == f'"{contact["etag"]}"'

    assert api.client.patch(one, json={"role": "buyer"}).status_code == 428
    changed = api.client.patch(
        one, json={"role": "buyer"}, headers={"If-Match": got.headers["etag"]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "buyer"
    assert changed.headers["etag"] != got.headers["etag"]
    stale = api.client.patch(
        one, json={"role": "seller"}, headers={"If-Match": got.headers["etag"]}
    )
    assert stale.status_code == 412
    assert api.client.get(one).json()["role"] == "buyer"

    stale_delete = api.client.delete(one, headers={"If-Match": got.headers["etag"]})
    assert stale_delete.status_code == 412
    removed = api.client.delete(one, headers={"If-Match": changed.headers["etag"]})
    assert removed.status_code == 204
    assert api.client.get(one).status_code == 404
    assert api.client.get(f"/customers/{org['id']}/contacts").json() == []


def test_consent_history(api: Api) -> None:
    made = api.client.post("/customers", json={"name": "Asked", "consents": {"marketing": True}})
    path = f"/customers/{made.json()['id']}/consent"
    withdrawn = api.client.post(
        path, json={"purpose": "marketing", "granted": False, "source": "phone"}
    )
    assert withdrawn.status_code == 201, withdrawn.text
    data = api.client.get(path).json()
    assert data["latest"] == {"marketing": False}
    assert [(h["purpose"], h["granted"], h["source"]) for h in data["history"]] == [
        ("marketing", True, "api"),
        ("marketing", False, "phone"),
    ]
    assert data["history"][1]["actor"] == "boss"
    assert api.client.post(path, json={"purpose": "marketing"}).status_code == 422


def test_360_timeline_export_and_erasure(api: Api) -> None:
    made = api.client.post(
        "/customers", json={"name": "Whole", "email": "whole@example.com", "phone": "555"}
    ).json()
    cid = made["id"]
    for n in range(3):
        logged = api.client.post(
            "/interactions",
            json={"customer_id": cid, "channel": "phone", "subject": f"call {n}",
                  "occurred_at": f"2026-01-0{n + 1}T09:00:00+08:00"},
        )  # fmt: skip
        assert logged.status_code == 201, logged.text
    order = api.client.post("/orders", json={"customer_id": cid, "amount": "99.90"})
    assert order.status_code == 201, order.text

    view = api.client.get(f"/customers/{cid}/360")
    assert view.status_code == 200, view.text
    data = view.json()
    assert data["customer"]["id"] == cid
    assert data["totals"]["paid_orders"] == 1
    assert data["totals"]["revenue"] == "99.90"
    assert [i["title"] for i in data["timeline"]] == ["call 2", "call 1", "call 0"]
    assert [o["amount"] for o in data["orders"]] == ["99.90"]
    assert data["analyses"] == {"included": True, "reason": None}
    assert isinstance(data["sections"], list)

    timeline = api.client.get(f"/customers/{cid}/timeline", params={"limit": 2}).json()
    assert [t["title"] for t in timeline] == ["call 2", "call 1"]
    assert timeline[0]["at"] == "2026-01-03T01:00:00+00:00"

    exported = api.client.get(f"/customers/{cid}/export")
    assert exported.status_code == 200
    assert exported.json()["customer"]["email"] == "whole@example.com"

    assert api.client.post(f"/customers/{cid}/erase", json={"confirm": False}).status_code == 422
    assert api.client.get(f"/customers/{cid}").json()["email"] == "whole@example.com"
    erased = api.client.post(f"/customers/{cid}/erase", json={"confirm": True})
    assert erased.status_code == 200, erased.text
    assert erased.json()["again"] is False
    after = api.client.get(f"/customers/{cid}").json()
    assert after["erased_at"] is not None
    assert after["email"] is None
    refused = api.client.post("/orders", json={"customer_id": cid, "amount": "1.00"})
    assert refused.status_code == 409
    assert problem_type(refused) == "conflict"
