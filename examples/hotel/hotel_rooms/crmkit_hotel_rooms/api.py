"""The hotel's HTTP routes, mounted under ``/api/v1/hotel_rooms``: a guest's room
preferences and stays, and editing the preferences with ``If-Match`` (the ETag of
``GET /guests/{id}``). The service functions authorise and audit; this module only
translates shapes."""

from __future__ import annotations

import datetime as dt

import attrs

from crmkit.plugin import ApiRequest, ApiResponse, PreconditionFailed, Route
from crmkit_hotel_rooms import service


@attrs.define
class Preferences:
    floor: str | None
    pillow: str | None
    bed: str | None
    quiet: bool | None
    note: str | None
    updated_by: str | None
    updated_at: dt.datetime


@attrs.define
class Stays:
    #: paid stays
    count: int
    #: room nights of those stays
    nights: int


@attrs.define
class Guest:
    """A guest's room preferences (``null`` before any) and stays; its ``ETag`` goes back
    as ``If-Match`` with a ``PATCH`` of the preferences."""

    customer_id: int
    preferences: Preferences | None
    stays: Stays


@attrs.define
class PreferencesPatch:
    """The preferences to change (absent: unchanged); floors, pillows and beds are those
    the ``[hotel_rooms]`` settings offer."""

    floor: str | None = None
    pillow: str | None = None
    bed: str | None = None
    quiet: bool | None = None
    note: str | None = None


def _guest(req: ApiRequest, customer_id: int) -> ApiResponse:
    found = service.profile(req.crm, customer_id)
    stays = service.stays(req.crm, customer_id)
    body = Guest(customer_id, Preferences(**found) if found else None, Stays(**stays))
    return ApiResponse(body, etag=service.etag(found))


def get_guest(req: ApiRequest) -> ApiResponse:
    customer_id = req.path["customer_id"]
    req.crm.customers.get(customer_id)  # 404 for no such customer
    return _guest(req, customer_id)


def patch_preferences(req: ApiRequest) -> ApiResponse:
    if req.if_match is None:  # the server answers 428 first where it checks PATCH itself
        raise PreconditionFailed("this edit needs If-Match with the guest's ETag")
    body: PreferencesPatch = req.body
    customer_id = req.path["customer_id"]
    expected = None if req.if_match.strip() == "*" else req.if_match
    service.prefer(req.crm, customer_id, expected=expected, **attrs.asdict(body))
    return _guest(req, customer_id)


def routes() -> list[Route]:
    tags = ("hotel_rooms",)
    return [
        Route("GET", "/guests/{customer_id:int}", get_guest,
              "A guest's room preferences and stays", response=Guest, tags=tags,
              errors=(404,)),
        Route("PATCH", "/guests/{customer_id:int}/preferences", patch_preferences,
              "Change a guest's room preferences (needs If-Match)", body=PreferencesPatch,
              response=Guest, tags=tags, errors=(404, 412, 422, 428)),
    ]  # fmt: skip
