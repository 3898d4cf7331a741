"""The OpenAPI 3.1 document, generated from the route table and its attrs classes.

Nothing here is written by hand: paths, operation ids and parameters come from each
:class:`~crmkit.server.routing.Route` (path converters, the ``query`` class's fields),
request bodies from its ``body`` class (``additionalProperties: false``: the server refuses
unknown fields), responses from its ``response`` class (``list[Cls]`` is an array; a
``Link`` header pages it) and the problem documents every operation may answer with,
which share one ``Problem`` schema. JSON Schema for attrs classes: field types, required
fields (no default), defaults, nullable as ``type: [..., "null"]``, Decimal as a string
with a pattern, datetimes as ``date-time`` strings, Literal as ``enum``.

Also served: ``GET /api/v1/docs``, a self-contained HTML reference rendered from the
document with Jinja2 (no script or stylesheet from a CDN), and ``GET /api/v1/problems``,
the problem types (HTML, or JSON for ``Accept: application/json``).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import types
import typing
from decimal import Decimal
from typing import Any

import attrs
from jinja2 import Environment, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

from crmkit.core.serialize import jsonable
from crmkit.server import codec
from crmkit.server.dispatch import API_PREFIX, SESSION_COOKIE, Mounted
from crmkit.server.problems import MEDIA_TYPE, TYPE_PREFIX, TYPES

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_CONVERTER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_PATH_TYPES = {
    None: {"type": "string"},
    "str": {"type": "string"},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0, "maximum": codec.INT_MAX},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer", "minimum": codec.INT_MIN, "maximum": codec.INT_MAX},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    Decimal: {"type": "string", "pattern": DECIMAL_PATTERN},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
}

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error (RFC 9457); 'type' tells errors apart, see /api/v1/problems.",
    "properties": {
        "type": {"type": "string", "examples": [TYPE_PREFIX + "not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "field": {"type": "string"},
        "permission": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}


class Schemas:
    """JSON Schema of annotations; attrs classes become named components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
        self.names: dict[type, str] = {}

    def of(self, annotation: Any) -> dict[str, Any]:  # noqa: C901 - one branch per kind
        if annotation is None or annotation is Any or annotation is object:
            return {}
        if annotation in _SIMPLE:
            return dict(_SIMPLE[annotation])
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Union or origin is types.UnionType:
            return self._union(args)
        if origin is typing.Literal:
            return _enum(list(args))
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return _enum([member.value for member in annotation])
        if origin in (list, set, frozenset) or annotation in (list, set):
            return {"type": "array", "items": self.of(args[0] if args else Any)}
        if origin is tuple or annotation is tuple:
            if args and args[-1] is not Ellipsis:
                items = [self.of(a) for a in args]
                return {"type": "array", "prefixItems": items, "minItems": len(items),
                        "maxItems": len(items)}  # fmt: skip
            return {"type": "array", "items": self.of(args[0] if args else Any)}
        if origin in (dict, typing.Mapping) or annotation is dict:
            value = self.of(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": value}
        if isinstance(annotation, type) and attrs.has(annotation):
            return {"$ref": f"#/components/schemas/{self.component(annotation)}"}
        return {}

    def _union(self, args: tuple[Any, ...]) -> dict[str, Any]:
        nullable = type(None) in args
        others = [self.of(a) for a in args if a is not type(None)]
        schema = others[0] if len(others) == 1 else {"anyOf": others}
        if not nullable:
            return schema
        kind = schema.get("type")
        if isinstance(kind, str) and "$ref" not in schema:
            result = {**schema, "type": [kind, "null"]}
            if "enum" in result:
                result["enum"] = [*result["enum"], None]
            return result
        return {"anyOf": [*schema.get("anyOf", [schema]), {"type": "null"}]}

    def component(self, cls: type) -> str:
        name = self.names.get(cls)
        if name is not None:
            return name
        name = cls.__name__
        if name in self.components:
            name = f"{cls.__module__.replace('.', '_')}_{cls.__name__}"
        self.names[cls] = name
        self.components[name] = {}  # reserved before recursion (self-references)
        self.components[name] = self._object(cls)
        return name

    def field(self, field: attrs.Attribute, annotation: Any) -> dict[str, Any]:  # type: ignore[type-arg]
        """The schema of one field: its type, default and description."""
        schema = self.of(annotation)
        if "$ref" in schema:  # siblings of $ref: keep the reference alone
            return schema
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = attrs.NOTHING if default.takes_self else default.factory()
        if default is not attrs.NOTHING:
            try:
                value = jsonable(default)
                json.dumps(value)
            except (TypeError, ValueError):
                pass
            else:
                schema = {**schema, "default": value}
        description = field.metadata.get("description") if field.metadata else None
        if description:
            schema = {**schema, "description": str(description)}
        return schema

    def _object(self, cls: type) -> dict[str, Any]:
        hints = codec.type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in codec.init_fields(cls):
            name = codec.public_name(field)
            properties[name] = self.field(field, hints[field.name])
            if not codec.has_default(field):
                required.append(name)
        result: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            result["required"] = required
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(f"{cls.__name__}("):  # attrs' generated repr docs
            result["description"] = doc.split("\n\n", 1)[0].replace("\n", " ")
        return result


def _enum(values: list[Any]) -> dict[str, Any]:
    kinds = {type(v) for v in values}
    schema: dict[str, Any] = {"enum": values}
    if kinds == {str}:
        schema["type"] = "string"
    elif kinds == {int}:
        schema["type"] = "integer"
    elif kinds == {bool}:
        schema["type"] = "boolean"
    return schema


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _parameters(item: Mounted, schemas: Schemas) -> list[dict[str, Any]]:
    params = []
    for name, converter in _CONVERTER.findall(item.path):
        schema = dict(_PATH_TYPES.get(converter or None, {"type": "string"}))
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    cls = item.route.query
    if cls is not None:
        hints = codec.type_hints(cls)
        for field in codec.init_fields(cls):
            schema = schemas.field(field, hints[field.name])
            description = schema.pop("description", None)
            param: dict[str, Any] = {
                "name": codec.public_name(field),
                "in": "query",
                "required": not codec.has_default(field),
                "schema": schema,
            }
            if schema.get("type") == "array" or "array" in (schema.get("type") or ()):
                param["style"] = "form"
                param["explode"] = True
            if description:
                param["description"] = description
            params.append(param)
    method = item.route.method.upper()
    if method == "POST" and not item.route.public:  # public routes ignore the key
        params.append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": "Retrying with the same key returns the first response; the "
            "write happens once.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                       "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"},
        })  # fmt: skip
    if method == "PATCH":
        params.append({
            "name": "If-Match", "in": "header", "required": True,
            "description": "The ETag of the record as read; a stale one gets 412.",
            "schema": {"type": "string"},
        })  # fmt: skip
    return params


def _responses(item: Mounted, schemas: Schemas) -> dict[str, Any]:
    route = item.route
    method = route.method.upper()
    success: dict[str, Any] = {"description": "Success"}
    if route.status != 204:
        success["content"] = {"application/json": {"schema": schemas.of(route.response)}}
    if typing.get_origin(route.response) is list:
        success["headers"] = {
            "Link": {"description": 'The next page: <url>; rel="next"',
                     "schema": {"type": "string"}}
        }  # fmt: skip
    if method == "GET" and not typing.get_origin(route.response):
        success["headers"] = {
            "ETag": {"description": "The version for If-Match", "schema": {"type": "string"}}
        }
    responses: dict[str, Any] = {str(route.status): success}
    statuses = {404, 422, 500, 503}
    if route.body is not None or route.body_kind == "stream":
        statuses |= {400, 413, 415}
    if not route.public:
        statuses |= {401, 403}
    if method == "POST":
        statuses |= {409}
    if method == "PATCH":
        statuses |= {409, 412, 428}
    statuses |= set(route.errors)
    by_status = {p.status: p for p in TYPES.values()}
    for status in sorted(statuses):
        kind = by_status.get(status)
        responses[str(status)] = _problem(kind.title if kind else "Error")
    return responses


def _operation(item: Mounted, schemas: Schemas) -> dict[str, Any]:
    route = item.route
    operation: dict[str, Any] = {
        "operationId": item.operation_id,
        "summary": route.summary,
        "tags": list(route.tags) or [item.plugin or "core"],
        "parameters": _parameters(item, schemas),
        "responses": _responses(item, schemas),
    }
    description = route.description or (route.handler.__doc__ or "").strip()
    if description:
        operation["description"] = description
    if route.body_kind == "stream":
        operation["requestBody"] = {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    elif route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.of(route.body)}},
        }
    if route.public:
        operation["security"] = []
    return operation


def document(mounted: list[Mounted], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes served."""
    schemas = Schemas()
    paths: dict[str, Any] = {}
    for item in mounted:
        path = _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", item.path)
        paths.setdefault(path, {})[item.route.method.lower()] = _operation(item, schemas)
    tags = sorted({t for ops in paths.values() for op in ops.values() for t in op["tags"]})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crmkit API",
            "version": version,
            "description": "The HTTP API of crmkit serve. Errors are problem documents "
            "(RFC 9457) whose types are listed at /api/v1/problems.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from crmkit token create (crm_...)",
                },
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "The session of POST /api/v1/auth/login; writes also need "
                    "the X-CSRF-Token header",
                },
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
    }


# -- pages ---------------------------------------------------------------------

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2rem}code,pre{background:#f5f5f5;padding:0 .2em}
pre{padding:.5em;overflow:auto}.op{margin:1rem 0;padding:.5rem 1rem;border:1px solid #ddd}
.m{display:inline-block;min-width:4.5em;font-weight:bold}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
"""

DOCS_TEMPLATE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ doc.info.title }} {{ doc.info.version }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{ style }}</style></head>
<body><h1>{{ doc.info.title }} <small>{{ doc.info.version }}</small></h1>
<p>{{ doc.info.description }} The machine-readable document:
<a href="{{ prefix }}/openapi.json">openapi.json</a>.
Sign in with <code>Authorization: Bearer &lt;token&gt;</code> or the session cookie.</p>
<nav><ul>{% for tag in tags %}<li><a href="#tag-{{ tag }}">{{ tag }}</a></li>{% endfor %}
<li><a href="#schemas">Schemas</a></li></ul></nav>
{% for tag in tags %}<h2 id="tag-{{ tag }}">{{ tag }}</h2>
{% for op in operations if tag in op.tags %}
<div class="op" id="{{ op.operationId }}"><span class="m">{{ op.method }}</span>
<code>{{ op.path }}</code> {{ op.summary }}{% if op.public %} <em>(no sign-in)</em>{% endif %}
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code></td><td>{{ p.in }}</td>
<td>{{ "yes" if p.required else "no" }}</td><td><code>{{ p.schema | tojson }}</code></td></tr>
{% endfor %}
</table>{% endif %}
{% if op.body %}<p>Body: <code>{{ op.body }}</code></p>{% endif %}
<p>Responses: {% for status, r in op.responses.items() -%}
<code>{{ status }}</code> {{ r.description }}{% if not loop.last %}, {% endif %}
{%- endfor %}</p>
</div>{% endfor %}{% endfor %}
<h2 id="schemas">Schemas</h2>
{% for name, schema in schemas.items() %}<h3 id="schema-{{ name }}">{{ name }}</h3>
<pre>{{ schema | tojson(indent=2) }}</pre>{% endfor %}
</body></html>"""
)

PROBLEMS_TEMPLATE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>crmkit API problem types</title>
<style>{{ style }}</style></head><body><h1>Problem types</h1>
<p>Every error of the crmkit API is an <code>application/problem+json</code> document
(RFC 9457) whose <code>type</code> is one of these.</p>
<table><tr><th>type</th><th>status</th><th>title</th><th>meaning</th></tr>
{% for p in problems %}<tr id="{{ p.slug }}"><td><code>{{ prefix }}{{ p.slug }}</code></td>
<td>{{ p.status }}</td><td>{{ p.title }}</td><td>{{ p.description }}</td></tr>{% endfor %}
</table></body></html>"""
)


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {})
            schema = next(iter(body.values()), {}).get("schema", {}) if body else {}
            found.append(
                {
                    **op,
                    "method": method.upper(),
                    "path": path,
                    "public": op.get("security") == [],
                    "body": schema.get("$ref", "").rsplit("/", 1)[-1] or (body and "raw body"),
                }
            )
    return found


def docs_html(doc: dict[str, Any]) -> str:
    return DOCS_TEMPLATE.render(
        doc=doc,
        tags=[t["name"] for t in doc.get("tags", [])],
        operations=_operations(doc),
        schemas=doc["components"]["schemas"],
        prefix=API_PREFIX,
        style=_STYLE,
    )


def routes(server: Any) -> list[StarletteRoute]:
    """The routes serving the document, its HTML reference and the problem types."""

    async def openapi_json(_request: Request) -> Response:
        body = json.dumps(server.document, ensure_ascii=False).encode()
        return Response(body, media_type="application/json")

    async def docs(_request: Request) -> Response:
        return HTMLResponse(docs_html(server.document), headers=_PAGE_HEADERS)

    async def problem_types(request: Request) -> Response:
        listed = sorted(TYPES.values(), key=lambda p: (p.status, p.slug))
        accept = request.headers.get("accept", "")
        if "json" in accept and "html" not in accept:
            data = [{"type": TYPE_PREFIX + p.slug, **attrs.asdict(p)} for p in listed]
            return Response(json.dumps(data).encode(), media_type="application/json")
        html = PROBLEMS_TEMPLATE.render(problems=listed, prefix=TYPE_PREFIX, style=_STYLE)
        return HTMLResponse(html, headers=_PAGE_HEADERS)

    return [
        StarletteRoute(f"{API_PREFIX}/openapi.json", openapi_json, methods=["GET"]),
        StarletteRoute(f"{API_PREFIX}/docs", docs, methods=["GET"]),
        StarletteRoute(f"{API_PREFIX}/problems", problem_types, methods=["GET"]),
    ]


#: the pages hold no script: forbid any
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
