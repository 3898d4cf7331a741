"""Request and response shapes of the core's HTTP API (``/api/v1``), as attrs classes.

The server decodes query strings and JSON bodies into the request classes (an unknown
field, a wrong type or a missing required field is a 422 before a handler runs) and
the OpenAPI document is generated from these classes. Money is :class:`~decimal.Decimal`
(a JSON string such as ``"199.00"``), times are ISO 8601 with an offset, dates
``YYYY-MM-DD``.

Conventions of the bodies: in a ``PATCH`` an absent field (or ``null``) leaves the
field as it is and an empty string ``""`` clears it (as the CLI's ``edit``);
``attributes`` merge, and an attribute given as ``null`` is removed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

import attrs

from crmkit.core.entities import (
    CHANNELS,
    CUSTOMER_KINDS,
    CUSTOMER_STATUSES,
    CUSTOMER_TYPES,
    DIRECTIONS,
    ORDER_STATUSES,
)

CustomerType = Literal[*CUSTOMER_TYPES]
CustomerKind = Literal[*CUSTOMER_KINDS]
CustomerStatus = Literal[*CUSTOMER_STATUSES]
Channel = Literal[*CHANNELS]
Direction = Literal[*DIRECTIONS]
OrderStatus = Literal[*ORDER_STATUSES]


def doc(text: str, default: Any = None) -> Any:
    """A field with ``default`` and a description (shown in the OpenAPI document)."""
    return attrs.field(default=default, metadata={"description": text})


#: the page size and cursor of every list
LIMIT = "How many items (1 to 500; default 50)."
CURSOR = 'The next page: the cursor of the Link header\'s rel="next" URL, as given.'
SINCE = (
    "From this time (inclusive): ISO 8601; a date alone is its midnight, a time without "
    "offset is in the configured time zone."
)
UNTIL = "Before this time (exclusive), as since."

# -- lists ------------------------------------------------------------------------------


@attrs.define
class CustomerQuery:
    """Filters of ``GET /customers`` (those of ``crmkit customer list``), oldest first.

    Query parameters are plain text (an empty one is as if absent); enumerated values
    are checked by the handlers (422 naming the parameter)."""

    q: str | None = doc("Text in the name, e-mail, phone or external id (any case).")
    status: str | None = doc(f"Only customers with this status: {', '.join(CUSTOMER_STATUSES)}.")
    owner: str | None = doc("Only customers owned by this staff member (username).")
    region: str | None = doc("Only customers in this region.")
    kind: str | None = doc(f"Only customers of this kind: {', '.join(CUSTOMER_KINDS)}.")
    industry: str | None = doc("Only customers in this industry.")
    consent: str | None = doc("Only customers who gave consent for this purpose (marketing).")
    attr: list[str] = attrs.field(
        factory=list,
        metadata={"description": "A custom attribute equals a value, key:value (repeatable; "
                  "typed when declared: attr=vip:true)."},
    )  # fmt: skip
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class InteractionQuery:
    """Filters of ``GET /interactions`` (those of ``crmkit interaction list``), newest first."""

    customer: str | None = doc("Only this customer's (id or external id).")
    channel: str | None = doc(f"Only on this channel: {', '.join(CHANNELS)}.")
    staff: str | None = doc("Only those of this staff member (username).")
    q: str | None = doc("Text in the subject or body (any case).")
    direction: str | None = doc("inbound or outbound.")
    since: str | None = doc(SINCE)
    until: str | None = doc(UNTIL)
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class CustomerInteractionQuery:
    """Filters of ``GET /customers/{id}/interactions``, newest first."""

    channel: str | None = doc(f"Only on this channel: {', '.join(CHANNELS)}.")
    staff: str | None = doc("Only those of this staff member (username).")
    q: str | None = doc("Text in the subject or body (any case).")
    direction: str | None = doc("inbound or outbound.")
    since: str | None = doc(SINCE)
    until: str | None = doc(UNTIL)
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class OrderQuery:
    """Filters of ``GET /orders`` (those of ``crmkit order list``), newest first."""

    customer: str | None = doc("Only this customer's (id or external id).")
    status: str | None = doc(f"Only orders with this status: {', '.join(ORDER_STATUSES)}.")
    q: str | None = doc("Text in the order number or the customer's name or external id.")
    owner: str | None = doc("Only orders of customers owned by this staff member.")
    region: str | None = doc("Only orders of customers in this region.")
    channel: str | None = doc("Only orders from this sales channel.")
    since: str | None = doc(SINCE)
    until: str | None = doc(UNTIL)
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class StaffQuery:
    """Filters of ``GET /staff``, by username."""

    role: str | None = doc("Only members with this role.")
    department: str | None = doc("Only members of this department.")
    include_inactive: bool = doc("Also the deactivated members.", False)
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class WorkflowInstanceQuery:
    """Filters of ``GET /workflow-instances`` (those of ``crmkit workflow list``), oldest
    first."""

    workflow: str | None = doc("Only instances of this workflow (sales).")
    stage: str | None = doc("Only instances at this stage (needs workflow).")
    customer: str | None = doc("Only this customer's (id or external id).")
    owner: str | None = doc("Only instances this staff member is responsible for.")
    open: bool = doc("Only instances not closed.", False)
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class AuditQuery:
    """Filters of ``GET /audit``, newest first."""

    customer: int | None = doc("Only entries about this customer (and records merged into it).")
    staff: str | None = doc(
        "Only entries by this actor (a username, token:7:wang.lei, cli:root) or on their behalf."
    )
    action: str | None = doc("An action or its prefix: customer.update, customer.")
    since: str | None = doc(SINCE)
    limit: int | None = doc(LIMIT)
    cursor: str | None = doc(CURSOR)


@attrs.define
class LimitQuery:
    """How many items, newest first."""

    limit: int | None = doc("How many items (1 to 500).")


@attrs.define
class ImportQuery:
    """Options of ``POST /import/{kind}`` (those of ``crmkit import``)."""

    skip_invalid: bool = doc(
        "Store the valid rows and list the bad ones (default: any bad row stores nothing).", False
    )
    decimal_comma: bool = doc("Amounts use a comma before the decimals (1234,50).", False)
    encoding: str | None = doc("Text encoding of the body (default UTF-8).")
    format: str | None = doc("csv or jsonl (default: from the Content-Type).")


# -- customers --------------------------------------------------------------------------


@attrs.define
class CustomerIn:
    """A new customer. Other fields than the profile's go in ``attributes`` (declared
    attributes are typed and validated)."""

    name: str
    type: CustomerType | None = None
    kind: CustomerKind | None = None
    status: CustomerStatus | None = None
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    region: str | None = None
    province: str | None = None
    city: str | None = None
    industry: str | None = None
    occupation: str | None = None
    birth_date: dt.date | None = None
    #: username of the staff member who owns the customer
    owner: str | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict)
    #: consent given with it, by purpose: ``{"marketing": true}``
    consents: dict[str, bool] = attrs.field(factory=dict)


@attrs.define
class CustomerPatch:
    """Changes to a customer: absent or null leaves a field, ``""`` clears it; attributes
    merge and a ``null`` attribute is removed."""

    name: str | None = None
    type: CustomerType | None = None
    kind: CustomerKind | None = None
    status: CustomerStatus | None = None
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    region: str | None = None
    province: str | None = None
    city: str | None = None
    industry: str | None = None
    occupation: str | None = None
    #: ``YYYY-MM-DD``, or ``""`` to clear
    birth_date: str | None = None
    owner: str | None = None
    attributes: dict[str, Any] | None = None


@attrs.define
class CustomerOut:
    """A customer: profile, typed custom attributes, latest consent per purpose, version
    (the ETag is ``"v<version>"``)."""

    id: int
    name: str
    type: str
    kind: str
    status: str
    external_id: str | None
    email: str | None
    phone: str | None
    address: str | None
    region: str | None
    province: str | None
    city: str | None
    industry: str | None
    occupation: str | None
    birth_date: dt.date | None
    owner: str | None
    attributes: dict[str, Any]
    consents: dict[str, bool]
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    erased_at: dt.datetime | None
    merged_into: int | None
    version: int


@attrs.define
class EraseIn:
    """Confirm an erasure: it cannot be undone."""

    confirm: bool


@attrs.define
class ErasureOut:
    """What an erasure did."""

    customer_id: int
    erased_at: dt.datetime | None
    #: true when the customer was erased before (every erase ran again to complete it)
    again: bool
    #: plugins that erased their part
    plugins: list[str]
    #: installed plugins loaded for the erasure (not enabled)
    loaded: list[str]


@attrs.define
class TimelineItem:
    """One item of a customer's timeline: an interaction (``kind`` interaction, source
    crmkit) or a plugin's entry."""

    at: dt.datetime
    kind: str
    title: str
    body: str
    source: str
    id: int | None = None
    channel: str | None = None
    direction: str | None = None
    staff: str | None = None


@attrs.define
class AttributeDefinitionOut:
    """A typed custom attribute of customers."""

    name: str
    type: str
    choices: list[str]
    required: bool
    description: str
    declared_by: str


# -- contacts and consent -------------------------------------------------------------


@attrs.define
class ContactIn:
    name: str
    role: str | None = None
    email: str | None = None
    phone: str | None = None


@attrs.define
class ContactPatch:
    """Changes to a contact: absent or null leaves a field, ``""`` clears role, email or
    phone."""

    name: str | None = None
    role: str | None = None
    email: str | None = None
    phone: str | None = None


@attrs.define
class ContactOut:
    """A contact person; ``etag`` is the value to send in If-Match to change it."""

    id: int
    customer_id: int
    name: str
    role: str | None
    email: str | None
    phone: str | None
    etag: str


@attrs.define
class ConsentIn:
    purpose: str
    granted: bool
    #: where it was given: "web form", "phone" ...
    source: str | None = None


@attrs.define
class ConsentChangeOut:
    purpose: str
    granted: bool
    changed_at: dt.datetime
    source: str | None
    actor: str | None


@attrs.define
class ConsentOut:
    """A customer's latest answer per purpose, and every change, oldest first."""

    customer_id: int
    latest: dict[str, bool]
    history: list[ConsentChangeOut]


# -- interactions and orders ------------------------------------------------------------


@attrs.define
class InteractionIn:
    """An interaction to log. ``staff`` defaults to the signed-in staff member;
    ``external_id`` makes logging it again a 409."""

    customer_id: int
    channel: Channel
    occurred_at: dt.datetime | None = None
    direction: Direction = "inbound"
    subject: str = ""
    body: str = ""
    staff: str | None = None
    external_id: str | None = None


@attrs.define
class InteractionOut:
    id: int
    customer_id: int
    channel: str
    occurred_at: dt.datetime
    direction: str
    subject: str
    body: str
    staff: str | None
    external_id: str | None


@attrs.define
class OrderLineIn:
    product: str
    quantity: Decimal = Decimal(1)
    price: Decimal = Decimal(0)
    category: str | None = None


@attrs.define
class OrderLineOut:
    product: str
    quantity: Decimal
    price: Decimal
    category: str | None


@attrs.define
class OrderIn:
    """An order. Lines, when given, must add up to the amount; a negative amount or cost
    only for a refunded order. ``currency`` defaults to the configured one."""

    customer_id: int
    amount: Decimal
    occurred_at: dt.datetime | None = None
    external_id: str | None = None
    cost: Decimal | None = None
    currency: str | None = None
    status: OrderStatus = "paid"
    channel: str | None = None
    lines: list[OrderLineIn] = attrs.field(factory=list)


@attrs.define
class OrderOut:
    id: int
    customer_id: int
    external_id: str | None
    occurred_at: dt.datetime
    amount: Decimal
    cost: Decimal | None
    margin: Decimal | None
    currency: str
    status: str
    channel: str | None
    lines: list[OrderLineOut]


@attrs.define
class OrderStatusIn:
    """The new status of an order."""

    status: OrderStatus


# -- staff ----------------------------------------------------------------------------


@attrs.define
class StaffIn:
    username: str
    name: str = ""
    email: str | None = None
    roles: list[str] = attrs.field(factory=list)
    department: str | None = None
    manager: str | None = None


@attrs.define
class StaffPatch:
    """Changes to a staff member: absent or null leaves a field, ``""`` clears email,
    department or manager; ``active`` false deactivates (history kept), true reactivates."""

    name: str | None = None
    email: str | None = None
    roles: list[str] | None = None
    department: str | None = None
    manager: str | None = None
    active: bool | None = None


@attrs.define
class StaffOut:
    """A staff member; ``etag`` is the value to send in If-Match to change them."""

    id: int
    username: str
    name: str
    email: str | None
    roles: list[str]
    department: str | None
    manager: str | None
    active: bool
    etag: str


# -- workflows --------------------------------------------------------------------------


@attrs.define
class StageOut:
    name: str
    title: str
    roles: list[str]
    next_steps: list[str]
    required_fields: list[str]
    to: list[str]
    terminal: bool
    outcome: str | None


@attrs.define
class WorkflowOut:
    name: str
    title: str
    initial: str
    source: str
    stages: list[StageOut]


@attrs.define
class WorkflowInstanceIn:
    """Start an instance of ``workflow`` for a customer at its initial stage."""

    workflow: str
    customer_id: int
    title: str
    value: Decimal | None = None
    due_on: dt.date | None = None
    owner: str | None = None
    fields: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class TransitionIn:
    """Move an instance to ``to_stage`` (refused with 409 when the workflow does not allow
    it, a required field is missing or your roles may not)."""

    to_stage: str
    reason: str = ""
    fields: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class TransitionOut:
    id: int | None
    from_stage: str | None
    to_stage: str
    actor: str | None
    at: dt.datetime
    reason: str


@attrs.define
class WorkflowInstanceOut:
    id: int
    workflow: str
    customer_id: int
    title: str
    stage: str
    created_at: dt.datetime
    stage_entered_at: dt.datetime
    value: Decimal | None
    due_on: dt.date | None
    owner: str | None
    fields: dict[str, Any]
    closed_at: dt.datetime | None


@attrs.define
class WorkflowInstanceDetail:
    """An instance with its transitions (oldest first) and the next steps of its stage."""

    id: int
    workflow: str
    customer_id: int
    title: str
    stage: str
    created_at: dt.datetime
    stage_entered_at: dt.datetime
    value: Decimal | None
    due_on: dt.date | None
    owner: str | None
    fields: dict[str, Any]
    closed_at: dt.datetime | None
    next_steps: list[str]
    transitions: list[TransitionOut]


# -- audit ------------------------------------------------------------------------------


@attrs.define
class AuditEntryOut:
    id: int
    at: dt.datetime
    actor: str
    actor_kind: str
    action: str
    entity: str
    entity_id: str | None
    customer_id: int | None
    #: ``{field: [before, after]}``
    changes: dict[str, Any]
    request_id: str | None
    on_behalf_of: str | None


# -- import -----------------------------------------------------------------------------


@attrs.define
class ImportReject:
    """One bad record: its line in the body, the column (if one) and why."""

    line: int
    column: str | None
    reason: str


@attrs.define
class ImportOut:
    """What an import read, stored, found already stored and rejected."""

    kind: str
    read: int
    stored: int
    already_present: int
    rejected: int
    committed: bool
    #: the first bad records (at most 100); ``rejected`` counts them all
    rejects: list[ImportReject]


# -- the 360 view -----------------------------------------------------------------------


@attrs.define
class SectionOut:
    """A plugin's section of the 360 view; ``error`` says why it failed, when it did."""

    name: str
    title: str
    data: dict[str, Any]
    error: str | None = None


@attrs.define
class AnalysesOut:
    included: bool
    reason: str | None


@attrs.define
class Customer360Out:
    """Everything about one customer: the JSON form of ``crmkit customer show``."""

    customer: CustomerOut
    analyses: AnalysesOut
    consent_history: list[ConsentChangeOut]
    contacts: list[ContactOut]
    #: paid_orders, revenue (decimal string), last_order
    totals: dict[str, Any]
    timeline: list[TimelineItem]
    interactions: list[InteractionOut]
    orders: list[OrderOut]
    workflows: list[WorkflowInstanceOut]
    sections: list[SectionOut]
    #: the latest audit entries about the customer (when the viewer may read the audit log)
    activity: list[AuditEntryOut] = attrs.field(factory=list)
