"""The customer 360 view as text, JSON, or a self-contained HTML page (customer_360.html)."""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import TemplateError, TemplateNotFound
from markupsafe import Markup

from crmkit.core.customers import PROFILE_FIELDS, Customer360
from crmkit.core.entities import CONSENT_PURPOSES, Section
from crmkit.core.serialize import jsonable
from crmkit.errors import PluginError


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


def _consents(view: Customer360) -> list[tuple[str, bool | None]]:
    given = view.customer.consents
    purposes = [*CONSENT_PURPOSES, *sorted(set(given) - set(CONSENT_PURPOSES))]
    return [(purpose, given.get(purpose)) for purpose in purposes]


def _render_section(crm: Any, section: Section) -> Markup | None:
    """A plugin section's own template, rendered with its data; None when it has none."""
    if not section.template:
        return None
    try:
        return Markup(crm.templates.get_template(section.template).render(**section.data))
    except TemplateNotFound:
        raise PluginError(
            f"the 360 section {section.title!r} names template {section.template!r}, which no "
            "template folder holds; the plugin must return its folder from "
            "crmkit_register_template_dirs",
            plugin=section.name or None,
        ) from None
    except TemplateError as exc:
        raise PluginError(
            f"the 360 section {section.title!r} failed to render {section.template!r}: {exc}",
            plugin=section.name or None,
        ) from None


def html(crm: Any, view: Customer360) -> str:
    """The customer 360 page: inline CSS, no external assets, every section with an id."""
    taken: set[str] = set()
    sections = [
        {
            "id": section_id(s, taken),
            "section": s,
            "body": _render_section(crm, s),
            "data": jsonable(s.data),
        }
        for s in view.sections
    ]
    template = crm.templates.get_template("customer_360.html")
    return template.render(
        view=view,
        customer=view.customer,
        profile=[(f, getattr(view.customer, f)) for f in PROFILE_FIELDS],
        consents=_consents(view),
        workflows=_workflow_rows(crm, view),
        plugin_sections=sections,
        local=lambda moment: "" if moment is None else crm.local_time(moment),
        timezone=crm.config.timezone,
    )


def as_json(crm: Any, view: Customer360) -> str:
    data = {
        "customer": view.customer,
        "contacts": view.contacts,
        "totals": view.totals,
        "interactions": view.interactions,
        "orders": view.orders,
        "workflows": view.workflows,
        "sections": [{"name": s.name, "title": s.title, "data": s.data} for s in view.sections],
    }
    return json.dumps(jsonable(data), ensure_ascii=False, indent=2)


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
    lines.append(f"interactions ({len(view.interactions)}, newest first):")
    lines += [
        f"  {stamp(i.occurred_at)} {i.channel} {i.direction}: {i.subject}"
        for i in view.interactions
    ]
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
    for section in view.sections:
        lines.append(f"{section.title}:")
        lines += [
            f"  {key}: {json.dumps(jsonable(value), ensure_ascii=False)}"
            for key, value in section.data.items()
        ]
    return "\n".join(lines)
