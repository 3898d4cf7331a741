"""The server framework, through a real ``crmkit serve`` process (SQLite and PostgreSQL):
health and readiness, request ids, body limits, authentication and CSRF, decoding and
problem documents, paging, idempotent POSTs (concurrent ones included), the access log."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
import time
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import attrs
import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

import crmkit
from crmkit.testing import LiveServer

T = "/api/v1/servertest"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    """The response is a well-formed problem document of ``slug``; returns it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    doc = response.json()
    assert doc["type"] == f"/api/v1/problems#{slug}"
    assert doc["status"] == status
    assert doc["title"] and doc["detail"]
    assert doc["request_id"] == response.headers["x-request-id"]
    assert doc["instance"].startswith("/")
    return doc


def test_healthz_readyz_and_security_headers(served: LiveServer) -> None:
    with served.client() as client:
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        api = client.get(f"{T}/whoami")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["referrer-policy"] == "no-referrer"
    assert api.headers["cache-control"] == "no-store"


def test_readyz_names_a_schema_not_upgraded(
    database_url: str,
    tmp_path: Path,
    live_server: Callable[..., LiveServer],
    config_writer: Callable[..., Path],
    server_env: dict[str, str],
) -> None:
    server = live_server(config_writer(tmp_path, database_url), env=server_env)
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        doc = assert_problem(client.get("/readyz"), 503, "not-ready")
        assert "schema not at head: run crmkit db upgrade" in doc["detail"]
        assert "warning: schema not at head: run crmkit db upgrade" in server.output()
        # the API answers 503 too rather than failing on missing tables
        assert_problem(client.get(f"{T}/whoami"), 503, "not-ready")
        # once upgraded, the same process becomes ready
        crmkit.open(database_url, plugins=[], upgrade=True).close()
        assert client.get("/readyz").status_code == 200
        assert client.get(f"{T}/whoami").status_code == 200


def test_request_id_kept_when_sane_else_generated(served: LiveServer) -> None:
    with served.client() as client:
        kept = client.get(f"{T}/whoami", headers={"X-Request-ID": "abc-123_x.y"})
        assert kept.headers["x-request-id"] == "abc-123_x.y"
        assert kept.json()["request_id"] == "abc-123_x.y"  # it reaches the handler
        for bad in ("has space", "x" * 65, "semi;colon", ""):
            fresh = client.get(f"{T}/whoami", headers={"X-Request-ID": bad})
            assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"]), bad
        none = client.get(f"{T}/whoami")
        assert re.fullmatch(r"[0-9a-f]{32}", none.headers["x-request-id"])
        assert none.json()["request_id"] == none.headers["x-request-id"]


def test_oversize_body_is_413(served: LiveServer) -> None:
    big = json.dumps({"name": "x" * 70000}).encode()
    with served.client() as client:
        doc = assert_problem(
            client.post(f"{T}/echo", content=big, headers={"content-type": "application/json"}),
            413, "payload-too-large",
        )  # fmt: skip
        assert doc["limit"] == 65536

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(20):
                yield b"x" * 8192

        assert_problem(
            client.post(f"{T}/echo", content=chunks(), headers={"content-type": "application/json"}),
            413, "payload-too-large",
        )  # fmt: skip
        assert_problem(client.post(f"{T}/stream", content=chunks()), 413, "payload-too-large")
        # under the limit the stream reaches the handler whole
        small = client.post(f"{T}/stream", content=iter([b"a" * 1000, b"b" * 500]))
        assert small.status_code == 200 and small.json() == {"bytes": 1500}


def test_authentication(
    served: LiveServer, staff_token: str, server_crm: crmkit.CRM, staff_password: str
) -> None:
    from crmkit.core import identity

    with served.client() as client:
        doc = assert_problem(client.get(f"{T}/private"), 401, "unauthenticated")
        assert "sign in" in doc["detail"]
        assert client.get(f"{T}/private").headers["www-authenticate"] == "Bearer"
        # identity is checked first: a bad query or body does not hide the 401
        assert_problem(client.get(f"{T}/private?bogus=1"), 401, "unauthenticated")
        bad_body = client.post(f"{T}/customers", content=b"{", headers={"content-type": "x/y"})
        assert_problem(bad_body, 401, "unauthenticated")
        for header in ("Bearer crm_nonsense", "Basic YW5uOng=", "Bearer", "Bearer a b"):
            r = client.get(f"{T}/private", headers={"Authorization": header})
            assert_problem(r, 401, "unauthenticated")
        ok = client.get(f"{T}/private", headers={"Authorization": f"Bearer {staff_token}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["actor"].startswith("token:") and ok.json()["kind"] == "token"
        assert ok.json()["crm_actor"] == ok.json()["actor"]  # bound for the service layer
        # public routes run as anonymous without credentials, as the caller with them
        assert client.get(f"{T}/whoami").json()["actor"] == "anonymous"

    session = identity.login(server_crm, "ann", staff_password)
    cookies = {"crmkit_session": session.session_token}
    with served.client(cookies=cookies) as browser:
        me = browser.get(f"{T}/private")
        assert me.status_code == 200 and me.json()["actor"] == "ann"
        doc = assert_problem(browser.post(f"{T}/private"), 403, "forbidden")
        assert "CSRF" in doc["detail"]
        wrong = browser.post(f"{T}/private", headers={"X-CSRF-Token": "nope"})
        assert_problem(wrong, 403, "forbidden")
        right = browser.post(f"{T}/private", headers={"X-CSRF-Token": session.csrf_token})
        assert right.status_code == 200 and right.json()["actor"] == "ann"
        form = browser.post(
            f"{T}/private",
            content=f"csrf_token={session.csrf_token}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 200, form.text
    with served.client(cookies={"crmkit_session": "expired-or-made-up"}) as stale:
        assert_problem(stale.get(f"{T}/private"), 401, "unauthenticated")
        # an ended session does not hide public routes
        assert stale.get(f"{T}/whoami").json()["actor"] == "anonymous"


def test_decoding_and_problem_documents(served: LiveServer) -> None:
    json_type = {"content-type": "application/json"}
    with served.client() as client:
        good = client.post(
            f"{T}/echo",
            json={
                "name": "Wang", "count": 3, "price": "12.50", "at": "2024-05-01T09:30:00+08:00",
                "day": "2024-05-01", "flag": True, "kind": "b", "tags": ["x"],
                "lines": [{"sku": "A", "amount": 2.5}], "extra": {"k": [1, "v"]},
            },
        )  # fmt: skip
        assert good.status_code == 200, good.text
        body = good.json()
        assert body["price"] == "12.50" and body["lines"][0]["amount"] == "2.5"
        assert body["at"] == "2024-05-01T09:30:00+08:00" and body["kind"] == "b"

        malformed = client.post(f"{T}/echo", content=b'{"name": ', headers=json_type)
        assert_problem(malformed, 400, "malformed-body")
        unknown = assert_problem(
            client.post(f"{T}/echo", json={"name": "x", "nmae": "y"}), 422, "unknown-field"
        )
        assert unknown["field"] == "nmae"
        nested = assert_problem(
            client.post(f"{T}/echo", json={"name": "x", "lines": [{"sku": "a", "amount": "1", "q": 1}]}),
            422, "unknown-field",
        )  # fmt: skip
        assert nested["field"] == "lines[0].q"
        wrong = assert_problem(
            client.post(f"{T}/echo", json={"name": "x", "count": "three"}), 422, "validation-error"
        )
        assert wrong["field"] == "count" and "integer" in wrong["detail"]
        missing = assert_problem(client.post(f"{T}/echo", json={}), 422, "validation-error")
        assert missing["field"] == "name"
        naive = assert_problem(
            client.post(f"{T}/echo", json={"name": "x", "at": "2024-05-01T09:30:00"}),
            422, "validation-error",
        )  # fmt: skip
        assert naive["field"] == "at" and "offset" in naive["detail"]
        literal = client.post(f"{T}/echo", json={"name": "x", "kind": "c"})
        assert assert_problem(literal, 422, "validation-error")["field"] == "kind"
        money = client.post(f"{T}/echo", json={"name": "x", "price": "ten"})
        assert assert_problem(money, 422, "validation-error")["field"] == "price"
        text = client.post(f"{T}/echo", content=b"name=x", headers={"content-type": "text/plain"})
        assert_problem(text, 415, "unsupported-media-type")
        assert_problem(client.post(f"{T}/echo"), 400, "malformed-body")
        not_object = client.post(f"{T}/echo", json=[1, 2])
        assert_problem(not_object, 422, "validation-error")

        route = assert_problem(client.get("/api/v1/no/such/thing"), 404, "not-found")
        assert "no/such/thing" in route["detail"]
        method = client.delete(f"{T}/echo")
        assert_problem(method, 405, "method-not-allowed")
        assert method.headers["allow"] == "POST"
        refused = assert_problem(client.get(f"{T}/refuse"), 422, "validation-error")
        assert refused["field"] == "name" and refused["detail"] == "the name is too silly"
        boom = assert_problem(client.get(f"{T}/boom"), 500, "internal-error")
        assert "secret" not in boom["detail"]
        assert set(boom) == {"type", "title", "status", "detail", "instance", "request_id"}
        query = assert_problem(client.get(f"{T}/items?limit=x"), 422, "validation-error")
        assert query["field"] == "limit"
        extra = assert_problem(client.get(f"{T}/items?bogus=1"), 422, "unknown-field")
        assert extra["field"] == "bogus"
    log = served.output()
    assert "secret internal detail" in log and boom["request_id"] in log  # traceback logged


HOSTILE_BODIES = [
    b'{"name": "x", "count": 1' + b"0" * 40 + b"}",  # beyond 64 bits
    b'{"name": "x", "count": ' + b"9" * 5000 + b"}",  # beyond Python's int parsing limit
    b'{"name": "x\\u0000y"}',  # NUL
    b'{"name": "\\ud800"}',  # a lone surrogate
    b'{"name": "x", "extra": ' + b"[" * 100000 + b"]" * 100000 + b"}",  # deeply nested
    b'{"name": "x", "extra": {"a": ' + b'{"a": ' * 50 + b"1" + b"}" * 51 + b"}",
    b'{"name": "\xff\xfe"}',  # not UTF-8
    b'{"name": "x", "price": NaN}',
    b'{"name": "x", "price": "1e999999"}',
    b'{"name": "x", "price": 1e999999}',
    b'{"name": "x", "price": "Infinity"}',
    b'{"name": "x", "at": "9999-99-99T99:99"}',
    b'{"name": "x", "day": 20240501}',
    b'{"name": "x", "flag": "yes"}',
    b'{"name": "x", "tags": "notalist"}',
    b'{"name": "x", "lines": [null]}',
    b'{"name": "x", "extra": {"\\u0000": 1}}',
    b'{"name": "x", "extra": {"n": 1' + b"0" * 30 + b"}}",
    b'{"name": "x"}' + b" " * 10 + b"trailing",
    b"\x00\x01\x02",
    b"null",
    b'"just a string"',
]


def test_hostile_bodies_get_4xx(served: LiveServer) -> None:
    with served.client() as client:
        for body in HOSTILE_BODIES:
            r = client.post(f"{T}/echo", content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:80], r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


def test_hostile_paths_queries_and_headers_get_4xx(served: LiveServer) -> None:
    raw_paths = [
        f"{T}/tagged/99999999999999999999999999",
        f"{T}/tagged/%00",
        f"{T}/tagged/%FF%FE",
        f"{T}/items?limit=%FF",
        f"{T}/items?limit=99999999999999999999999",
        f"{T}/items?cursor=%00",
        f"{T}/items?limit=1&limit=2",
        f"{T}/items?kind=%ED%A0%80",
        f"{T}/%ff/x",
        "/api/v1/%00",
    ]
    with served.client() as client:
        for path in raw_paths:
            r = client.get(httpx.URL(served.url + path))
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        headers_list = [
            {"Idempotency-Key": "x" * 201},
            {"Idempotency-Key": "tab\tkey"},
            {"Authorization": "Bearer " + "x" * 10000},
            {"Cookie": "crmkit_session=" + "y" * 3000},
            {"Accept-Language": "zz;q=abc,,;"},
            {"Content-Type": "application/json; charset=latin-1\x7f"},
        ]
        for headers in headers_list:
            r = client.post(f"{T}/open-customers", json={"name": "h"}, headers=headers)
            assert r.status_code < 500, (headers, r.status_code, r.text)


def test_pages_link_header_and_api_response(served: LiveServer) -> None:
    with served.client() as client:
        seen, url, pages = [], f"{T}/items?limit=3", 0
        while url:
            r = client.get(url)
            assert r.status_code == 200
            seen += [item["n"] for item in r.json()]
            pages += 1
            link = r.headers.get("link")
            url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
        assert seen == list(range(7)) and pages == 3
        # a datetime in a query string: its '+' sent unencoded arrives as a space
        for raw in (
            "2024-05-01T09:30:00+08:00",
            "2024-05-01T09:30:00%2B08:00",
            "2024-05-01T01:30Z",
        ):
            assert client.get(httpx.URL(f"{served.url}{T}/items?since={raw}")).status_code == 200
        naive = client.get(f"{T}/items", params={"since": "2024-05-01T09:30:00"})
        assert assert_problem(naive, 422, "validation-error")["field"] == "since"
        tagged = client.get(f"{T}/tagged/3")
        assert tagged.status_code == 201 and tagged.headers["etag"] == '"v7"'
        assert tagged.headers["x-test"] == "1"
        who = client.get(
            f"{T}/whoami", headers={"If-Match": 'W/"v12"', "Accept-Language": "zh-CN,en;q=0.5"}
        ).json()
        assert who["if_match"] == "v12" and who["language"] == "zh"
        assert (
            client.get(f"{T}/whoami", headers={"Accept-Language": "fr"}).json()["language"] == "en"
        )


def count_customers(crm: crmkit.CRM, name_prefix: str) -> int:
    import sqlalchemy as sa

    from crmkit.core.tables import customers

    with crm.reading() as connection:
        query = sa.select(sa.func.count()).where(customers.c.name.startswith(name_prefix))
        return int(connection.execute(query).scalar_one())


def test_idempotent_post_replays_and_refuses_reuse(
    served: LiveServer, server_crm: crmkit.CRM, staff_token: str
) -> None:
    auth = {"Authorization": f"Bearer {staff_token}"}
    key = {**auth, "Idempotency-Key": "order-2024-0001"}
    with served.client() as client:
        first = client.post(f"{T}/customers", json={"name": "Idem"}, headers=key)
        assert first.status_code == 201, first.text
        assert "idempotent-replayed" not in first.headers
        again = client.post(f"{T}/customers", json={"name": "Idem"}, headers=key)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert count_customers(server_crm, "Idem") == 2  # written once
        reused = client.post(f"{T}/customers", json={"name": "Other"}, headers=key)
        assert_problem(reused, 422, "idempotency-key-reused")
        assert count_customers(server_crm, "Other") == 0
        query = client.post(f"{T}/customers?x=1", json={"name": "Idem"}, headers=key)
        assert_problem(query, 422, "unknown-field")  # refused before the key is looked at
        # without a key, every POST writes
        client.post(f"{T}/customers", json={"name": "Idem"}, headers=auth)
        assert count_customers(server_crm, "Idem") == 4
        # a failed request stores nothing: the key stays free
        bad = {**auth, "Idempotency-Key": "failed-once"}
        assert client.post(f"{T}/customers", json={"name": 5}, headers=bad).status_code == 422
        later = client.post(f"{T}/customers", json={"name": "Late"}, headers=bad)
        assert later.status_code == 201 and "idempotent-replayed" not in later.headers
        # a malformed key is refused
        for wrong in ("", "x" * 201, "caf\u00e9".encode()):
            r = client.post(
                f"{T}/customers", json={"name": "Nope"}, headers={**auth, "Idempotency-Key": wrong}
            )
            assert_problem(r, 422, "validation-error")
        assert count_customers(server_crm, "Nope") == 0
        # public routes ignore the key (a sign-in's response must never be stored or shared)
        open_key = {"Idempotency-Key": "public-key"}
        for _ in range(2):
            r = client.post(f"{T}/open-customers", json={"name": "Open"}, headers=open_key)
            assert r.status_code == 201 and "idempotent-replayed" not in r.headers
        assert count_customers(server_crm, "Open") == 4


def test_concurrent_posts_with_one_key_write_once(
    served: LiveServer, server_crm: crmkit.CRM, staff_token: str
) -> None:
    """Real concurrent requests: the handler sleeps inside its transaction, so they overlap."""
    results: list[httpx.Response] = []
    barrier = threading.Barrier(4)
    headers = {"Authorization": f"Bearer {staff_token}", "Idempotency-Key": "race-key"}

    def post() -> None:
        with served.client() as client:
            barrier.wait()
            results.append(
                client.post(f"{T}/customers", json={"name": "Race", "sleep": 0.3}, headers=headers)
            )

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(r.status_code for r in results)
    assert len(results) == 4
    fresh = [r for r in results if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(fresh) == 1, [(r.status_code, dict(r.headers), r.text) for r in results]
    for r in results:
        if r is fresh[0]:
            continue
        if r.status_code == 409:
            assert "in progress" in r.json()["detail"]
        else:
            assert r.status_code == 201 and r.headers["idempotent-replayed"] == "true", statuses
            assert r.json() == fresh[0].json()
    assert count_customers(server_crm, "Race") == 2  # one request's two customers


def test_access_log_lines(served: LiveServer, staff_token: str) -> None:
    with served.client() as client:
        client.get(f"{T}/private", headers={"Authorization": f"Bearer {staff_token}",
                                            "X-Request-ID": "log-check-1"})  # fmt: skip
        client.post(f"{T}/echo", json={"name": "very-private-body-value"},
                    headers={"X-Request-ID": "log-check-2"})  # fmt: skip
    lines: dict[str, dict] = {}
    deadline = time.monotonic() + 10
    while "log-check-2" not in lines and time.monotonic() < deadline:
        time.sleep(0.05)  # a line is written once its response has gone out
        for line in served.output().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                lines[entry["request_id"]] = entry
    first = lines["log-check-1"]
    assert first["actor"].startswith("token:") and first["method"] == "GET"
    assert first["path"] == f"{T}/private" and first["status"] == 200
    assert isinstance(first["ms"], float) and first["staff_id"] is not None
    assert lines["log-check-2"]["actor"] == "anonymous"
    text = served.output()
    assert staff_token not in text and "very-private-body-value" not in text


# -- the codec alone: whatever the bytes, a decoded instance or a 4xx problem ------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "count",
                    "price",
                    "at",
                    "day",
                    "flag",
                    "kind",
                    "tags",
                    "lines",
                    "extra",
                    "sku",
                    "amount",
                    "other",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),  # fmt: skip
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_codec_decodes_or_refuses_with_a_4xx(value: object) -> None:
    from crmkit.server import codec
    from crmkit.server.problems import Problem

    plugin = _serverplugin()
    raw = json.dumps(value).encode()
    for cls in (plugin.EchoBody, plugin.ListQuery, plugin.CustomerBody):
        try:
            decoded = codec.decode_json(cls, raw)
        except Problem as problem:
            assert 400 <= problem.status < 500
        else:
            assert isinstance(decoded, cls)
            codec.encode(decoded)  # and what was decoded encodes again


@settings(max_examples=300, deadline=None)
@given(
    raw=st.binary(max_size=60),
    pairs=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4),
)
def test_codec_refuses_any_bytes_and_query_with_a_4xx(raw: bytes, pairs: list) -> None:
    from crmkit.server import codec
    from crmkit.server.problems import Problem

    plugin = _serverplugin()
    try:
        codec.decode_json(plugin.EchoBody, raw)
    except Problem as problem:
        assert 400 <= problem.status < 500
    try:
        codec.decode_query(plugin.ListQuery, pairs)
    except Problem as problem:
        assert 400 <= problem.status < 500


def _serverplugin() -> object:
    import importlib.util
    import sys

    name = "crmkit_test_serverplugin"
    if name not in sys.modules:
        path = Path(__file__).with_name("serverplugin.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@attrs.define
class _Pair:
    first: object
    second: object = None


@attrs.define
class _Typed:
    """Fields the encoder writes in place by annotation (any value may be in them)."""

    at: dt.datetime | None
    day: dt.date
    amount: Decimal | None
    _private: object = None


_leaves = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=6)
    | st.decimals(allow_nan=False, places=4) | st.datetimes(timezones=st.timezones() | st.just(dt.UTC))
    | st.dates() | st.floats(allow_nan=False, allow_infinity=False)
)  # fmt: skip
_trees = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.sets(st.integers(), max_size=3)
        | st.dictionaries(
            st.text(max_size=4) | st.integers() | st.booleans() | st.none() | st.dates(),
            children,
            max_size=4,
        )
        | st.builds(_Pair, children, children)
        | st.builds(_Typed, children, children, children, children)
    ),
    max_leaves=25,
)


def _floats_in(value: object) -> bool:
    if isinstance(value, float):
        return True
    if attrs.has(type(value)):
        return any(_floats_in(v) for v in attrs.astuple(value, recurse=False))
    if isinstance(value, dict):
        return any(_floats_in(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_floats_in(v) for v in value)
    return False


def _json_keys(value: object) -> object:
    """``value`` with each dict key that the json module takes (a number, true, null)
    spelled as it writes it; jsonable writes any other key as ``str(key)``."""
    if attrs.has(type(value)):
        return attrs.evolve(
            value,
            **{f.alias: _json_keys(getattr(value, f.name)) for f in attrs.fields(type(value))},
        )
    if isinstance(value, dict):
        return {
            json.dumps(k) if k is None or isinstance(k, int | float) else k: _json_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_keys(v) for v in value]
    return value


@settings(max_examples=300, deadline=None)
@given(value=_trees)
def test_encode_is_the_jsonable_tree_dumped(value: object) -> None:
    """codec.encode answers what dumping the tree crmkit.core.serialize.jsonable builds
    gives (entities, Decimal, times with any offset, sets, keys that are not text, big
    integers): byte for byte, but for floats, whose spelling may differ (1e-7, 1e-07)
    while their value does not."""
    from crmkit.core.serialize import jsonable
    from crmkit.server import codec

    expected = json.dumps(jsonable(_json_keys(value)), ensure_ascii=False, separators=(",", ":"))
    got = codec.encode(value)
    assert json.loads(got) == json.loads(expected)
    if not _floats_in(value):
        assert got == expected.encode("utf-8")


def test_encode_writes_infinities_as_null_and_keeps_the_offsets_seconds() -> None:
    """Infinity is not JSON (the json module wrote it); an offset with seconds (LMT, as
    zoneinfo gives for old dates) is written whole, as isoformat writes it."""
    from crmkit.server import codec

    assert codec.encode([math.inf, -math.inf, math.nan, 1.5]) == b"[null,null,null,1.5]"
    moment = dt.datetime(1900, 1, 1, 12, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert codec.encode({"at": moment}) == b'{"at":"1900-01-01T12:00:00+08:05:43"}'
    typed = _Typed(moment, moment.date(), Decimal("1.50"))  # written in place, by annotation
    assert codec.encode(typed) == (
        b'{"at":"1900-01-01T12:00:00+08:05:43","day":"1900-01-01","amount":"1.50","_private":null}'
    )


def test_new_request_ids_are_uuid4_hex() -> None:
    import uuid

    from crmkit.server.middleware import new_request_id

    made = {new_request_id() for _ in range(2000)}
    assert len(made) == 2000
    for text in made:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, text)


def test_customer_out_copies_every_field_by_name() -> None:
    """convert.customer_out builds CustomerOut by position: each of its fields holds the
    customer's field of the same name, whatever order either class lists them in."""
    import types

    from crmkit.core.entities import Customer
    from crmkit.server.api import convert, schemas

    names = [f.name for f in attrs.fields(schemas.CustomerOut)]
    assert set(names) <= {f.name for f in attrs.fields(Customer)}
    values = {name: f"<{name}>" for name in names}
    values.update(id=5, version=7, attributes={"tier": "gold"}, consents={"email": True})
    out = convert.customer_out(None, types.SimpleNamespace(**values))  # type: ignore[arg-type]
    assert {name: getattr(out, name) for name in names} == values
    assert convert.customer_out(None, types.SimpleNamespace(**values), 9).version == 9  # type: ignore[arg-type]
