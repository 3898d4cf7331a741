"""``/customers``: list, add, read, change (If-Match), the 360 view, timeline, export,
erasure, and the declared custom attributes."""

from __future__ import annotations

from typing import Any

import attrs

from crmkit.core import view360
from crmkit.core.customers import PROFILE_FIELDS
from crmkit.core.entities import CUSTOMER_KINDS, CUSTOMER_STATUSES
from crmkit.errors import PreconditionFailed, ValidationError
from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Page, Route

TAGS = ("customers",)


def _attribute_filters(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise ValidationError(
                f"attr {pair!r} is not key:value, e.g. attr=vip:true", field="attr"
            )
        found[key.strip()] = value.strip()
    return found


def list_customers(req: ApiRequest) -> Page:
    """Customers matching the filters, oldest first (cursor paging)."""
    query: s.CustomerQuery = req.query or s.CustomerQuery()
    c.choice(query.status, "status", CUSTOMER_STATUSES)
    c.choice(query.kind, "kind", CUSTOMER_KINDS)
    limit = common.limit_of(query.limit)
    filters: dict[str, Any] = {
        "text": query.q or None,
        "status": query.status,
        "owner": query.owner,
        "region": query.region,
        "kind": query.kind,
        "industry": query.industry,
        "consent": query.consent,
        "attributes": _attribute_filters(query.attr),
    }
    crm = req.crm

    def fetch(offset: int, size: int) -> list[Any]:
        return crm.customers.list(limit=size, offset=offset, **filters)

    items, cursor = common.offset_page(fetch, limit, query.cursor)
    return Page([c.customer_out(crm, item) for item in items], cursor)


def _with_etag(req: ApiRequest, customer: Any, status: int = 200) -> ApiResponse:
    version = c.customer_version(req.crm, customer)
    body = c.customer_out(req.crm, customer, version)
    return ApiResponse(body=body, status=status, etag=c.customer_etag(version))


def _check_owner(req: ApiRequest, owner: str | None) -> None:
    """An owner who is no staff member is a 422 on ``owner`` (not a 404 of the URL)."""
    if owner and req.crm.staff.find(owner) is None:
        raise ValidationError(
            f"owner {owner!r} is no staff member; see GET /api/v1/staff", field="owner"
        )


def add_customer(req: ApiRequest) -> ApiResponse:
    """Add a customer; consents given with it are recorded in its consent history."""
    body: s.CustomerIn = req.body
    values = {k: v for k, v in attrs.asdict(body, recurse=False).items() if v is not None}
    _check_owner(req, body.owner)
    added = req.crm.customers.add(values, consent_source="api")
    response = _with_etag(req, added, 201)
    response.headers = {"Location": f"/api/v1/customers/{added.id}"}
    return response


def get_customer(req: ApiRequest) -> ApiResponse:
    """A customer, with its ETag (``"v<version>"``) for PATCH."""
    return _with_etag(req, req.crm.customers.get(req.path["customer_id"]))


def _expected_version(req: ApiRequest) -> int | None:
    """The version If-Match names (None for ``*``); 428 without If-Match, 412 when it is
    not a customer ETag."""
    tags = common.if_match_values(req)
    if tags is None:
        raise common.precondition_required()
    if "*" in tags:
        return None
    for tag in tags:
        if tag.startswith("v") and tag[1:].isdigit():
            return int(tag[1:])
    raise PreconditionFailed(
        f'If-Match {", ".join(tags) or "(empty)"} is not this customer\'s ETag ("v<version>" '
        "from GET /customers/{id}); read it again and redo your change"
    )


def update_customer(req: ApiRequest) -> ApiResponse:
    """Change a customer: only when If-Match is its current ETag (else 412, nothing
    written). Absent or null fields stay, ``""`` clears one; attributes merge (null
    removes one)."""
    body: s.CustomerPatch = req.body or s.CustomerPatch()
    expected = _expected_version(req)
    changes: dict[str, Any] = {}
    for field in PROFILE_FIELDS:
        value = getattr(body, field, None)
        if value is not None:
            changes[field] = value if value != "" else None
    if changes.get("name", "") is None:
        raise ValidationError("name must not be empty", field="name")
    for key in ("type", "kind", "status"):
        if key in changes and changes[key] is None:
            raise ValidationError(f"{key} cannot be cleared; give one of its values", field=key)
    _check_owner(req, changes.get("owner"))
    attributes = dict(body.attributes or {})
    if not changes and not attributes:
        raise ValidationError("nothing to change; give at least one field")
    options = {} if expected is None else {"expected_version": expected}
    after = req.crm.customers.update(
        req.path["customer_id"], attributes=attributes, **changes, **options
    )
    return _with_etag(req, after)


def customer_360(req: ApiRequest) -> s.Customer360Out:
    """The 360 view: profile, consent, contacts, totals, timeline, orders, workflows,
    plugin sections and recent activity."""
    query: s.LimitQuery = req.query or s.LimitQuery()
    limit = common.limit_of(query.limit if query.limit is not None else 100)
    crm = req.crm
    view = crm.customers.view(req.path["customer_id"], limit=limit)
    sections = []
    for section in view.sections:
        error = section.data.get("error") if view360.is_error_section(section) else None
        sections.append(
            s.SectionOut(
                name=section.name, title=section.title, data=dict(section.data), error=error
            )
        )
    activity = [c.audit_out(e) for e in getattr(view, "activity", None) or []]
    return s.Customer360Out(
        customer=c.customer_out(crm, view.customer),
        analyses=s.AnalysesOut(
            included=view.analyses_excluded is None, reason=view.analyses_excluded
        ),
        consent_history=[_consent_change(x) for x in view.consent_history],
        contacts=[c.contact_out(k) for k in view.contacts],
        totals=dict(view.totals),
        timeline=[timeline_item(item) for item in view.timeline],
        interactions=[c.interaction_out(i) for i in view.interactions],
        orders=[c.order_out(o) for o in view.orders],
        workflows=[c.instance_out(w) for w in view.workflows],
        sections=sections,
        activity=activity,
    )


def _consent_change(change: Any) -> s.ConsentChangeOut:
    return s.ConsentChangeOut(
        purpose=change.purpose,
        granted=change.granted,
        changed_at=change.changed_at,
        source=change.source,
        actor=change.actor,
    )


def timeline_item(item: Any) -> s.TimelineItem:
    from crmkit.core.entities import Interaction

    if isinstance(item, Interaction):
        return s.TimelineItem(
            at=item.occurred_at,
            kind="interaction",
            title=item.subject,
            body=item.body,
            source="crmkit",
            id=item.id,
            channel=item.channel,
            direction=item.direction,
            staff=item.staff,
        )
    return s.TimelineItem(
        at=item.at, kind=item.kind, title=item.title, body=item.body, source=item.source
    )


def customer_timeline(req: ApiRequest) -> list[s.TimelineItem]:
    """The customer's timeline: interactions and what plugins add, newest first."""
    query: s.LimitQuery = req.query or s.LimitQuery()
    limit = common.limit_of(query.limit)
    customer = req.crm.customers.get(req.path["customer_id"])
    return [timeline_item(item) for item in view360.timeline(req.crm, customer, limit=limit)]


def export_customer(req: ApiRequest) -> dict[str, Any]:
    """Everything held on the customer, core and plugins (each plugin's part under
    ``plugins``): the person's data export."""
    from crmkit.core.serialize import jsonable

    return jsonable(req.crm.customers.export(req.path["customer_id"]))


def erase_customer(req: ApiRequest) -> s.ErasureOut:
    """Erase the customer's personal data everywhere (orders stay, anonymised); needs
    ``{"confirm": true}``. Erasing again completes a partial erasure."""
    from crmkit.core import personal

    body: s.EraseIn = req.body
    if body is None or body.confirm is not True:
        raise ValidationError(
            'an erasure cannot be undone; send {"confirm": true} to erase', field="confirm"
        )
    done = personal.erase(req.crm, req.path["customer_id"])
    return s.ErasureOut(
        customer_id=req.path["customer_id"],
        erased_at=done.customer.erased_at,
        again=bool(done.again),
        plugins=list(done.plugins),
        loaded=list(done.loaded),
    )


def list_attributes(req: ApiRequest) -> list[s.AttributeDefinitionOut]:
    """The declared custom attributes of customers (their types and choices)."""
    return [
        s.AttributeDefinitionOut(
            name=d.name,
            type=d.type,
            choices=list(d.choices),
            required=d.required,
            description=d.description,
            declared_by=d.declared_by,
        )
        for d in sorted(req.crm.attribute_definitions.values(), key=lambda d: d.name)
    ]


ONE = "/customers/{customer_id:int}"


def routes() -> list[Route]:
    return [
        Route("GET", "/customers", list_customers, "List customers", query=s.CustomerQuery,
              response=list[s.CustomerOut], tags=TAGS, quick=True),
        Route("POST", "/customers", add_customer, "Add a customer", body=s.CustomerIn,
              response=s.CustomerOut, status=201, tags=TAGS, quick=True, errors=(409,)),
        Route("GET", ONE, get_customer, "Get a customer", response=s.CustomerOut, tags=TAGS,
              quick=True, errors=(404,)),
        Route("PATCH", ONE, update_customer, "Change a customer (If-Match)",
              body=s.CustomerPatch, response=s.CustomerOut, tags=TAGS, quick=True,
              errors=(404, 409, 412, 428)),
        Route("GET", ONE + "/360", customer_360, "The customer 360 view", query=s.LimitQuery,
              response=s.Customer360Out, tags=TAGS, quick=True, errors=(404,)),
        Route("GET", ONE + "/timeline", customer_timeline, "A customer's timeline",
              query=s.LimitQuery, response=list[s.TimelineItem], tags=TAGS, quick=True,
              errors=(404,)),
        Route("GET", ONE + "/export", export_customer, "Export a customer's data",
              tags=TAGS, errors=(404,)),
        Route("POST", ONE + "/erase", erase_customer, "Erase a customer's personal data",
              body=s.EraseIn, response=s.ErasureOut, tags=TAGS, errors=(404,)),
        Route("GET", "/attributes", list_attributes, "Declared custom attributes",
              response=list[s.AttributeDefinitionOut], tags=TAGS, quick=True),
    ]  # fmt: skip
