"""The customer 360 view as text, JSON, or a self-contained HTML page (customer_360.html).

Plugin sections: in HTML a section's ``template`` is rendered with its ``data``
(autoescaped); in text its ``.txt`` sibling (``loyalty/section.txt`` beside
``loyalty/section.html``) is rendered the same way without escaping, or, when the
plugin ships none, ``data`` is printed as an aligned key/value list. A section
that fails to build or to render becomes an error section naming its plugin
(logged with the traceback) and the rest of the view renders.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import attrs
from jinja2 import Environment, TemplateNotFound
from markupsafe import Markup

from crmkit.cli.output import _pad, _width
from crmkit.core.auditlog import as_dict as audit_dict
from crmkit.core.customers import PROFILE_FIELDS
from crmkit.core.entities import CONSENT_PURPOSES, Interaction, Section, TimelineEntry
from crmkit.core.serialize import jsonable
from crmkit.core.view360 import Customer360, error_section, is_error_section

log = logging.getLogger(__name__)


def section_id(section: Section, taken: set[str]) -> str:
    """A stable element id for a plugin section: ``section-plugin-<name>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", (section.name or section.title).lower()).strip("-")
    base = f"section-plugin-{slug or 'unnamed'}"
    found, n = base, 2
    while found in taken:
        found, n = f"{base}-{n}", n + 1
    taken.add(found)
    return found


def _workflow_rows(crm: Any, view: Customer360) -> list[dict[str, Any]]:
    rows = []
    for instance in view.workflows:
        definition = crm.workflow_definitions.get(instance.workflow)
        stage = None
        if definition is not None and instance.stage in definition.stage_names:
            stage = definition.stage(instance.stage)
        rows.append(
            {
                "instance": instance,
                "workflow_title": definition.title if definition else instance.workflow,
                "stage_title": stage.title if stage else instance.stage,
                "next_steps": stage.next_steps if stage and instance.closed_at is None else (),
            }
        )
    return rows


def timeline_item(item: Interaction | TimelineEntry) -> dict[str, Any]:
    """One timeline item as the JSON form and the page show it: ``at``, ``kind``
    (``interaction`` for the core's), ``title``, ``body``, ``source`` (``crmkit`` for the
    core's); an interaction also has ``id``, ``channel``, ``direction`` and ``staff``."""
    if isinstance(item, Interaction):
        return {
            "at": item.occurred_at,
            "kind": "interaction",
            "title": item.subject,
            "body": item.body,
            "source": "crmkit",
            "id": item.id,
            "channel": item.channel,
            "direction": item.direction,
            "staff": item.staff,
        }
    return {
        "at": item.at,
        "kind": item.kind,
        "title": item.title,
        "body": item.body,
        "source": item.source,
    }


def timeline_line(item: dict[str, Any], stamp: Callable[[Any], str]) -> str:
    """One timeline item as a line of the text form."""
    if item["kind"] == "interaction":
        what = f"{item['channel']} {item['direction']}"
    else:
        what = f"{item['source']} {item['kind']}"
    return f"  {stamp(item['at'])} {what}: {item['title']}"


def consent_line(change: Any, stamp: Callable[[Any], str]) -> str:
    """One consent change as a line of the text form."""
    notes = [x for x in (change.source, change.actor and f"by {change.actor}") if x]
    extra = f" ({', '.join(notes)})" if notes else ""
    granted = "given" if change.granted else "withdrawn"
    return f"  {stamp(change.changed_at)} {change.purpose} {granted}{extra}"


def activity_item(entry: Any) -> dict[str, Any]:
    """One audit entry of the 360's activity part: who (and on whose behalf), when, what,
    and the fields it changed with their values before and after."""
    item = audit_dict(entry)
    item["who"] = entry.actor + (f" for {entry.on_behalf_of}" if entry.on_behalf_of else "")
    item["fields"] = sorted(entry.changes)
    return item


def activity_line(item: dict[str, Any], stamp: Callable[[Any], str]) -> str:
    """One activity entry as a line of the text form."""
    what = f"{item['action']} {item['entity']}" + (
        f" {item['entity_id']}" if item["entity_id"] else ""
    )
    fields = f": {', '.join(item['fields'])}" if item["fields"] else ""
    return f"  {stamp(item['at'])} {item['who']} {what}{fields}"


def _consents(view: Customer360) -> list[tuple[str, bool | None]]:
    given = view.customer.consents
    purposes = [*CONSENT_PURPOSES, *sorted(set(given) - set(CONSENT_PURPOSES))]
    return [(purpose, given.get(purpose)) for purpose in purposes]


def _render_failed(
    section: Section, form: str, exc: Exception, template: str | None = None
) -> Section:
    """Log why ``section``'s template failed to render; the error section to show instead."""
    plugin = section.name or section.title
    if isinstance(exc, TemplateNotFound):
        why = (
            f"its template {exc.name!r} is in no template folder; the plugin must return "
            "its folder from crmkit_register_template_dirs"
        )
    else:
        name = template or section.template
        why = f"its {form} template {name!r} failed: {type(exc).__name__}: {exc}"
    error = f"plugin {plugin!r}: the section {section.title!r} could not be shown: {why}"
    log.error("customer 360 %s: %s", form, error, exc_info=exc)
    return error_section(plugin, error, title=section.title, order=section.order)


def _render_section(crm: Any, section: Section) -> tuple[Section, Markup | None]:
    """A plugin section and its own template rendered with its data (None when it has none).

    A template that is missing or fails gives an error section in its place.
    """
    if not section.template:
        return section, None
    try:
        return section, Markup(crm.templates.get_template(section.template).render(**section.data))
    except Exception as exc:  # a broken section never takes the page down
        if is_error_section(section):  # the error template itself failed: its data shows
            log.error("customer 360 html: the error section failed too", exc_info=exc)
            return section, None
        return _render_section(crm, _render_failed(section, "html", exc))


def html(crm: Any, view: Customer360) -> str:
    """The customer 360 page: inline CSS, no external assets, every section with an id."""
    taken: set[str] = set()
    sections = []
    for section, body in (_render_section(crm, s) for s in view.sections):
        sections.append(
            {
                "id": section_id(section, taken),
                "section": section,
                "body": body,
                "data": jsonable(section.data),
                "failed": is_error_section(section),
            }
        )
    template = crm.templates.get_template("customer_360.html")
    return template.render(
        view=view,
        customer=view.customer,
        profile=[(f, getattr(view.customer, f)) for f in PROFILE_FIELDS],
        consents=_consents(view),
        consent_history=view.consent_history,
        analyses_excluded=view.analyses_excluded,
        timeline=[timeline_item(item) for item in view.timeline],
        workflows=_workflow_rows(crm, view),
        activity=[activity_item(entry) for entry in view.activity],
        hidden=view.hidden,
        plugin_sections=sections,
        local=lambda moment: "" if moment is None else crm.local_time(moment),
        timezone=crm.config.timezone,
    )


def as_json(crm: Any, view: Customer360) -> str:
    data = {
        "customer": view.customer,
        "analyses": {
            "included": view.analyses_excluded is None,
            "reason": view.analyses_excluded,
        },
        "consent_history": view.consent_history,
        "contacts": view.contacts,
        "totals": view.totals,
        "timeline": [timeline_item(item) for item in view.timeline],
        "interactions": view.interactions,
        "orders": view.orders,
        "workflows": view.workflows,
        "sections": [_json_section(s) for s in view.sections],
        "activity": [activity_item(entry) for entry in view.activity],
        "hidden": view.hidden,
    }
    return json.dumps(jsonable(data), ensure_ascii=False, indent=2)


def _json_section(section: Section) -> dict[str, Any]:
    """A section in the JSON form; an error section also carries ``error`` (one line)."""
    found: dict[str, Any] = {"name": section.name, "title": section.title, "data": section.data}
    if is_error_section(section):
        found["error"] = section.data.get("error", "")
    return found


def text(crm: Any, view: Customer360) -> str:
    c = view.customer

    def stamp(moment: Any) -> str:
        return "" if moment is None else crm.local_time(moment).strftime("%Y-%m-%d %H:%M")

    lines = [f"customer {c.id}: {c.name}" + (f" ({c.external_id})" if c.external_id else "")]
    lines += [
        f"  {f}: {getattr(c, f)}"
        for f in PROFILE_FIELDS
        if f not in ("name", "external_id") and getattr(c, f) is not None
    ]
    if c.erased_at:
        lines.append(f"  erased at {stamp(c.erased_at)}")
    for key, value in sorted(c.attributes.items()):
        lines.append(f"  attribute {key}: {value}")
    consents = ", ".join(
        f"{p} {'yes' if g else 'withdrawn'}" for p, g in _consents(view) if g is not None
    )
    lines.append(f"  consent: {consents or 'none given'}")
    if view.analyses_excluded:
        lines.append(f"  {view.analyses_excluded}")
    totals = view.totals
    lines.append(
        f"  paid orders: {totals['paid_orders']}, revenue {totals['revenue']}, "
        f"last order {stamp(totals['last_order']) or '-'}"
    )
    if view.contacts:
        lines.append("contacts:")
        lines += [
            f"  {k.name}" + "".join(f", {v}" for v in (k.role, k.email, k.phone) if v)
            for k in view.contacts
        ]
    if view.consent_history:
        lines.append("consent history (oldest first):")
        lines += [consent_line(change, stamp) for change in view.consent_history]
    lines.append(f"timeline ({len(view.timeline)}, newest first):")
    lines += [timeline_line(timeline_item(item), stamp) for item in view.timeline]
    lines.append(f"orders ({len(view.orders)}, newest first):")
    lines += [
        f"  {stamp(o.occurred_at)} {o.external_id or '#' + str(o.id)} {o.amount} {o.currency} "
        f"{o.status}"
        for o in view.orders
    ]
    lines.append(f"workflows ({len(view.workflows)}):")
    lines += [
        f"  #{row['instance'].id} {row['workflow_title']}: {row['instance'].title} "
        f"[{row['stage_title']}]"
        for row in _workflow_rows(crm, view)
    ]
    lines.append(f"activity ({len(view.activity)}, newest first):")
    lines += [activity_line(activity_item(entry), stamp) for entry in view.activity]
    if view.hidden:
        lines.append(f"not shown (no permission): {', '.join(view.hidden)}")
    text_templates = crm.templates.overlay(autoescape=False, cache_size=50)
    for section in view.sections:
        lines.append(f"{section.title}:")
        lines += section_text(crm, section, text_templates)
    return "\n".join(lines)


def text_template_name(template: str) -> str:
    """The text template of a section's HTML template: ``loyalty/section.txt`` for
    ``loyalty/section.html``."""
    return str(PurePosixPath(template).with_suffix(".txt"))


def section_text(crm: Any, section: Section, templates: Environment | None = None) -> list[str]:
    """A plugin section's lines in the text form, indented by two spaces.

    The plugin's ``.txt`` template when it has one (rendered with ``data``, no
    escaping); otherwise ``data`` as a key/value list (:func:`data_lines`).
    """
    if section.template:
        env = templates or crm.templates.overlay(autoescape=False, cache_size=50)
        name = text_template_name(section.template)
        try:
            rendered = env.get_template(name).render(**section.data)
        except TemplateNotFound as exc:
            if exc.name != name:  # the .txt exists but includes a missing template
                return section_text(crm, _render_failed(section, "text", exc, name), env)
        except Exception as exc:  # a broken section never takes the view down
            if is_error_section(section):
                log.error("customer 360 text: the error section failed too", exc_info=exc)
            else:
                return section_text(crm, _render_failed(section, "text", exc, name), env)
        else:
            return [
                "  " + line if line.strip() else "" for line in rendered.strip("\n").splitlines()
            ]
    return data_lines(section.data, indent=2, scalar=functools.partial(scalar_text, crm))


def scalar_text(crm: Any, value: Any) -> str:
    """One value as text: Decimal with thousands separators (``1,234.50``), datetimes in the
    display time zone, dates ISO, ``yes``/``no``, ``-`` for nothing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:,}" if value.is_finite() else str(value)
    if isinstance(value, dt.datetime):
        shown = crm.local_time(value) if crm is not None and value.tzinfo else value
        return shown.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _nested(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple | set | frozenset)


def _plain(value: Any) -> Any:
    """attrs objects as their fields, sets in a stable order; anything else as it is."""
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return value


def data_lines(
    value: Any, *, indent: int = 0, scalar: Callable[[Any], str] = lambda v: scalar_text(None, v)
) -> list[str]:
    """``value`` as readable lines: a dict as ``key:  value`` lines aligned on the widest key
    (wide CJK characters count two columns), nested dicts indented, lists as ``- item``."""
    value = _plain(value)
    pad = " " * indent
    if isinstance(value, Mapping):
        return _mapping_lines(value, indent, scalar)
    if _nested(value):
        if not value:
            return [f"{pad}(none)"]
        lines = []
        for item in value:
            block = data_lines(item, indent=indent + 2, scalar=scalar)
            lines.append(f"{pad}- {block[0][indent + 2 :]}")
            lines += block[1:]
        return lines
    return [f"{pad}{line}" for line in scalar(value).splitlines() or [""]]


def _mapping_lines(
    value: Mapping[Any, Any], indent: int, scalar: Callable[[Any], str]
) -> list[str]:
    pad = " " * indent
    if not value:
        return [f"{pad}(none)"]
    items = [(f"{str(key).replace('_', ' ')}:", _plain(item)) for key, item in value.items()]
    width = max((_width(label) for label, item in items if not (_nested(item) and item)), default=0)
    lines = []
    for label, item in items:
        if _nested(item) and item:
            lines.append(pad + label)
            lines += data_lines(item, indent=indent + 2, scalar=scalar)
            continue
        text = "(none)" if _nested(item) else scalar(item)
        first, *more = text.splitlines() or [""]
        lines.append(f"{pad}{_pad(label, width)} {first}".rstrip())
        lines += [f"{pad}{' ' * width} {line}".rstrip() for line in more]
    return lines
