"""Generate the endpoint list of docs/api.md from the OpenAPI document.

    python -m crmkit.server.apidoc           # rewrite the generated part of docs/api.md
    python -m crmkit.server.apidoc --check   # exit 1 when docs/api.md is out of date
    python -m crmkit.server.apidoc --print   # print the generated part

The list is rendered from the same OpenAPI document the server serves at
``/api/v1/openapi.json`` (:mod:`crmkit.server.openapi`), for the core's routes only
(plugins' routes are in the document of a running server). The hand-written guide
around it stays as written: only the text between the two markers is replaced. A test
compares the file with this output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BEGIN = "<!-- BEGIN GENERATED ENDPOINTS: python -m crmkit.server.apidoc; do not edit -->"
END = "<!-- END GENERATED ENDPOINTS -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_METHODS = ("get", "post", "put", "patch", "delete")


def core_document() -> dict[str, Any]:
    """The OpenAPI document of the core's routes (no plugins, no database needed)."""
    from crmkit.server import dispatch, openapi
    from crmkit.server.api import core_routes

    mounted = [dispatch._mount(route, None) for route in core_routes()]
    return openapi.document(mounted, version="core")


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    ref = schema.get("$ref")
    if ref:
        return ref.rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        inner = _schema_name(schema.get("items"))
        return f"[{inner}]" if inner else "array"
    kinds = schema.get("anyOf") or schema.get("oneOf")
    if kinds:
        return " or ".join(n for n in (_schema_name(k) for k in kinds) if n)
    kind = schema.get("type")
    return kind if isinstance(kind, str) else "object"


def _body(operation: dict[str, Any]) -> str:
    content = (operation.get("requestBody") or {}).get("content") or {}
    if "application/json" in content:
        return _schema_name(content["application/json"].get("schema"))
    return ", ".join(sorted(content))


def _success(operation: dict[str, Any]) -> tuple[str, str]:
    responses = operation.get("responses") or {}
    for status in sorted(responses):
        if status.startswith("2"):
            content = (responses[status].get("content") or {}).get("application/json") or {}
            return status, _schema_name(content.get("schema"))
    return "", ""


def _query(operation: dict[str, Any]) -> str:
    names = [p["name"] for p in operation.get("parameters") or [] if p.get("in") == "query"]
    return ", ".join(f"`{n}`" for n in names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(document: dict[str, Any] | None = None) -> str:
    """The generated part: one table per tag, operations in the order they are declared."""
    doc = document if document is not None else core_document()
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in doc["paths"].items():
        for method in _METHODS:
            operation = methods.get(method)
            if operation is not None:
                for tag in operation.get("tags") or ["core"]:
                    by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    lines = [
        BEGIN,
        "",
        f"{sum(len(v) for v in by_tag.values())} operations under `/api/v1` (the core's; "
        "plugins add theirs under `/api/v1/<plugin>/`). The schemas are in "
        "`GET /api/v1/openapi.json`; `GET /api/v1/docs` renders it.",
        "",
    ]
    for tag, operations in by_tag.items():
        lines += [
            f"### {tag}",
            "",
            "| Method | Path | What | Query | Body | Answer |",
            "|---|---|---|---|---|---|",
        ]
        for method, path, operation in operations:
            status, response = _success(operation)
            answer = f"{status} {response}".strip()
            lines.append(
                f"| {method} | `{path}` | {_cell(operation.get('summary', ''))} | "
                f"{_query(operation)} | {_cell(_body(operation))} | {_cell(answer)} |"
            )
        lines.append("")
    lines += permission_table()
    lines.append(END)
    return "\n".join(lines) + "\n"


def permission_table() -> list[str]:
    """The core's permissions and the scope each default role holds them at (``own``:
    the member's customers, ``team``: their reports' too, ``all``; admin holds all)."""
    from crmkit.core.permissions import ADMIN_ROLE, CORE_PERMISSIONS

    roles: list[str] = []
    for spec in CORE_PERMISSIONS:
        roles += [r for r in spec.default_grants if r not in roles]
    roles.append(ADMIN_ROLE)
    lines = [
        "### Permissions of the default roles",
        "",
        "Each operation calls a service that checks one of these for the caller (a token: "
        "its staff member's roles, narrowed to its scopes). `own`: the customers the member "
        "owns; `team`: also those of everyone reporting to them; `all`: every customer. "
        "`[roles.<name>]` in crmkit.toml changes or adds roles; plugins add permissions.",
        "",
        "| Permission | Allows | " + " | ".join(roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for spec in CORE_PERMISSIONS:
        cells = [
            "all" if role == ADMIN_ROLE else spec.default_grants.get(role, "") for role in roles
        ]
        cells = [c if spec.scoped or not c else "yes" for c in cells]
        lines.append(f"| `{spec.name}` | {_cell(spec.description)} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def updated(text: str, generated: str) -> str:
    """``text`` with its generated part replaced (appended when it has none)."""
    start = text.find(BEGIN)
    stop = text.find(END)
    if start == -1 or stop == -1 or stop < start:
        return text.rstrip("\n") + "\n\n" + generated
    tail = text[stop + len(END) :].lstrip("\n")
    return text[:start] + generated + ("\n" + tail if tail else "")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    generated = render()
    if "--print" in args:
        sys.stdout.write(generated)
        return 0
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    wanted = updated(current, generated)
    if "--check" in args:
        if current != wanted:
            sys.stderr.write(f"{DOC} is out of date: run python -m crmkit.server.apidoc\n")
            return 1
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
