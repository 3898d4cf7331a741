"""Staff members: list, read, add, change (If-Match; ``active`` deactivates)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from crmkit.errors import ValidationError
from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Page, Route

TAGS = ("staff",)


def list_staff(req: ApiRequest) -> Page:
    """Staff members by username (active ones unless ``include_inactive``)."""
    query: s.StaffQuery = req.query or s.StaffQuery()
    limit = common.limit_of(query.limit)
    state = common.decode_cursor(query.cursor, "after")
    after = str(state["after"]) if state else ""
    members = req.crm.staff.list(
        role=query.role, department=query.department, include_inactive=query.include_inactive
    )
    rest = [m for m in members if m.username > after]
    items = rest[:limit]
    cursor = common.encode_cursor({"after": items[-1].username}) if len(rest) > limit else None
    return Page([c.staff_out(m) for m in items], cursor)


def get_staff(req: ApiRequest) -> ApiResponse:
    """A staff member, with the ETag for PATCH."""
    out = c.staff_out(req.crm.staff.get(req.path["username"]))
    return ApiResponse(body=out, etag=out.etag)


def _check_manager(req: ApiRequest, manager: str | None) -> None:
    """A manager who is no staff member is a 422 on ``manager`` (not a 404 of the URL)."""
    if manager and req.crm.staff.find(manager) is None:
        raise ValidationError(f"manager {manager!r} is no staff member", field="manager")


def add_staff(req: ApiRequest) -> ApiResponse:
    """Add a staff member (passwords and tokens: ``crmkit staff password``, /auth)."""
    body: s.StaffIn = req.body
    _check_manager(req, body.manager)
    added = req.crm.staff.add(
        body.username,
        body.name,
        roles=list(body.roles),
        email=body.email,
        department=body.department,
        manager=body.manager,
    )
    out = c.staff_out(added)
    return ApiResponse(
        body=out,
        status=201,
        etag=out.etag,
        headers={"Location": f"/api/v1/staff/{quote(added.username, safe='')}"},
    )


def update_staff(req: ApiRequest) -> ApiResponse:
    """Change a staff member: only when If-Match is their current ETag (else 412, nothing
    written). ``active`` false deactivates them, true reactivates."""
    body: s.StaffPatch = req.body or s.StaffPatch()
    username = req.path["username"]
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("name", body.name), ("email", body.email), ("roles", body.roles),
            ("department", body.department), ("manager", body.manager),
        )
        if v is not None
    }  # fmt: skip
    if not changes and body.active is None:
        raise ValidationError("nothing to change; give at least one field")
    crm = req.crm
    _check_manager(req, body.manager)
    with crm.transaction():  # the check and the change in one transaction
        common.lock_row(crm, "staff", username, column="username")
        common.check_if_match(req, c.staff_etag(crm.staff.get(username)))
        if changes:
            crm.staff.update(username, **changes)
        if body.active is False:
            crm.staff.deactivate(username)
        elif body.active is True:
            crm.staff.activate(username)
        after = crm.staff.get(username)
    out = c.staff_out(after)
    return ApiResponse(body=out, etag=out.etag)


def routes() -> list[Route]:
    one = "/staff/{username}"
    return [
        Route("GET", "/staff", list_staff, "List staff members", query=s.StaffQuery,
              response=list[s.StaffOut], tags=TAGS, quick=True),
        Route("POST", "/staff", add_staff, "Add a staff member", body=s.StaffIn,
              response=s.StaffOut, status=201, tags=TAGS, errors=(409,)),
        Route("GET", one, get_staff, "Get a staff member", response=s.StaffOut, tags=TAGS,
              quick=True, errors=(404,)),
        Route("PATCH", one, update_staff, "Change a staff member (If-Match)",
              body=s.StaffPatch, response=s.StaffOut, tags=TAGS, errors=(404, 412, 428)),
    ]  # fmt: skip
