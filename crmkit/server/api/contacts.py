"""Contact persons of organisation customers: list, add, read, change (If-Match), remove."""

from __future__ import annotations

from typing import Any

from crmkit.core import contacts as contact_persons
from crmkit.errors import ValidationError
from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Route

TAGS = ("contacts",)


def list_contacts(req: ApiRequest) -> list[s.ContactOut]:
    """An organisation's contact persons, oldest first (each with its ETag)."""
    customer_id = req.path["customer_id"]
    req.crm.customers.get(customer_id)  # 404 for no customer (or one outside your scope)
    return [c.contact_out(k) for k in req.crm.customers.contacts(customer_id)]


def add_contact(req: ApiRequest) -> ApiResponse:
    """Add a contact person to an organisation customer."""
    body: s.ContactIn = req.body
    added = req.crm.customers.add_contact(
        req.path["customer_id"], body.name, role=body.role, email=body.email, phone=body.phone
    )
    out = c.contact_out(added)
    return ApiResponse(
        body=out, status=201, etag=out.etag, headers={"Location": f"/api/v1/contacts/{added.id}"}
    )


def _contact(req: ApiRequest) -> Any:
    """The contact of the path; 404 when there is none or its customer is out of scope."""
    found = contact_persons.get(req.crm, req.path["contact_id"])
    req.crm.customers.get(found.customer_id)
    return found


def get_contact(req: ApiRequest) -> ApiResponse:
    """A contact person, with its ETag for PATCH and DELETE."""
    out = c.contact_out(_contact(req))
    return ApiResponse(body=out, etag=out.etag)


def update_contact(req: ApiRequest) -> ApiResponse:
    """Change a contact: only when If-Match is its current ETag (else 412, nothing
    written). Absent or null fields stay; ``""`` clears role, email or phone."""
    body: s.ContactPatch = req.body or s.ContactPatch()
    changes = {k: v for k, v in (("name", body.name), ("role", body.role),
               ("email", body.email), ("phone", body.phone)) if v is not None}  # fmt: skip
    if not changes:
        raise ValidationError("nothing to change; give at least one field")
    with req.crm.transaction():  # the check and the change in one transaction
        common.lock_row(req.crm, "contacts", req.path["contact_id"])
        common.check_if_match(req, c.contact_etag(_contact(req)))
        after = req.crm.customers.update_contact(req.path["contact_id"], **changes)
    out = c.contact_out(after)
    return ApiResponse(body=out, etag=out.etag)


def remove_contact(req: ApiRequest) -> ApiResponse:
    """Remove a contact person; with If-Match only while it is unchanged (else 412)."""
    with req.crm.transaction():
        common.lock_row(req.crm, "contacts", req.path["contact_id"])
        common.check_if_match(req, c.contact_etag(_contact(req)), required=False)
        req.crm.customers.remove_contact(req.path["contact_id"])
    return ApiResponse(body=None, status=204)


ONE = "/contacts/{contact_id:int}"


def routes() -> list[Route]:
    owner = "/customers/{customer_id:int}/contacts"
    return [
        Route("GET", owner, list_contacts, "List a customer's contacts",
              response=list[s.ContactOut], tags=TAGS, quick=True, errors=(404,)),
        Route("POST", owner, add_contact, "Add a contact person", body=s.ContactIn,
              response=s.ContactOut, status=201, tags=TAGS, quick=True, errors=(404, 409)),
        Route("GET", ONE, get_contact, "Get a contact person", response=s.ContactOut,
              tags=TAGS, quick=True, errors=(404,)),
        Route("PATCH", ONE, update_contact, "Change a contact person (If-Match)",
              body=s.ContactPatch, response=s.ContactOut, tags=TAGS, quick=True,
              errors=(404, 409, 412, 428)),
        Route("DELETE", ONE, remove_contact, "Remove a contact person", status=204,
              tags=TAGS, quick=True, errors=(404, 409, 412)),
    ]  # fmt: skip
