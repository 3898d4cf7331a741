"""The complaints HTTP API, mounted by ``crmkit serve`` under ``/api/v1/complaints/``.

Request and response shapes are the attrs classes below (the server validates bodies and
query strings with them and generates the OpenAPI document from them). Handlers only
translate: every permission check and audit entry is the service's
(:class:`~crmkit_complaints.service.ComplaintService`). Two routes are public (no sign-in):
the customer's status page and survey, reached with the tracking code the customer was
given; they show only what the customer may see — stage, dates and public replies, never
internal notes, assignees, usernames or SLA figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from crmkit import plugin
from crmkit.plugin import ApiRequest, ApiResponse, Page, Route, ValidationError
from crmkit_complaints.records import Complaint, due_of
from crmkit_complaints.service import service

TAGS = ("complaints",)

# -- shapes -----------------------------------------------------------------------------


@attrs.define
class ComplaintIn:
    """A complaint received through any channel (its interaction is logged with it unless
    ``interaction_id`` names one of the customer's)."""

    customer_id: int
    channel: str
    category: str
    description: str
    severity: str = "medium"
    priority: str = "normal"
    assignee: str | None = None
    interaction_id: int | None = None


@attrs.define
class QueueQuery:
    """Filters of the queue ``GET /complaints``, ordered by the next SLA due moment."""

    customer_id: int | None = None
    stage: str | None = None
    #: only complaints not resolved or closed
    open: bool = False
    department: str | None = None
    assignee: str | None = None
    priority: str | None = None
    channel: str | None = None
    category: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class ComplaintOut:
    id: int
    customer_id: int
    tracking_code: str
    channel: str
    category: str
    department: str | None
    severity: str
    priority: str
    stage: str
    assignee: str | None
    description: str
    root_cause: str
    resolution: str
    received_at: dt.datetime
    first_response_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    first_response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None
    #: the earlier of the running due moments (the queue's order); null when none runs
    next_due_at: dt.datetime | None
    interaction_id: int | None
    workflow_instance_id: int | None
    created_by: str | None


@attrs.define
class ReplyOut:
    id: int
    complaint_id: int
    at: dt.datetime
    author: str | None
    body: str
    #: false: an internal note the customer never sees
    public: bool
    show_author: bool


@attrs.define
class ComplaintDetail:
    complaint: ComplaintOut
    #: replies and internal notes, oldest first
    replies: list[ReplyOut]
    #: hours to first response and to resolution (business and wall clock)
    durations: dict[str, float | None]


@attrs.define
class TransitionIn:
    """Move the complaint to ``to_stage`` (the workflow's stage roles apply)."""

    to_stage: str
    reason: str = ""
    root_cause: str | None = None
    #: required to resolve, unless the complaint has one already
    resolution: str | None = None


@attrs.define
class ReplyIn:
    body: str
    #: false: an internal note
    public: bool = True
    #: show your name to the customer with this reply
    show_author: bool = False


@attrs.define
class AssignIn:
    assignee: str


@attrs.define
class SurveyIn:
    #: satisfaction, 1 to 5
    csat: int
    #: likelihood to recommend, 0 to 10
    nps: int
    comment: str = ""


@attrs.define
class SurveyOut:
    csat: int
    nps: int
    comment: str
    at: dt.datetime


@attrs.define
class PublicReply:
    at: dt.datetime
    #: the staff member's display name, only when they chose to sign the reply
    author: str | None
    body: str


@attrs.define
class StatusOut:
    """What the customer sees for their tracking code."""

    tracking_code: str
    category: str
    stage: str
    stage_title: str
    received_at: dt.datetime
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    replies: list[PublicReply]
    #: the satisfaction survey can be answered now
    survey_open: bool


# -- helpers ----------------------------------------------------------------------------


def encode_cursor(complaint: Complaint) -> str:
    return plugin.encode_cursor({"due": due_of(complaint), "id": complaint.id})


def decode_cursor(cursor: str | None) -> tuple[dt.datetime | None, int] | None:
    state = plugin.decode_cursor(cursor, "id", "due")
    if state is None:
        return None
    last_id = plugin.cursor_int(state, "id")
    if state["due"] is None:
        return None, last_id
    try:
        moment = dt.datetime.fromisoformat(state["due"])
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError(
            'cursor is not valid; use the URL of the Link header\'s rel="next" as given',
            field="cursor",
        )
    return moment, last_id


def complaint_out(c: Complaint) -> ComplaintOut:
    fields = {f.name for f in attrs.fields(ComplaintOut)} - {"next_due_at"}
    return ComplaintOut(**{name: getattr(c, name) for name in fields}, next_due_at=due_of(c))


def _reply_out(r: dict[str, Any]) -> ReplyOut:
    return ReplyOut(**{f.name: r[f.name] for f in attrs.fields(ReplyOut)})


def _created(body: object, location: str) -> ApiResponse:
    return ApiResponse(body, status=201, headers={"Location": location})


# -- handlers ---------------------------------------------------------------------------


def log_complaint(req: ApiRequest) -> ApiResponse:
    """Log a complaint from any channel; its SLA clock starts now."""
    body: ComplaintIn = req.body
    c = service(req.crm).log(
        body.customer_id,
        channel=body.channel,
        category=body.category,
        description=body.description,
        severity=body.severity,
        priority=body.priority,
        assignee=body.assignee,
        interaction_id=body.interaction_id,
    )
    return _created(complaint_out(c), f"/api/v1/complaints/complaints/{c.id}")


def complaint_queue(req: ApiRequest) -> Page:
    """The queue: complaints by their next SLA due moment (none last), then id."""
    query: QueueQuery = req.query or QueueQuery()
    limit = plugin.page_limit(query.limit)
    found = service(req.crm).queue(
        after=decode_cursor(query.cursor),
        limit=limit + 1,
        customer_id=query.customer_id,
        stage=query.stage,
        open_only=query.open,
        department=query.department,
        assignee=query.assignee,
        priority=query.priority,
        channel=query.channel,
        category=query.category,
    )
    items = found[:limit]
    cursor = encode_cursor(items[-1]) if len(found) > limit and items else None
    return Page([complaint_out(c) for c in items], cursor)


def get_complaint(req: ApiRequest) -> ComplaintDetail:
    """A complaint with its replies, internal notes and SLA durations."""
    svc = service(req.crm)
    c = svc.get(req.path["complaint_id"])
    return ComplaintDetail(
        complaint=complaint_out(c),
        replies=[_reply_out(r) for r in svc.replies(c.id)],
        durations=svc.durations(c),
    )


def move_complaint(req: ApiRequest) -> ApiResponse:
    """Move a complaint to another stage of its workflow."""
    body: TransitionIn = req.body
    c = service(req.crm).move(
        req.path["complaint_id"],
        body.to_stage,
        reason=body.reason,
        root_cause=body.root_cause,
        resolution=body.resolution,
    )
    return ApiResponse(complaint_out(c), status=201)


def reply_to_complaint(req: ApiRequest) -> ApiResponse:
    """A public reply (the customer sees it on the status page) or an internal note."""
    body: ReplyIn = req.body
    r = service(req.crm).reply(
        req.path["complaint_id"], body.body, public=body.public, show_author=body.show_author
    )
    return ApiResponse(_reply_out(r), status=201)


def assign_complaint(req: ApiRequest) -> ComplaintOut:
    """Assign a complaint to a staff member."""
    body: AssignIn = req.body
    return complaint_out(service(req.crm).assign(req.path["complaint_id"], body.assignee))


def record_survey(req: ApiRequest) -> ApiResponse:
    """Record the customer's satisfaction survey (after resolution, once)."""
    body: SurveyIn = req.body
    v = service(req.crm).survey(
        req.path["complaint_id"], csat=body.csat, nps=body.nps, comment=body.comment
    )
    return ApiResponse(SurveyOut(v["csat"], v["nps"], v["comment"], v["at"]), status=201)


def public_status(req: ApiRequest) -> StatusOut:
    """The customer's view of their complaint (no sign-in: the tracking code)."""
    s = service(req.crm).status(req.path["tracking_code"])
    return StatusOut(
        tracking_code=s["tracking_code"],
        category=s["category"],
        stage=s["stage"],
        stage_title=s["stage_title"],
        received_at=s["received_at"],
        resolved_at=s["resolved_at"],
        closed_at=s["closed_at"],
        replies=[PublicReply(r["at"], r["author"], r["body"]) for r in s["replies"]],
        survey_open=s["survey_open"],
    )


def public_survey(req: ApiRequest) -> ApiResponse:
    """The customer answers the satisfaction survey (no sign-in: the tracking code)."""
    body: SurveyIn = req.body
    v = service(req.crm).survey_by_code(
        req.path["tracking_code"], csat=body.csat, nps=body.nps, comment=body.comment
    )
    return ApiResponse(SurveyOut(v["csat"], v["nps"], v["comment"], v["at"]), status=201)


def routes() -> list[Route]:
    one = "/complaints/{complaint_id:int}"
    status = "/status/{tracking_code}"
    writes = (404, 409, 422)
    return [
        Route("POST", "/complaints", log_complaint, "Log a complaint", body=ComplaintIn,
              response=ComplaintOut, status=201, tags=TAGS, errors=writes),
        Route("GET", "/complaints", complaint_queue, "The complaints queue by SLA due",
              query=QueueQuery, response=list[ComplaintOut], tags=TAGS),
        Route("GET", one, get_complaint, "A complaint with its replies",
              response=ComplaintDetail, tags=TAGS, errors=(404,)),
        Route("POST", f"{one}/transitions", move_complaint, "Move a complaint",
              body=TransitionIn, response=ComplaintOut, status=201, tags=TAGS, errors=writes),
        Route("POST", f"{one}/replies", reply_to_complaint, "Reply or add an internal note",
              body=ReplyIn, response=ReplyOut, status=201, tags=TAGS, errors=writes),
        Route("POST", f"{one}/assignment", assign_complaint, "Assign a complaint",
              body=AssignIn, response=ComplaintOut, tags=TAGS, errors=writes),
        Route("POST", f"{one}/survey", record_survey, "Record the satisfaction survey",
              body=SurveyIn, response=SurveyOut, status=201, tags=TAGS, errors=writes),
        Route("GET", status, public_status, "A complaint's status for its customer",
              response=StatusOut, public=True, tags=TAGS, errors=(404,)),
        Route("POST", f"{status}/survey", public_survey, "The customer answers the survey",
              body=SurveyIn, response=SurveyOut, status=201, public=True, tags=TAGS,
              errors=writes),
    ]  # fmt: skip


__all__ = ["routes"]
