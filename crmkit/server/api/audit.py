"""``GET /audit``: the audit log, newest first, filtered as ``crmkit audit list``."""

from __future__ import annotations

from typing import Any

from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, Page, Route

TAGS = ("audit",)


def _entries(req: ApiRequest, **filters: Any) -> list[Any]:
    """The entries through the audit service ``crm.audit_log`` (it checks ``audit.read``);
    on a CRM without one, the same check and read done here."""
    crm = req.crm
    service = getattr(crm, "audit_log", None)
    if service is not None:
        return list(service.list(**filters))
    from crmkit.core import audit

    crm.authorise("audit.read")
    with crm.reading() as connection:
        return audit.entries(connection, **filters)


def list_audit(req: ApiRequest) -> Page:
    """Audit entries, newest first: who did what, when, to which fields (cursor paging)."""
    query: s.AuditQuery = req.query or s.AuditQuery()
    limit = common.limit_of(query.limit)
    state = common.decode_cursor(query.cursor, "before")
    before = common.state_int(state, "before") if state else None
    found = _entries(
        req,
        customer_id=query.customer,
        actor=query.staff or None,
        action=query.action or None,
        since=c.moment(req.crm, query.since, "since"),
        before_id=before,
        limit=limit + 1,
    )
    items = found[:limit]
    cursor = common.encode_cursor({"before": items[-1].id}) if len(found) > limit else None
    return Page([c.audit_out(e) for e in items], cursor)


def routes() -> list[Route]:
    return [
        Route("GET", "/audit", list_audit, "List audit entries", query=s.AuditQuery,
              response=list[s.AuditEntryOut], tags=TAGS),
    ]  # fmt: skip
