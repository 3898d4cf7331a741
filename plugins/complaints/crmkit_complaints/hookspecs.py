"""The hooks the complaints plugin publishes, and the complaint facts they pass.

Another plugin implements them with ``@crmkit.hookimpl(optionalhook=True)`` (so it still
loads without this plugin); it never needs to import this package: the objects it receives
carry the attributes documented here.

:class:`ComplaintFacts` is the published view of a complaint: the fields other plugins may
read (the knowledge base's reply templates use them as ``complaint.<field>``). Its fields
and their descriptions are part of the contract; the plugin's own
``crmkit_complaints.service.Complaint`` (SLA bookkeeping included) is not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from crmkit.plugin import hookspec

if TYPE_CHECKING:  # for annotations only
    from crmkit.plugin import CRM, HookContext
    from crmkit_complaints.records import Alert

#: Implementations under the old names still work, with a ``DeprecationWarning``, until
#: crmkit API 1.3.
RENAMED_HOOKS: dict[str, str] = {
    "crmkit_complaints_sla_alerts": "crmkit_complaints_after_sla_alerts_raised",
    "crmkit_complaints_propose_replies": "crmkit_complaints_reply_proposals",
}


def _fact(doc: str) -> Any:
    """A field of :class:`ComplaintFacts`, with its description in ``metadata["doc"]``."""
    return attrs.field(metadata={"doc": doc})


@attrs.frozen
class ComplaintFacts:
    """A complaint as other plugins see it: each field's description is in
    ``attrs.fields(ComplaintFacts).<field>.metadata["doc"]``.

    Times are timezone-aware (UTC); a text the staff has not filled in yet is ``""``.
    """

    id: int = _fact("the complaint's number (complaints.id), as staff refer to it")
    customer_id: int = _fact("the customer who complained (customers.id)")
    category: str = _fact("what the complaint is about, one of the configured categories")
    channel: str = _fact("the channel it came in through (phone, email, letter, web, ...)")
    description: str = _fact("the customer's complaint in their words")
    tracking_code: str = _fact("the code the customer follows the case with")
    department: str | None = _fact(
        "the department the category routes to (e.g. logistics); None when not routed"
    )
    severity: str = _fact("how serious it is, one of the configured severities")
    priority: str = _fact("how fast it is handled, one of the configured priorities")
    assignee: str | None = _fact("username of the staff member handling it; None if unassigned")
    stage: str = _fact(
        "the workflow stage: received, acknowledged, investigating, waiting_on_customer, "
        "resolved or closed"
    )
    root_cause: str = _fact("the cause the investigation found; empty until noted")
    resolution: str = _fact("how it was resolved; empty until noted")
    received_at: dt.datetime = _fact("when the complaint was received")
    first_response_due_at: dt.datetime | None = _fact(
        "when the first answer is due; None once answered and while the SLA clock is stopped"
    )
    resolution_due_at: dt.datetime | None = _fact(
        "when the resolution is due; None once resolved and while the SLA clock is stopped"
    )
    resolved_at: dt.datetime | None = _fact("when it was resolved; None while unresolved")


@hookspec
def crmkit_complaints_after_sla_alerts_raised(ctx: HookContext, alerts: Sequence[Alert]) -> None:
    """Event: SLA warnings and breaches were raised (each exactly once).

    When: ``crmkit complaints check-sla`` / ``service(crm).check_sla(as_of)``, after the new
    alerts and the default notifier's outbox rows are stored, only when there are new
    alerts. Transaction: the check's, before its commit; raising rolls the whole check
    back (no alert is stored, so the next check raises them again). Returns: nothing.
    ``alerts`` are ``crmkit_complaints.service.Alert`` objects (``complaint_id``,
    ``tracking_code``, ``target`` — ``first_response`` or ``resolution`` —, ``level`` —
    ``warning`` or ``breach`` —, ``due_at``, ``raised_at``, ``assignee``, ``responsible``
    — the department's fallback when unassigned —, ``manager``, ``recipients``,
    ``message``), ordered by complaint. To send only what commits, read
    ``changes.other["complaints_sla_alerts"]`` in ``crmkit_after_commit`` instead.
    Replaces ``crmkit_complaints_sla_alerts`` (deprecated; works until API 1.3).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_after_sla_alerts_raised(ctx, alerts):
            for alert in alerts:
                for who in alert.recipients:
                    ctx.connection.execute(
                        sms_queue.insert(), {"staff": who, "text": alert.message}
                    )
    """


@hookspec
def crmkit_complaints_reply_proposals(
    crm: CRM, complaint: ComplaintFacts, text: str
) -> list[dict[str, Any]]:
    """Propose replies to a complaint.

    When: on demand, ``crmkit complaints propose ID`` / ``service(crm).propose(id)``.
    Transaction: none (read-only; read through ``crm.reading()``). ``complaint`` is a
    :class:`ComplaintFacts`, ``text`` the text to answer (the complaint's description).
    Returns: a list of ``{"source": str, "title": str, "body": str, "score": float}``
    (an empty list or ``None`` for none); every plugin's proposals are merged and sorted
    by score, best first. Replaces ``crmkit_complaints_propose_replies`` (deprecated;
    works until API 1.3).

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_reply_proposals(crm, complaint, text):
            if complaint.category != "delivery":
                return []
            return [{"source": "courier-faq", "title": "Late parcel",
                     "body": f"Your case {complaint.tracking_code} is with our courier.",
                     "score": 0.5}]
    """
