"""Reply templates: user-authored Jinja2, rendered only in a sandbox.

Templates run in :class:`jinja2.sandbox.SandboxedEnvironment` with
:class:`jinja2.StrictUndefined`: reaching for ``__class__``, ``mro`` and the
like raises ``SecurityError``, and a field that does not exist raises
``UndefinedError``; both become a :class:`crmkit.errors.ValidationError`
naming the template and the line. HTML templates are autoescaped.

The context is plain data: ``customer`` (a dict of the customer's fields and
``attributes``), ``complaint`` (a dict, when given), ``company`` and
``staff`` (strings from the settings / the sender) and ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs
import jinja2
import jinja2.meta
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from crmkit.plugin import ValidationError

FORMATS = ("text", "html")
NAMES = ("customer", "complaint", "company", "staff", "now")

CUSTOMER_FIELDS = (
    "id",
    "name",
    "type",
    "kind",
    "status",
    "external_id",
    "email",
    "phone",
    "address",
    "region",
    "province",
    "city",
    "industry",
    "occupation",
    "birth_date",
    "owner",
)

#: complaint fields a template may use: the agreed contract plus the complaints plugin's
COMPLAINT_FIELDS = (
    "id",
    "customer_id",
    "category",
    "channel",
    "description",
    "tracking_code",
    "department",
    "severity",
    "priority",
    "assignee",
    "stage",
    "root_cause",
    "resolution",
    "received_at",
    "first_response_due_at",
    "resolution_due_at",
    "resolved_at",
)

_ENVS: dict[str, SandboxedEnvironment] = {}


def _blank_none(value: Any) -> Any:
    # an empty field (no phone, no attribute value) prints as nothing, not "None"
    return "" if value is None else value


def environment(fmt: str) -> SandboxedEnvironment:
    if fmt not in _ENVS:
        _ENVS[fmt] = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=fmt == "html",
            keep_trailing_newline=True,
            finalize=_blank_none,
        )
    return _ENVS[fmt]


def compile_template(name: str, body: str, fmt: str) -> jinja2.Template:
    """Compile, refusing syntax errors and unknown top-level names."""
    if fmt not in FORMATS:
        raise ValidationError(
            f"template {name!r}: format {fmt!r} is not valid; use one of: {', '.join(FORMATS)}",
            field="format",
        )
    env = environment(fmt)
    try:
        tree = env.parse(body)
        template = env.from_string(body)
    except TemplateSyntaxError as exc:
        raise ValidationError(
            f"template {name!r} does not compile: line {exc.lineno}: {exc.message}; "
            "fix the Jinja2 syntax",
            field="body",
        ) from None
    unknown = sorted(jinja2.meta.find_undeclared_variables(tree) - set(NAMES))
    if unknown:
        raise ValidationError(
            f"template {name!r} uses unknown name(s) {', '.join(unknown)}; "
            f"templates can use: {', '.join(NAMES)}",
            field="body",
        )
    return template


def customer_context(customer: Any, attribute_names: Any = ()) -> dict[str, Any]:
    data = {f: getattr(customer, f, None) for f in CUSTOMER_FIELDS}
    attributes = {name: None for name in attribute_names}
    attributes.update(dict(getattr(customer, "attributes", {}) or {}))
    data["attributes"] = attributes
    return data


def complaint_context(complaint: Any) -> dict[str, Any] | None:
    if complaint is None:
        return None
    if isinstance(complaint, Mapping):
        return dict(complaint)
    if attrs.has(type(complaint)):
        return attrs.asdict(complaint, recurse=False)
    return {f: getattr(complaint, f) for f in COMPLAINT_FIELDS if hasattr(complaint, f)}


def sample_context(attribute_names: Any = ()) -> dict[str, Any]:
    """Placeholder values for every field, to trial-render a template when it is saved."""
    now = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    customer: dict[str, Any] = {f: f"<{f}>" for f in CUSTOMER_FIELDS}
    customer.update(id=1, birth_date=dt.date(1990, 1, 1))
    customer["attributes"] = {name: f"<{name}>" for name in attribute_names}
    complaint: dict[str, Any] = {f: f"<{f}>" for f in COMPLAINT_FIELDS}
    complaint.update(
        id=1, customer_id=1, received_at=now, first_response_due_at=now, resolution_due_at=now
    )
    return {
        "customer": customer,
        "complaint": complaint,
        "company": "<company>",
        "staff": "<staff>",
        "now": now,
    }


def render(name: str, body: str, fmt: str, context: Mapping[str, Any]) -> str:
    """Render in the sandbox; every failure is a ValidationError naming the template."""
    template = compile_template(name, body, fmt)
    if context.get("complaint") is None and "complaint" in jinja2.meta.find_undeclared_variables(
        environment(fmt).parse(body)
    ):
        raise ValidationError(
            f"template {name!r} uses complaint fields but no complaint was given; "
            "render it for a complaint",
            field="complaint",
        )
    try:
        return template.render(**context)
    except SecurityError as exc:
        raise ValidationError(
            f"template {name!r} tried to reach outside the sandbox ({exc}); "
            "templates may only read the customer's and complaint's fields",
            field="body",
        ) from None
    except UndefinedError as exc:
        available = ", ".join(sorted(k for k, v in context.items() if v is not None))
        raise ValidationError(
            f"template {name!r} uses a field that does not exist: {exc.message}; "
            f"available: {available} (customer fields: {', '.join(CUSTOMER_FIELDS)}, "
            "attributes.<name>)",
            field="body",
        ) from None
    except Exception as exc:  # arithmetic on text, bad filters, ... in user code
        raise ValidationError(
            f"template {name!r} failed to render: {type(exc).__name__}: {exc}", field="body"
        ) from None


def check(name: str, body: str, fmt: str, attribute_names: Any = ()) -> None:
    """Refuse a template that does not compile or fails on placeholder data."""
    compile_template(name, body, fmt)
    render(name, body, fmt, sample_context(attribute_names))
