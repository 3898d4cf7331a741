"""The customer 360 view: profile, contacts, timeline, orders, workflows and plugin sections.

A plugin's section that fails to build is replaced by an error section naming
the plugin, so one broken plugin never takes the page down. The timeline merges the
interactions with the entries plugins contribute (``crmkit_customer_timeline``), newest
first; a plugin whose entries fail is logged and left out.

**Permissions.** The view needs ``customers.read`` on the customer (out of the actor's
scope: :class:`NotFound`). Each other part shows only when the actor may read it on this
customer: interactions and the timeline (``interactions.read``), orders and the totals
(``orders.read``), workflows (``workflows.read``); a part left out is named in
``hidden``. **Activity**, the customer's latest audit entries (and those of records
merged into it), shows to anyone who may read the customer: it is the history of what
they can see. The values of entries about interactions, orders or workflows the actor
may not read are left out (who did what, when, to which fields stays).
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from crmkit import plugins as plugin_loader
from crmkit.core import access, auditlog
from crmkit.core.audit import AuditEntry
from crmkit.core.entities import Contact, Customer, Interaction, Section, TimelineEntry
from crmkit.core.types import to_decimal

if TYPE_CHECKING:
    from crmkit.crm import CRM

log = logging.getLogger(__name__)

#: The template of the section shown in place of a plugin's 360 section that failed to
#: build or to render (crmkit/templates; ``.txt`` beside it for the text form).
ERROR_SECTION_TEMPLATE = "section_error.html"


def error_section(
    plugin: str, error: str, *, title: str | None = None, order: int = 100
) -> Section:
    """The 360 section standing in for ``plugin``'s when building or rendering it failed.

    ``data`` holds ``plugin`` and ``error`` (one line: what failed and why); the
    rest of the page renders as usual.
    """
    return Section(
        title=title or plugin,
        data={"plugin": plugin, "error": error},
        template=ERROR_SECTION_TEMPLATE,
        name=plugin,
        order=order,
    )


def is_error_section(section: Section) -> bool:
    return section.template == ERROR_SECTION_TEMPLATE


#: What the 360 says when the customer withdrew consent to profiling.
ANALYSES_EXCLUDED = (
    "profiling consent withdrawn: analyses (segments, snapshots, clusters, lifetime value) "
    "leave this customer out"
)


def analyses_excluded(customer: Customer) -> str | None:
    """Why analyses of people leave ``customer`` out (profiling consent withdrawn), or None."""
    return ANALYSES_EXCLUDED if customer.consents.get("profiling") is False else None


@attrs.define
class Customer360:
    """Everything about one customer, for the 360 view.

    ``timeline``: the interactions (:class:`Interaction`) and the plugins' entries
    (:class:`TimelineEntry`), newest first, at most the view's limit. ``consent_history``:
    every grant and withdrawal, oldest first.
    """

    customer: Customer
    contacts: list[Contact]
    interactions: list[Any]
    orders: list[Any]
    workflows: list[Any]
    sections: list[Section]
    totals: dict[str, Any]
    timeline: list[Interaction | TimelineEntry] = attrs.field(factory=list)
    consent_history: list[Any] = attrs.field(factory=list)
    #: the customer's latest audit entries, newest first (``ACTIVITY_LIMIT``)
    activity: list[AuditEntry] = attrs.field(factory=list)
    #: parts left out because the actor may not read them ("orders", "interactions" ...)
    hidden: list[str] = attrs.field(factory=list)

    @property
    def analyses_excluded(self) -> str | None:
        """Why analyses leave the customer out (profiling consent withdrawn), or None."""
        return analyses_excluded(self.customer)


def moment(item: Interaction | TimelineEntry) -> Any:
    """When a timeline item happened."""
    return item.occurred_at if isinstance(item, Interaction) else item.at


#: audit entries the 360's activity part shows
ACTIVITY_LIMIT = 20

#: the permission reading each part of the view, and the audit entities it covers
PARTS = {"interactions": "interactions.read", "orders": "orders.read",
         "workflows": "workflows.read"}  # fmt: skip
_ENTITY_PART = {"interaction": "interactions", "order": "orders", "workflow": "workflows"}


def build(crm: CRM, customer_id: int, *, limit: int = 100) -> Customer360:
    """The 360 view: profile, contacts, timeline, orders, workflows, plugin sections,
    activity (see the module doc for what each actor sees)."""
    # in a connection scope (a server request): its connection lent once for every read
    # of the view (each still its own statement), not a lend and its end per part
    with crm.reading() if crm._shared.get() is not None else nullcontext():
        # the customer (checked as customers.get checks it), its paid-order totals and
        # which of the other parts have rows, in one statement
        customer, extra = crm.customers._get_for_view(customer_id)
        may = {
            part: access.may(crm, action, customer_id, owner=customer.owner)
            for part, action in PARTS.items()
        }
        with access.trusted(crm):
            return _build(crm, customer, extra, may, limit)


def _build(
    crm: CRM, customer: Customer, extra: Any, may: dict[str, bool], limit: int
) -> Customer360:
    customer_id = customer.id
    assert customer_id is not None
    found = plugin_sections(crm, customer)
    # a part the customer's read found empty is not read
    interactions = (
        crm.interactions.list(customer_id=customer_id, limit=limit)
        if may["interactions"] and extra.has_interactions
        else []
    )
    workflows = may["workflows"] and extra.has_workflows
    return Customer360(
        customer=customer,
        contacts=crm.customers.contacts(customer_id) if extra.has_contacts else [],
        interactions=interactions,
        orders=crm.orders.list(customer_id=customer_id, limit=limit) if may["orders"] else [],
        workflows=crm.workflows.list(customer_id=customer_id) if workflows else [],
        sections=sorted(found, key=lambda s: (s.order, s.title)),
        totals=_totals(extra, may["orders"]),
        timeline=timeline(crm, customer, limit=limit, interactions=interactions)
        if may["interactions"]
        else [],
        consent_history=crm.customers.consent_history(customer_id)
        if extra.has_consent_history
        else [],
        activity=activity(crm, customer_id, may) if extra.has_activity else [],
        hidden=[part for part, allowed in may.items() if not allowed],
    )


def _totals(extra: Any, allowed: bool) -> dict[str, Any]:
    """The paid-order totals read with the customer (``_get_for_view``)."""
    if not allowed:
        return {"paid_orders": None, "revenue": None, "last_order": None}
    return {
        "paid_orders": extra.paid_orders,
        "revenue": to_decimal(extra.revenue) if extra.revenue is not None else Decimal(0),
        "last_order": extra.last_order,
    }


def activity(
    crm: CRM, customer_id: int, may: dict[str, bool], limit: int = ACTIVITY_LIMIT
) -> list[AuditEntry]:
    """The customer's latest audit entries; values of parts the actor may not read are
    left out (the fields changed stay, with ``None`` for both values)."""
    found = auditlog.of_customer(crm, customer_id, limit=limit)
    shown = []
    for entry in found:
        part = _ENTITY_PART.get(entry.entity)
        if part is not None and not may.get(part, True):
            entry = attrs.evolve(entry, changes={k: [None, None] for k in entry.changes})
        shown.append(entry)
    return shown


def timeline(
    crm: CRM,
    customer: Customer,
    *,
    limit: int = 100,
    interactions: list[Interaction] | None = None,
) -> list[Interaction | TimelineEntry]:
    """The customer's timeline: interactions and the plugins' entries, newest first, at most
    ``limit`` (``interactions``: the customer's latest ones, when already read)."""
    if interactions is None:
        interactions = crm.interactions.list(customer_id=customer.id, limit=limit)
    return merge_timeline(interactions, plugin_timeline(crm, customer, limit), limit)


def merge_timeline(
    interactions: list[Interaction], entries: list[TimelineEntry], limit: int | None
) -> list[Interaction | TimelineEntry]:
    """Interactions and plugin entries, newest first (interactions first at equal times),
    at most ``limit``."""
    items: list[Interaction | TimelineEntry] = [*interactions, *entries]
    items.sort(key=lambda item: (moment(item), isinstance(item, Interaction)), reverse=True)
    return items if limit is None else items[:limit]


def plugin_timeline(crm: CRM, customer: Customer, limit: int) -> list[TimelineEntry]:
    """Each plugin's timeline entries for ``customer`` (``crmkit_customer_timeline``).

    Each implementation is called on its own, so one that raises, or returns anything but
    :class:`TimelineEntry` items, is logged with the plugin's name and left out while the
    others show. An entry without a ``source`` gets the plugin's name; each plugin gives at
    most ``limit`` entries (its newest).
    """
    arguments = {"crm": crm, "customer": customer, "limit": limit}
    found: list[TimelineEntry] = []
    for name, call in plugin_loader.each_implementation(crm.pm, "crmkit_customer_timeline"):
        try:
            entries = list(call(arguments) or ())
        except Exception as exc:
            log.error(
                "customer %s, timeline: plugin %r failed to give its entries: %s: %s",
                customer.id, name, type(exc).__name__, exc, exc_info=exc,
            )  # fmt: skip
            continue
        wrong = [e for e in entries if not isinstance(e, TimelineEntry)]
        if wrong:
            log.error(
                "customer %s, timeline: plugin %r returned a %s, not a crmkit.plugin."
                "TimelineEntry; its entries are left out",
                customer.id, name, type(wrong[0]).__name__,
            )  # fmt: skip
            continue
        entries.sort(key=lambda e: e.at, reverse=True)
        found += [e if e.source else attrs.evolve(e, source=name) for e in entries[:limit]]
    return found


def plugin_sections(crm: CRM, customer: Customer) -> list[Section]:
    """Each plugin's 360 section for ``customer``; a plugin that fails gets an error section.

    Each implementation of ``crmkit_customer_360_section`` is called on its own, in
    pluggy's order, so one that raises (or returns something other than a Section) is
    named, logged with its traceback, and shown as an error section while the others
    render. Hook wrappers of this hook are not applied.
    """
    arguments = {"crm": crm, "customer": customer}
    sections = []
    for name, call in plugin_loader.each_implementation(crm.pm, "crmkit_customer_360_section"):
        try:
            section = call(arguments)
        except Exception as exc:
            error = f"plugin {name!r} failed to build its section: {type(exc).__name__}: {exc}"
            log.error("customer %s, 360 view: %s", customer.id, error, exc_info=exc)
            sections.append(error_section(name, error))
            continue
        if not section:
            continue
        if not isinstance(section, Section):
            error = f"plugin {name!r} returned a {type(section).__name__}, not a crmkit.Section"
            log.error("customer %s, 360 view: %s", customer.id, error)
            sections.append(error_section(name, error))
            continue
        sections.append(section)
    return sections
