"""Reply templates: user-authored Jinja2, rendered only in a sandbox.

Templates run in :class:`jinja2.sandbox.SandboxedEnvironment` with
:class:`jinja2.StrictUndefined`: reaching for ``__class__``, ``mro`` and the
like raises ``SecurityError``, and a field that does not exist raises
``UndefinedError``; both become a :class:`crmkit.plugin.ValidationError`
naming the template (and the line, where Jinja2 gives one). HTML templates
are autoescaped.

The context is plain data. Built in: ``customer`` (a dict of the customer's
fields and ``attributes``), ``company`` and ``staff`` (strings from the
settings / the sender) and ``now``. Other plugins contribute more variables
(``crmkit_knowledgebase_register_template_variables``, see
:mod:`crmkit_knowledgebase.hookspecs`) as ``{variable: {field: description}}``;
this module knows none of them by name: it checks templates against the
``variables`` it is given, trial-renders them with a placeholder for each
declared field, and reads only the declared fields from the objects given to
render (:func:`variable_context`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from crmkit.plugin import ValidationError
from crmkit_knowledgebase.limits import BoundedSandbox, Limits, TemplateLimit, render_bounded

FORMATS = ("text", "html")
#: variables every template may use, whatever plugins are enabled
BUILTIN = ("customer", "company", "staff", "now")
#: the hook through which plugins contribute more
HOOK = "crmkit_knowledgebase_register_template_variables"

#: contributed variables: {variable: {field: description}}
Variables = Mapping[str, Mapping[str, str]]

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

_ENVS: dict[tuple[str, Limits], BoundedSandbox] = {}


class Placeholder(str):
    """A contributed field's value in the trial render: prints as ``<field>``.

    Only the field's name is known (not its type), so a method or attribute of the
    real value (``received_at.strftime('%d.%m.%Y')``) gives the placeholder back
    instead of failing. Names starting with ``_`` are refused as for any value.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_") or name in ("unsafe_callable", "alters_data"):
            raise AttributeError(name)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return self


def _blank_none(value: Any) -> Any:
    # an empty field (no phone, no attribute value) prints as nothing, not "None"
    return "" if value is None else value


def environment(fmt: str, limits: Limits | None = None) -> BoundedSandbox:
    """The sandbox templates of ``fmt`` render in, bounded by ``limits`` (the defaults
    when None; see :mod:`crmkit_knowledgebase.limits`)."""
    key = (fmt, limits or Limits())
    if key not in _ENVS:
        _ENVS[key] = BoundedSandbox(
            key[1],
            undefined=jinja2.StrictUndefined,
            autoescape=fmt == "html",
            keep_trailing_newline=True,
            finalize=_blank_none,
        )
    return _ENVS[key]


def compile_template(
    name: str,
    body: str,
    fmt: str,
    variables: Variables | None = None,
    limits: Limits | None = None,
) -> jinja2.Template:
    """Compile, refusing syntax errors and variables that are neither built in nor in
    ``variables`` (the contributed ones)."""
    variables = variables or {}
    if fmt not in FORMATS:
        raise ValidationError(
            f"template {name!r}: format {fmt!r} is not valid; use one of: {', '.join(FORMATS)}",
            field="format",
        )
    env = environment(fmt, limits)
    try:
        tree = env.parse(body)
        unknown = jinja2.meta.find_undeclared_variables(tree) - set(BUILTIN) - set(variables)
        if unknown:
            raise ValidationError(_unknown_message(name, tree, unknown, variables), field="body")
        return env.compile_bounded(tree)
    except TemplateSyntaxError as exc:
        raise ValidationError(
            f"template {name!r} does not compile: line {exc.lineno}: {exc.message}; "
            "fix the Jinja2 syntax",
            field="body",
        ) from None
    except (RecursionError, SyntaxError):  # Python's own limits on nesting
        raise ValidationError(
            f"template {name!r} does not compile: its brackets, operators or blocks are nested "
            "too deeply (or chained too long) for Jinja2; write it flatter",
            field="body",
        ) from None


def _unknown_message(
    name: str, tree: nodes.Template, unknown: set[str], variables: Variables
) -> str:
    """What (the variables), where (their first lines) and how to fix it."""
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in unknown and node.ctx == "load":
            lines.setdefault(node.name, node.lineno)
    used = ", ".join(f"{v} (line {lines.get(v, 1)})" for v in sorted(unknown))
    available = ", ".join((*BUILTIN, *sorted(variables)))
    it = "it" if len(unknown) == 1 else "them"
    return (
        f"template {name!r} uses {used}, which no enabled plugin provides; templates can use: "
        f"{available}; remove {it} from the template, or enable the plugin that contributes "
        f"{it} (plugins add variables through {HOOK})"
    )


def used_variables(body: str, fmt: str) -> set[str]:
    """The top-level names a template reads (it must compile)."""
    return jinja2.meta.find_undeclared_variables(environment(fmt).parse(body))


def customer_context(customer: Any, attribute_names: Iterable[str] = ()) -> dict[str, Any]:
    data = {f: getattr(customer, f, None) for f in CUSTOMER_FIELDS}
    attributes: dict[str, Any] = dict.fromkeys(attribute_names)
    attributes.update(dict(getattr(customer, "attributes", {}) or {}))
    data["attributes"] = attributes
    return data


def variable_context(value: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The declared ``fields`` of ``value``, and nothing else: by key from a mapping, by
    attribute from any other object (an attrs instance). A field it lacks is left out,
    so a template reading it fails with a clear error."""
    if isinstance(value, Mapping):
        return {f: value[f] for f in fields if f in value}
    return {f: getattr(value, f) for f in fields if hasattr(value, f)}


def sample_context(
    attribute_names: Iterable[str] = (), variables: Variables | None = None
) -> dict[str, Any]:
    """Placeholder values for every field, to trial-render a template when it is saved."""
    now = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    customer: dict[str, Any] = {f: f"<{f}>" for f in CUSTOMER_FIELDS}
    customer.update(id=1, birth_date=dt.date(1990, 1, 1))
    customer["attributes"] = {name: f"<{name}>" for name in attribute_names}
    context: dict[str, Any] = {
        variable: {f: Placeholder(f"<{f}>") for f in fields}
        for variable, fields in (variables or {}).items()
    }
    context.update(customer=customer, company="<company>", staff="<staff>", now=now)
    return context


def render(
    name: str,
    body: str,
    fmt: str,
    context: Mapping[str, Any],
    variables: Variables | None = None,
    limits: Limits | None = None,
) -> str:
    """Render in the sandbox within ``limits``; every failure is a ValidationError naming
    the template.

    ``context`` holds the values (``customer`` and a contributed variable may be
    missing or None when not given); ``variables`` the contributed variables' fields.
    """
    variables = variables or {}
    limits = limits or Limits()
    template = compile_template(name, body, fmt, variables, limits)
    for variable in sorted(used_variables(body, fmt) & {"customer", *variables}):
        if context.get(variable) is None:
            raise ValidationError(
                f"template {name!r} uses {variable} but no {variable} was given; "
                f"render it for a {variable}",
                field=variable,
            )
    try:
        return render_bounded(template, context, limits)
    except TemplateLimit as exc:
        raise ValidationError(_limit_message(name, exc, limits), field="body") from None
    except RecursionError as exc:
        raise ValidationError(
            f"template {name!r} was stopped{_line(exc)}: its macros or recursive loops call "
            "themselves too deeply; make the template call itself less deep",
            field="body",
        ) from None
    except SecurityError as exc:
        raise ValidationError(
            f"template {name!r} tried to reach outside the sandbox ({exc}); "
            "templates may only read the fields of their variables",
            field="body",
        ) from None
    except UndefinedError as exc:
        raise ValidationError(
            f"template {name!r} uses a field that does not exist: {exc.message}; "
            f"available: {_fields_help(context, variables)}",
            field="body",
        ) from None
    except Exception as exc:  # arithmetic on text, bad filters, ... in user code
        raise ValidationError(
            f"template {name!r} failed to render: {type(exc).__name__}: {exc}", field="body"
        ) from None


def _line(exc: BaseException) -> str:
    """`` at line N`` of the template where ``exc`` was raised (Jinja2 rewrites the
    traceback to the template's lines), or nothing."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line is not None else ""


def _limit_message(name: str, exc: TemplateLimit, limits: Limits) -> str:
    """What went past which limit, where, and how to fix it."""
    fix = exc.fix or "make the template do less"
    if exc.setting is not None:
        now = getattr(limits, exc.setting.removeprefix("template_"))
        fix += (
            f", or raise {exc.setting} (now {now:,}) in the [knowledgebase] settings "
            "if such a reply is really needed"
        )
    return f"template {name!r} was stopped{_line(exc)}: {exc.what}; {fix}"


def _fields_help(context: Mapping[str, Any], variables: Variables) -> str:
    given = ", ".join(sorted(k for k, v in context.items() if v is not None))
    fields = [f"customer fields: {', '.join(CUSTOMER_FIELDS)}, attributes.<name>"]
    fields += [f"{v} fields: {', '.join(f)}" for v, f in sorted(variables.items())]
    return f"{given} ({'; '.join(fields)})"


def check(
    name: str,
    body: str,
    fmt: str,
    attribute_names: Iterable[str] = (),
    variables: Variables | None = None,
    limits: Limits | None = None,
) -> None:
    """Refuse a template that does not compile, uses a variable that is neither built in
    nor in ``variables``, or fails on placeholder data; within the same ``limits`` as a
    real render, so what a render would refuse is refused when the template is saved."""
    render(name, body, fmt, sample_context(attribute_names, variables), variables, limits)
