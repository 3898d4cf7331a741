"""A customer's consent: the latest answer per purpose and every change; record one."""

from __future__ import annotations

from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Route

TAGS = ("consent",)


def _consent(req: ApiRequest, customer_id: int) -> s.ConsentOut:
    customer = req.crm.customers.get(customer_id)
    history = req.crm.customers.consent_history(customer_id)
    return s.ConsentOut(
        customer_id=customer_id,
        latest=dict(customer.consents),
        history=[
            s.ConsentChangeOut(
                purpose=x.purpose,
                granted=x.granted,
                changed_at=x.changed_at,
                source=x.source,
                actor=x.actor,
            )
            for x in history
        ],
    )


def get_consent(req: ApiRequest) -> s.ConsentOut:
    """The customer's latest answer per purpose and every grant and withdrawal."""
    return _consent(req, req.path["customer_id"])


def set_consent(req: ApiRequest) -> ApiResponse:
    """Record consent for a purpose (``granted`` true) or its withdrawal (false)."""
    body: s.ConsentIn = req.body
    customer_id = req.path["customer_id"]
    req.crm.customers.set_consent(customer_id, body.purpose, body.granted, source=body.source)
    return ApiResponse(body=_consent(req, customer_id), status=201)


def routes() -> list[Route]:
    path = "/customers/{customer_id:int}/consent"
    return [
        Route("GET", path, get_consent, "A customer's consent", response=s.ConsentOut,
              tags=TAGS, quick=True, errors=(404,)),
        Route("POST", path, set_consent, "Record consent or its withdrawal", body=s.ConsentIn,
              response=s.ConsentOut, status=201, tags=TAGS, quick=True, errors=(404, 409)),
    ]  # fmt: skip
