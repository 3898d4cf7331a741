"""The complaints service: logging, lifecycle, SLA clock, replies, surveys, reports.

Every write is one ``crm.transaction()``; a failing write changes nothing.
The lifecycle is the core workflow ``complaint``; the complaint row follows
the workflow through :meth:`ComplaintService.on_transitions` (the plugin's
``crmkit_after_workflow_transitions``), so a move made with ``crmkit workflow
move`` updates the SLA clock as well.

The service is the public API; each part of it lives in a module with one job:
``intake`` (logging, VIP priority), ``assignment`` (assignee, routing, responsible
staff), ``lifecycle`` (moves, following the workflow), ``sla`` (due moments, pause log,
measuring), ``policies`` (SLA policies, recompute), ``alerts`` (check-sla and its
notifications), ``replies`` (replies, status page, reply proposals), ``surveys``,
``reports``; ``records`` holds the records returned.

Permissions (:mod:`crmkit_complaints.access`): every public method authorises the current
actor (``crm.actor``) first — a complaint with ``complaints.read``/``write``/``assign`` on
its customer (another rep's customer's complaint is NotFound, as if there were none), SLA
policies and alert runs with ``complaints.admin``, reports with ``complaints.report``.
:meth:`status` and :meth:`survey_by_code` are the customer's: the tracking code is the
credential, no sign-in. Every write records an audit entry in its transaction.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from crmkit_complaints import (
    access,
    alerts,
    assignment,
    intake,
    lifecycle,
    policies,
    records,
    replies,
    reports,
    sla,
    surveys,
)
from crmkit_complaints.access import ADMIN, ASSIGN, READ, REPORT, WRITE
from crmkit_complaints.businesshours import Calendar, hours
from crmkit_complaints.policies import RECOMPUTE_PAGE
from crmkit_complaints.records import OPEN_STAGES, WORKFLOW, Alert, Complaint, Policy

if TYPE_CHECKING:
    from crmkit.plugin import CRM, HookContext, Transition

# the records stay importable from here (hook docs name crmkit_complaints.service.Alert)
__all__ = [
    "OPEN_STAGES",
    "WORKFLOW",
    "Alert",
    "Complaint",
    "ComplaintService",
    "Policy",
    "hours",
    "service",
]

_services: weakref.WeakKeyDictionary[Any, ComplaintService] = weakref.WeakKeyDictionary()


def service(crm: CRM) -> ComplaintService:
    """The complaints service of an open CRM (one per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = ComplaintService(crm)
    return found


class ComplaintService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self.settings: dict[str, Any] = crm.settings["complaints"]
        self.calendar = Calendar.from_dict(self.settings["calendar"])

    # -- configuration -----------------------------------------------------
    def clock(self, name: str) -> Calendar:
        """The calendar of clock ``name``: ``wall`` (round the clock) or the business one."""
        return sla.clock(self, name)

    def policies(self, connection: Any = None) -> dict[tuple[str, str], Policy]:
        """Settings' policies overridden by those stored with :meth:`set_policy`."""
        access.require(self.crm, READ)
        return policies.policies(self, connection)

    def policy_for(self, priority: str, channel: str, connection: Any = None) -> Policy:
        """The policy governing ``priority`` and ``channel`` (exact, priority, channel,
        fallback)."""
        access.require(self.crm, READ)
        return policies.policy_for(self, priority, channel, connection)

    # -- writes ----------------------------------------------------------
    def log(
        self,
        customer_id: int,
        *,
        channel: str,
        category: str,
        description: str,
        severity: str = "medium",
        priority: str = "normal",
        assignee: str | None = None,
        interaction_id: int | None = None,
        actor: str | None = None,
        at: dt.datetime | None = None,
    ) -> Complaint:
        """Log a complaint; logs its interaction when none is given and starts its workflow.

        A VIP customer's complaint gets the ``vip_priority`` setting instead of
        ``priority``: see :func:`crmkit_complaints.intake.is_vip`.
        """
        access.on_customer(self.crm, WRITE, customer_id)
        return intake.log(
            self,
            customer_id,
            channel=channel,
            category=category,
            description=description,
            severity=severity,
            priority=priority,
            assignee=assignee,
            interaction_id=interaction_id,
            actor=actor,
            at=at,
        )

    def assign(self, complaint_id: int, username: str, *, actor: str | None = None) -> Complaint:
        """Assign a complaint to a staff member (the workflow instance's owner too)."""
        self._check(ASSIGN, complaint_id)
        return assignment.assign(self, complaint_id, username, actor=actor)

    def move(
        self,
        complaint_id: int,
        to_stage: str,
        *,
        actor: str | None = None,
        reason: str = "",
        root_cause: str | None = None,
        resolution: str | None = None,
        at: dt.datetime | None = None,
    ) -> Complaint:
        """Move through the core workflow (roles and vetoes apply); notes root cause/resolution."""
        self._check(WRITE, complaint_id)
        return lifecycle.move(
            self,
            complaint_id,
            to_stage,
            actor=actor,
            reason=reason,
            root_cause=root_cause,
            resolution=resolution,
            at=at,
        )

    def on_transitions(self, ctx: HookContext, transitions: Iterable[Transition]) -> None:
        """Follow the workflow: stage, first response, pause log, resolution, dues."""
        lifecycle.on_transitions(self, ctx, transitions)

    def reply(
        self,
        complaint_id: int,
        body: str,
        *,
        public: bool = True,
        show_author: bool = False,
        actor: str | None = None,
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """A public reply (the customer sees it) or an internal note; a public reply is the
        first response when none was given yet."""
        self._check(WRITE, complaint_id)
        return replies.reply(
            self, complaint_id, body, public=public, show_author=show_author, actor=actor, at=at
        )

    def set_policy(
        self,
        priority: str,
        channel: str,
        *,
        first_response_hours: float,
        resolution_hours: float,
        warn_ratio: float = 0.75,
        clock: str = "business",
    ) -> int:
        """Store a policy and recompute the targets of the open complaints it now governs.

        Time already accrued and paused is kept: see :meth:`recompute`. Returns how many
        open complaints got new targets.
        """
        access.require(self.crm, ADMIN)
        return policies.set_policy(
            self,
            priority,
            channel,
            first_response_hours=first_response_hours,
            resolution_hours=resolution_hours,
            warn_ratio=warn_ratio,
            clock=clock,
        )

    def recompute(
        self,
        *,
        priority: str = "*",
        channel: str = "*",
        targets_only: bool = False,
        page: int = RECOMPUTE_PAGE,
    ) -> int:
        """Re-apply the current policies and calendar to open complaints; returns how many
        changed.

        Run it after editing the policies or the calendar in crmkit.toml. Nothing accrued
        or paused is lost: the paused time is re-measured from the pause log on the
        governing policy's clock, and each due moment is ``add(received, target +
        paused)``. ``priority``/``channel`` narrow the candidates in SQL (a policy change
        only touches what it may govern); ``targets_only`` skips complaints whose targets
        did not change (the calendar is known to be the same). Complaints are read a page
        at a time and written with one executemany per page.
        """
        access.require(self.crm, ADMIN)
        return policies.recompute(
            self, priority=priority, channel=channel, targets_only=targets_only, page=page
        )

    def check_sla(self, as_of: dt.datetime) -> list[Alert]:
        """Raise every warning and breach due by ``as_of`` that was not raised yet.

        Most of the work is SQL: one ``INSERT ... SELECT`` per target and level
        compares the stored due moments (indexed) with ``as_of``; the unique
        constraint on (complaint, target, level) and ``NOT EXISTS`` make re-runs
        raise nothing twice. Outbox rows (the default notifier) go to the
        assignee — or, unassigned, to the department's responsible staff member
        (``responsible`` setting) — and for breaches also to that person's
        manager; then ``crmkit_complaints_after_sla_alerts_raised`` fires with the
        new alerts. Nothing is printed: the CLI prints what was sent.
        """
        access.require(self.crm, ADMIN)
        return alerts.check_sla(self, as_of)

    def survey(
        self,
        complaint_id: int,
        *,
        csat: int,
        nps: int,
        comment: str = "",
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Record the satisfaction survey of a resolved or closed complaint."""
        self._check(WRITE, complaint_id)
        return surveys.survey(self, complaint_id, csat=csat, nps=nps, comment=comment, at=at)

    def survey_by_code(
        self,
        tracking_code: str,
        *,
        csat: int,
        nps: int,
        comment: str = "",
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """The customer answers the survey with their tracking code (no sign-in: the code
        is the credential); as :meth:`survey`, once, after resolution."""
        return surveys.survey_by_code(
            self, tracking_code, csat=csat, nps=nps, comment=comment, at=at
        )

    # -- reads -------------------------------------------------------------
    def _check(self, action: str, complaint_id: int) -> Complaint:
        """Authorise ``action`` on the complaint (Forbidden without the permission, then
        NotFound when there is none or its customer is outside the actor's scope)."""
        access.require(self.crm, action)
        complaint = records.get(self.crm, complaint_id)
        access.on_complaint(self.crm, action, complaint_id, complaint.customer_id)
        return complaint

    def get(self, complaint_id: int) -> Complaint:
        """One complaint; NotFound when there is none (or it is not yours to see)."""
        return self._check(READ, complaint_id)

    def list(
        self,
        *,
        customer_id: int | None = None,
        stage: str | None = None,
        open_only: bool = False,
        department: str | None = None,
        limit: int | None = 100,
    ) -> list[Complaint]:
        """Complaints by id, filtered; ``limit=None`` for all (those of the customers the
        actor may see)."""
        return records.list_complaints(
            self.crm,
            owners=access.visible_owners(self.crm, READ),
            customer_id=customer_id,
            stage=stage,
            open_only=open_only,
            department=department,
            limit=limit,
        )

    def replies(self, complaint_id: int, *, public_only: bool = False) -> list[dict[str, Any]]:
        """A complaint's replies and internal notes in order (``public_only``: replies)."""
        self._check(READ, complaint_id)
        return replies.replies(self, complaint_id, public_only=public_only)

    def queue(
        self,
        *,
        after: tuple[dt.datetime | None, int] | None = None,
        limit: int = 50,
        **filters: Any,
    ) -> list[Complaint]:
        """The work queue: complaints by their next SLA due moment (the earlier of first
        response and resolution due; none last), then id; those after ``after`` (the
        last one's ``(due, id)``: keyset paging). Filters: ``customer_id``, ``stage``,
        ``open_only``, ``department``, ``assignee``, ``priority``, ``channel``,
        ``category``. Only the complaints of customers the actor may see."""
        return records.queue(
            self.crm, owners=access.visible_owners(self.crm, READ), after=after, limit=limit,
            **filters,
        )  # fmt: skip

    def status(self, tracking_code: str) -> dict[str, Any]:
        """What the customer may see: stage, dates and public replies (no internal notes).
        No permission: the tracking code is the customer's credential."""
        return replies.status(self, tracking_code)

    def status_page(self, tracking_code: str) -> str:
        """:meth:`status` as the HTML page ``complaints/status.html``."""
        return replies.status_page(self, tracking_code)

    def durations(self, c: Complaint) -> dict[str, float | None]:
        """Time to first response and to resolution, in business and wall-clock hours."""
        return sla.durations(self, c)

    def measure(
        self,
        c: Complaint,
        log: Iterable[tuple[dt.datetime, dt.datetime | None, str]],
        as_of: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """A complaint's SLA figures from its stored timestamps and pause log, as of a moment.

        Time counted toward a target ("accrued") is working time on the complaint's clock
        from receipt, minus its pauses. A target is met when the first response (or the
        resolution in force at ``as_of``) came before ``target`` accrued, breached when it
        came later or has not come and ``target`` has accrued by ``as_of`` — the same rule
        ``check-sla`` applies, but independent of whether it ran. Without ``as_of``: the
        stored state, and no breach flags.
        """
        return sla.measure(self, c, log, as_of)

    def report(
        self, by: str = "category", *, as_of: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Counts, CSAT, NPS, SLA compliance and mean times as of a moment, grouped by ``by``.

        Everything comes from stored timestamps (receipt, first response, pause log,
        surveys) up to ``as_of`` (default: now), so the figures do not depend on
        ``check-sla`` having run, and a past ``as_of`` reproduces a past report.
        Compliance is the share of complaints with neither target breached.
        """
        access.require(self.crm, REPORT)
        return reports.report(self, by, as_of=as_of)

    def departments(self, department: str | None = None) -> list[dict[str, Any]]:
        """Per department (or just ``department``): its complaints with their categories and
        root causes, so R&D and management see what to change."""
        access.require(self.crm, REPORT)
        return reports.departments(self, department)

    def propose(self, complaint_id: int) -> list[dict[str, Any]] | None:
        """Reply proposals from plugins implementing ``crmkit_complaints_reply_proposals``
        (given the complaint's ``ComplaintFacts``), best first; ``None`` when no plugin
        offers them."""
        self._check(READ, complaint_id)
        return replies.propose(self, complaint_id)
