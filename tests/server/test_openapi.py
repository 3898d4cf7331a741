"""The OpenAPI 3.1 document, the HTML reference and the problem types, as served; and the
route table's refusal of two routes with one method and path."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import crmkit
from crmkit.errors import PluginError
from crmkit.server import dispatch
from crmkit.server.problems import TYPES
from crmkit.testing import LiveServer, start_server

T = "/api/v1/servertest"


@pytest.fixture(scope="module")
def document(served: LiveServer) -> dict:
    with served.client() as client:
        response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def resolve(doc: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith("#/components/schemas/")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_document_is_valid_openapi_31(document: dict) -> None:
    try:
        from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
    except ImportError:  # without schemathesis, the structural checks below still run
        OPENAPI_31_VALIDATOR = None  # noqa: N806
    if OPENAPI_31_VALIDATOR is not None:
        OPENAPI_31_VALIDATOR.validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"] == crmkit.__version__
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    # every $ref resolves
    text = repr(document)
    for name in set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text)):
        assert name in document["components"]["schemas"], name
    for path, ops in document["paths"].items():
        declared = set(re.findall(r"\{([^}]+)\}", path))
        for op in ops.values():
            in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert in_path == declared, (path, op["operationId"])
            for status, response in op["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]", status)
                assert response["description"]


def test_every_served_route_is_documented(
    document: dict,
    served_setup: object,
    server_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Core routes and the test plugin's, exactly as the route table mounts them."""
    from crmkit.server.app import extra_plugins

    monkeypatch.setenv("CRMKIT_EXTRA_PLUGINS", server_env["CRMKIT_EXTRA_PLUGINS"])
    crm = crmkit.open(served_setup.database_url, plugins=extra_plugins())  # type: ignore[attr-defined]
    try:
        mounted = dispatch.route_table(crm)
    finally:
        crm.close()
    served = {
        (m.route.method.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", m.path), m.operation_id)
        for m in mounted
    }
    documented = {
        (method, path, op["operationId"])
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }
    assert served == documented
    assert any(path.startswith(f"{T}/") for _, path, _ in documented)


def test_test_routes_are_documented(document: dict) -> None:
    paths = document["paths"]
    echo = paths[f"{T}/echo"]["post"]
    assert echo["operationId"] == "servertest_echo" and echo["summary"] == "Echo a body"
    assert echo["security"] == []  # public
    body = resolve(document, echo["requestBody"]["content"]["application/json"]["schema"])
    assert body["additionalProperties"] is False
    assert body["required"] == ["name"]
    props = body["properties"]
    assert props["name"] == {"type": "string"}
    assert props["count"]["type"] == "integer" and props["count"]["default"] == 1
    assert props["price"]["type"] == ["string", "null"] and "pattern" in props["price"]
    assert re.fullmatch(props["price"]["pattern"], "-12.50")
    assert props["at"] == {"type": ["string", "null"], "format": "date-time", "default": None}
    assert props["day"]["format"] == "date"
    assert props["kind"] == {"enum": ["a", "b"], "type": "string", "default": "a"}
    assert props["tags"]["type"] == "array" and props["tags"]["items"] == {"type": "string"}
    assert props["lines"]["items"] == {"$ref": "#/components/schemas/Line"}
    line = document["components"]["schemas"]["Line"]
    assert line["required"] == ["sku", "amount"]
    assert props["extra"]["type"] == "object"
    # public routes ignore Idempotency-Key; signed-in POSTs document it
    assert all(p["name"] != "Idempotency-Key" for p in echo["parameters"])
    add = paths[f"{T}/customers"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in add["parameters"])
    for status in ("400", "413", "415", "422", "500"):
        content = echo["responses"][status]["content"]["application/problem+json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "401" not in echo["responses"]  # public

    items = paths[f"{T}/items"]["get"]
    query = {p["name"]: p for p in items["parameters"] if p["in"] == "query"}
    assert set(query) == {"limit", "cursor", "kind", "since"}
    assert query["since"]["schema"]["format"] == "date-time"
    assert query["limit"]["required"] is False and query["limit"]["schema"]["default"] == 50
    ok = items["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Item"},
    }
    assert "Link" in ok["headers"]

    tagged = paths[f"{T}/tagged/{{n}}"]["get"]
    (n,) = [p for p in tagged["parameters"] if p["in"] == "path"]
    assert n["name"] == "n" and n["required"] is True and n["schema"]["type"] == "integer"

    private = paths[f"{T}/private"]["get"]
    assert "security" not in private  # the document's default: bearer or cookie
    assert {"401", "403"} <= set(private["responses"])
    assert document["security"] == [{"bearer": []}, {"cookie": []}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["cookie"]["in"] == "cookie" and schemes["cookie"]["name"] == "crmkit_session"

    created = paths[f"{T}/customers"]["post"]["responses"]
    assert "201" in created and "200" not in created
    stream = paths[f"{T}/stream"]["post"]["requestBody"]["content"]
    assert "text/csv" in stream


def test_docs_page_is_self_contained_and_escaped(served: LiveServer, document: dict) -> None:
    with served.client() as client:
        page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for op in ("servertest_echo", "servertest_items", "servertest_private_read"):
        assert f'id="{op}"' in html
    assert "<script" not in html  # the description's markup is escaped...
    assert "&lt;script&gt;alert(" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # ...and nothing external
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_problem_types_page(served: LiveServer) -> None:
    with served.client() as client:
        html = client.get("/api/v1/problems")
        listed = client.get("/api/v1/problems", headers={"Accept": "application/json"}).json()
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for slug in TYPES:
        assert f'id="{slug}"' in html.text
    by_type = {p["type"]: p for p in listed}
    assert by_type["/api/v1/problems#unknown-field"]["status"] == 422
    assert len(listed) == len(TYPES)
    for required in (
        "validation-error", "malformed-body", "unknown-field", "not-found", "conflict",
        "transition-refused", "forbidden", "unauthenticated", "precondition-failed",
        "precondition-required", "idempotency-key-reused", "payload-too-large",
        "unsupported-media-type", "method-not-allowed", "rate-limited", "internal-error",
    ):  # fmt: skip
        assert f"/api/v1/problems#{required}" in by_type


CLASH = """
import crmkit
from crmkit.plugin import Route

CRMKIT_NAME = "clashing"
CRMKIT_API = ">=1.3,<2"

def first(req):
    return {}

def second(req):
    return {}

@crmkit.hookimpl
def crmkit_register_routes():
    return [
        Route("GET", "/things/{thing_id:int}", first, "One thing"),
        Route("GET", "/things/{other:int}", second, "The same path again"),
    ]
"""


def test_two_routes_with_one_method_and_path_are_refused(
    tmp_path: Path, live_server: Callable[..., LiveServer]
) -> None:
    plugin = tmp_path / "clashing.py"
    plugin.write_text(textwrap.dedent(CLASH), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crmkit.open(url, plugins=[], upgrade=True).close()
    env = {"CRMKIT_EXTRA_PLUGINS": str(plugin), "CRMKIT_PLUGINS": ""}
    with pytest.raises(RuntimeError) as refused:
        start_server(url, env=env, timeout=60)
    message = str(refused.value)
    # one line from the command, before any worker starts
    assert "error: plugin 'clashing' declares GET /api/v1/clashing/things/{other:int}" in message
    assert "Traceback" not in message

    # the same check in-process, for the operation ids too
    from crmkit.server.routing import Route

    class Twice:
        CRMKIT_NAME = "twice"

        @crmkit.hookimpl
        def crmkit_register_routes(self) -> list[Route]:
            def same(req: object) -> dict:
                return {}

            return [Route("GET", "/a", same, "A"), Route("GET", "/b", same, "B")]

    crm = crmkit.open(url, plugins=[Twice()])
    try:
        with pytest.raises(PluginError, match="operation id 'twice_same'"):
            dispatch.route_table(crm)
    finally:
        crm.close()
