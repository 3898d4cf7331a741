"""Complaints service: logging, lifecycle, SLA clock, replies, surveys, reports.

Every write is one ``crm.transaction()``; a failing write changes nothing.
The lifecycle is the core workflow ``complaint``; the complaint row follows
the workflow through :func:`on_transitions` (the plugin's
``crmkit_after_workflow_transitions``), so a move made with ``crmkit workflow
move`` updates the SLA clock as well.
"""

from __future__ import annotations

import datetime as dt
import secrets
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, bindparam, case, exists, func, insert, literal, null, select, update

from crmkit.core import tables as core
from crmkit.core.entities import CHANNELS
from crmkit.errors import NotFound, TransitionRefused, ValidationError
from crmkit_complaints import tables as t
from crmkit_complaints.businesshours import Calendar, hours

if TYPE_CHECKING:
    from crmkit.crm import CRM

WORKFLOW = "complaint"
OPEN_STAGES = ("received", "acknowledged", "investigating", "waiting_on_customer")
#: stages that stop the SLA clock; each stay in one is a row of the pause log
PAUSING = ("waiting_on_customer", "resolved", "closed")
SLA_TARGETS = ("first_response", "resolution")
ZERO = dt.timedelta(0)
#: complaints read and written per round trip by :meth:`ComplaintService.recompute`
RECOMPUTE_PAGE = 5000
DUE_COLUMNS = (
    "first_response_warn_at",
    "first_response_due_at",
    "resolution_warn_at",
    "resolution_due_at",
)
LEVELS = ("warning", "breach")


@attrs.define
class Complaint:
    """A complaint as handed to users and to other plugins' hooks."""

    id: int
    customer_id: int
    category: str
    channel: str
    description: str
    tracking_code: str
    severity: str
    priority: str
    stage: str
    received_at: dt.datetime
    department: str | None = None
    assignee: str | None = None
    interaction_id: int | None = None
    workflow_instance_id: int | None = None
    root_cause: str = ""
    resolution: str = ""
    first_response_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    paused_us: int = 0
    paused_since: dt.datetime | None = None
    first_response_target_s: int = 0
    resolution_target_s: int = 0
    warn_ratio: float = 0.75
    clock: str = "business"
    first_response_warn_at: dt.datetime | None = None
    first_response_due_at: dt.datetime | None = None
    resolution_warn_at: dt.datetime | None = None
    resolution_due_at: dt.datetime | None = None
    created_by: str | None = None


@attrs.frozen
class Policy:
    priority: str
    channel: str
    first_response_hours: float
    resolution_hours: float
    warn_ratio: float = 0.75
    clock: str = "business"


@attrs.frozen
class Alert:
    """One SLA warning or breach, raised once per complaint, target and level."""

    id: int
    complaint_id: int
    target: str
    level: str
    due_at: dt.datetime
    raised_at: dt.datetime
    assignee: str | None
    manager: str | None
    responsible: str | None = None
    tracking_code: str = ""

    @property
    def recipients(self) -> list[str]:
        """The assignee (or, unassigned, the department's responsible staff member from the
        ``responsible`` setting), then for a breach that person's manager."""
        first = self.assignee or self.responsible or "(unassigned)"
        people = [first]
        if self.level == "breach" and self.manager and self.manager != first:
            people.append(self.manager)
        return people

    @property
    def message(self) -> str:
        what = "first response" if self.target == "first_response" else "resolution"
        verb = "is due" if self.level == "warning" else "was due"
        return (
            f"SLA {self.level}: complaint #{self.complaint_id} {what} {verb} at "
            f"{self.due_at.isoformat(timespec='minutes')}"
        )


_services: weakref.WeakKeyDictionary[Any, ComplaintService] = weakref.WeakKeyDictionary()


def service(crm: CRM) -> ComplaintService:
    """The complaints service of an open CRM (one per CRM)."""
    found = _services.get(crm)
    if found is None:
        found = _services[crm] = ComplaintService(crm)
    return found


def _as_complaint(row: Any) -> Complaint:
    return Complaint(**row._mapping)


class ComplaintService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self.settings: dict[str, Any] = crm.settings["complaints"]
        self.calendar = Calendar.from_dict(self.settings["calendar"])

    # -- configuration -----------------------------------------------------
    def clock(self, name: str) -> Calendar:
        return Calendar.always() if name == "wall" else self.calendar

    def policies(self, connection: Any = None) -> dict[tuple[str, str], Policy]:
        """Settings' policies overridden by those stored with :meth:`set_policy`."""
        found = {(p["priority"], p["channel"]): Policy(**p) for p in self.settings["sla_policies"]}
        query = select(t.sla_policies)
        if connection is None:
            with self.crm.reading() as connection:
                rows = connection.execute(query).all()
        else:
            rows = connection.execute(query).all()
        for row in rows:
            values = {k: v for k, v in row._mapping.items() if k != "id"}
            found[(row.priority, row.channel)] = Policy(**values)
        return found

    def policy_for(self, priority: str, channel: str, connection: Any = None) -> Policy:
        return _governing(self.policies(connection), priority, channel)

    def _check_choice(self, field: str, value: str, allowed: Iterable[str]) -> None:
        allowed = list(allowed)
        if value not in allowed:
            raise ValidationError(
                f"{field} {value!r} is not valid; use one of: {', '.join(allowed)} "
                f"(configure in [complaints] of crmkit.toml)",
                field=field,
            )

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
        """Log a complaint; logs its interaction when none is given and starts its workflow."""
        self._check_choice("channel", channel, CHANNELS)
        self._check_choice("category", category, self.settings["categories"])
        self._check_choice("severity", severity, self.settings["severities"])
        self._check_choice("priority", priority, self.settings["priorities"])
        if not description or not description.strip():
            raise ValidationError("a complaint needs a description", field="description")
        with self.crm.transaction(actor=actor, now=at) as ctx:
            customer = self.crm.customers.get(customer_id)
            if assignee:
                self.crm.staff.get(assignee)
            if actor:
                self.crm.staff.get(actor)
            if interaction_id is None:
                interaction = self.crm.interactions.log(
                    customer_id,
                    channel,
                    occurred_at=ctx.now,
                    subject=f"Complaint: {category}",
                    body=description,
                    staff=actor,
                )
                interaction_id = interaction.id
            else:
                interaction = self.crm.interactions.get(interaction_id)
                if interaction.customer_id != customer_id:
                    raise ValidationError(
                        f"interaction {interaction_id} belongs to customer "
                        f"{interaction.customer_id}, not {customer_id}",
                        field="interaction_id",
                    )
            if self._is_vip(customer):
                priority = self.settings["vip_priority"]
            instance = self.crm.workflows.start(
                WORKFLOW,
                customer_id,
                f"Complaint: {category}",
                owner=assignee,
                actor=actor,
                fields={"category": category, "channel": channel},
            )
            policy = self.policy_for(priority, channel, ctx.connection)
            row = {
                "customer_id": customer_id,
                "interaction_id": interaction_id,
                "workflow_instance_id": instance.id,
                "tracking_code": "C-" + secrets.token_urlsafe(12),
                "channel": channel,
                "category": category,
                "department": self.settings["routing"].get(category),
                "severity": severity,
                "priority": priority,
                "assignee": assignee,
                "description": description.strip(),
                "root_cause": "",
                "resolution": "",
                "stage": instance.stage,
                "received_at": ctx.now,
                "paused_us": 0,
                **_targets(policy),
                "created_by": actor,
            }
            row.update(self._dues(Complaint(id=0, **row)))
            new_id = ctx.connection.scalar(insert(t.complaints).returning(t.complaints.c.id), row)
            ctx.changes.other.setdefault("complaints", []).append(new_id)
            return self.get(new_id)

    def _is_vip(self, customer: Any) -> bool:
        """The ``vip`` attribute, or the segmentation plugin's value tier when it is installed.

        Contract expected of segmentation (optional): ``crmkit_segmentation_current_segments(
        crm, customer_ids)`` returns ``{customer_id: {scheme: label}}``; the customer is VIP
        when ``label`` of scheme ``"pyramid"`` is ``"VIP"`` (any case). No hook, no result
        or no snapshot for the customer: the attribute alone decides.
        """
        flag = customer.attributes.get("vip")
        if flag is True or str(flag).lower() in ("true", "yes", "1"):
            return True
        if not self.crm.has_hook("crmkit_segmentation_current_segments"):
            return False
        found = self.crm.call(
            "crmkit_segmentation_current_segments", crm=self.crm, customer_ids=[customer.id]
        )
        if isinstance(found, list):  # declared without firstresult: one result per plugin
            found = next((f for f in found if f), None)
        if not isinstance(found, Mapping):
            return False
        segments = found.get(customer.id) or found.get(str(customer.id))
        tier = segments.get("pyramid") if isinstance(segments, Mapping) else None
        return isinstance(tier, str) and tier.strip().casefold() == "vip"

    def _dues(self, c: Complaint) -> dict[str, dt.datetime | None]:
        """Warning and due moments of both targets (None when met, paused or closed)."""
        running = c.paused_since is None and c.closed_at is None
        paused = dt.timedelta(microseconds=c.paused_us)
        names, amounts = [], []
        for target, done in (
            ("first_response", c.first_response_at),
            ("resolution", c.resolved_at),
        ):
            if running and done is None:
                seconds = getattr(c, f"{target}_target_s")
                warn = dt.timedelta(seconds=round(seconds * c.warn_ratio))
                names += [f"{target}_warn_at", f"{target}_due_at"]
                amounts += [warn + paused, dt.timedelta(seconds=seconds) + paused]
        out: dict[str, dt.datetime | None] = dict.fromkeys(DUE_COLUMNS)
        if names:  # one walk over the calendar for all four moments
            moments = self.clock(c.clock).add_many(c.received_at, amounts)
            out.update(zip(names, moments, strict=True))
        return out

    def assign(self, complaint_id: int, username: str, *, actor: str | None = None) -> Complaint:
        with self.crm.transaction(actor=actor) as ctx:
            complaint = self._lock(ctx, complaint_id)
            self.crm.staff.get(username)
            ctx.connection.execute(
                update(t.complaints)
                .where(t.complaints.c.id == complaint.id)
                .values(assignee=username)
            )
            if complaint.workflow_instance_id:
                self.crm.workflows.update(complaint.workflow_instance_id, owner=username)
            return self.get(complaint_id)

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
        with self.crm.transaction(actor=actor, now=at) as ctx:
            complaint = self._lock(ctx, complaint_id)
            changes: dict[str, Any] = {}
            if root_cause is not None:
                changes["root_cause"] = root_cause
            if resolution is not None:
                changes["resolution"] = resolution
            if to_stage == "resolved" and not (resolution or complaint.resolution):
                raise TransitionRefused(
                    f"complaint #{complaint_id} cannot be resolved without a resolution; "
                    "give --resolution TEXT"
                )
            if changes:
                ctx.connection.execute(
                    update(t.complaints).where(t.complaints.c.id == complaint_id).values(changes)
                )
            self.crm.workflows.move(
                complaint.workflow_instance_id, to_stage, actor=actor, reason=reason, at=ctx.now
            )
            return self.get(complaint_id)

    def on_transitions(self, ctx: Any, transitions: Iterable[Any]) -> None:
        """Follow the workflow: stage, first response, pause log, resolution, dues."""
        for tr in transitions:
            if tr.workflow != WORKFLOW or tr.from_stage is None:
                continue
            query = select(t.complaints).where(
                t.complaints.c.workflow_instance_id == tr.instance_id
            )
            if ctx.connection.dialect.name == "postgresql":  # as _lock: no lost update
                query = query.with_for_update()
            row = ctx.connection.execute(query).first()
            if row is None:
                continue
            c = _as_complaint(row)
            at = tr.at
            values: dict[str, Any] = {"stage": tr.to_stage}
            if c.paused_since is not None:  # the stay in a pausing stage ends: accrue it
                paused = self.clock(c.clock).duration(c.paused_since, at)
                values["paused_us"] = c.paused_us + _us(paused)
                values["paused_since"] = None
                ctx.connection.execute(
                    update(t.pauses)
                    .where(and_(t.pauses.c.complaint_id == c.id, t.pauses.c.ended_at.is_(None)))
                    .values(ended_at=at)
                )
            if tr.to_stage in PAUSING:  # closed too, so a reopen never counts the quiet time
                values["paused_since"] = at
                ctx.connection.execute(
                    insert(t.pauses),
                    {"complaint_id": c.id, "stage": tr.to_stage, "started_at": at},
                )
            if c.first_response_at is None:
                values["first_response_at"] = at
            if tr.to_stage == "resolved":
                values["resolved_at"] = at
            elif tr.to_stage == "closed":
                values["closed_at"] = at
            elif tr.from_stage in ("resolved", "closed"):  # reopened
                values["resolved_at"] = None
                values["closed_at"] = None
            updated = attrs.evolve(c, **values)
            values.update(self._dues(updated))
            ctx.connection.execute(
                update(t.complaints).where(t.complaints.c.id == c.id).values(values)
            )

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
        if not body or not body.strip():
            raise ValidationError("a reply needs a text", field="body")
        with self.crm.transaction(actor=actor, now=at) as ctx:
            c = self._lock(ctx, complaint_id)
            if actor:
                self.crm.staff.get(actor)
            values = {
                "complaint_id": c.id,
                "at": ctx.now,
                "author": actor,
                "body": body.strip(),
                "public": public,
                "show_author": show_author,
            }
            new_id = ctx.connection.scalar(insert(t.replies).returning(t.replies.c.id), values)
            if public and c.first_response_at is None:
                updated = attrs.evolve(c, first_response_at=ctx.now)
                ctx.connection.execute(
                    update(t.complaints)
                    .where(t.complaints.c.id == c.id)
                    .values(first_response_at=ctx.now, **self._dues(updated))
                )
            ctx.changes.other.setdefault("complaints_replies", []).append(new_id)
            return {"id": new_id, **values}

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
        policy = _check_policy(
            {
                "priority": priority,
                "channel": channel,
                "first_response_hours": first_response_hours,
                "resolution_hours": resolution_hours,
                "warn_ratio": warn_ratio,
                "clock": clock,
            },
            self.settings,
            "policy",
        )
        with self.crm.transaction() as ctx:
            ctx.connection.execute(
                t.sla_policies.delete().where(
                    and_(t.sla_policies.c.priority == priority, t.sla_policies.c.channel == channel)
                )
            )
            ctx.connection.execute(insert(t.sla_policies), attrs.asdict(policy))
            # the calendar is unchanged: complaints whose targets stay the same keep their dues
            return self.recompute(priority=priority, channel=channel, targets_only=True)

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
        c = t.complaints
        with self.crm.transaction() as ctx:
            conn = ctx.connection
            table = self.policies(conn)
            query = select(c).where(c.c.closed_at.is_(None)).order_by(c.c.id).limit(page)
            if priority != "*":
                query = query.where(c.c.priority == priority)
            if channel != "*":
                query = query.where(c.c.channel == channel)
            if conn.dialect.name == "postgresql":  # a concurrent move must not be overwritten
                query = query.with_for_update()
            changed, last = 0, 0
            while rows := conn.execute(query.where(c.c.id > last)).all():
                last = rows[-1].id
                log = self._pause_log(conn, rows[0].id, last, ended_only=True)
                updates = []
                for row in rows:
                    old = _as_complaint(row)
                    targets = _targets(_governing(table, old.priority, old.channel))
                    if targets_only and all(getattr(old, k) == v for k, v in targets.items()):
                        continue
                    cal = self.clock(targets["clock"])
                    paused = sum((cal.duration(a, b) for a, b, _ in log.get(old.id, ())), ZERO)
                    new = attrs.evolve(old, **targets, paused_us=_us(paused))
                    values = {**targets, "paused_us": new.paused_us, **self._dues(new)}
                    if any(getattr(old, k) != v for k, v in values.items()):
                        updates.append({"_id": old.id, **values})
                if updates:
                    keys = [k for k in updates[0] if k != "_id"]
                    conn.execute(
                        update(c)
                        .where(c.c.id == bindparam("_id"))
                        .values({k: bindparam(k) for k in keys}),
                        updates,
                    )
                changed += len(updates)
            return changed

    def _pause_log(
        self, conn: Any, first_id: int, last_id: int, *, ended_only: bool = False
    ) -> dict[int, list[tuple[dt.datetime, dt.datetime | None, str]]]:
        """Pause rows of complaints ``first_id..last_id``: ``{id: [(start, end, stage)]}``."""
        p = t.pauses
        query = (
            select(p.c.complaint_id, p.c.started_at, p.c.ended_at, p.c.stage)
            .where(p.c.complaint_id.between(first_id, last_id))
            .order_by(p.c.complaint_id, p.c.started_at, p.c.id)
        )
        if ended_only:
            query = query.where(p.c.ended_at.is_not(None))
        found: dict[int, list[tuple[dt.datetime, dt.datetime | None, str]]] = defaultdict(list)
        for complaint_id, started, ended, stage in conn.execute(query):
            found[complaint_id].append((started, ended, stage))
        return found

    def check_sla(self, as_of: dt.datetime) -> list[Alert]:
        """Raise every warning and breach due by ``as_of`` that was not raised yet.

        Most of the work is SQL: one ``INSERT ... SELECT`` per target and level
        compares the stored due moments (indexed) with ``as_of``; the unique
        constraint on (complaint, target, level) and ``NOT EXISTS`` make re-runs
        raise nothing twice. Outbox rows (the default notifier) go to the
        assignee — or, unassigned, to the department's responsible staff member
        (``responsible`` setting) — and for breaches also to that person's
        manager; then ``crmkit_complaints_sla_alerts`` fires with the new alerts.
        Nothing is printed: the CLI prints what was sent.
        """
        if as_of.tzinfo is None:
            raise ValidationError("--as-of needs a time zone, e.g. 2026-11-23T09:00+00:00")
        c, a, s = t.complaints, t.sla_alerts, core.staff
        # unassigned complaints go to their department's responsible staff member
        fallback = self._responsible_sql(c.c.department)
        responsible = case((c.c.assignee.is_(None), fallback), else_=null())
        first = func.coalesce(c.c.assignee, fallback)
        with self.crm.transaction(now=as_of) as ctx:
            before = ctx.connection.scalar(select(func.coalesce(func.max(a.c.id), 0)))
            for target in SLA_TARGETS:
                for level in LEVELS:
                    column = c.c[f"{target}_{'warn' if level == 'warning' else 'due'}_at"]
                    due = c.c[f"{target}_due_at"]
                    already = exists().where(
                        and_(a.c.complaint_id == c.c.id, a.c.target == target, a.c.level == level)
                    )
                    source = (
                        select(
                            c.c.id,
                            literal(target),
                            literal(level),
                            due,
                            literal(as_of, t.sla_alerts.c.raised_at.type),
                            c.c.assignee,
                            s.c.manager,
                            responsible,
                        )
                        .select_from(c.outerjoin(s, s.c.username == first))
                        .where(and_(column <= as_of, ~already))
                    )
                    ctx.connection.execute(
                        insert(a).from_select(
                            [
                                "complaint_id",
                                "target",
                                "level",
                                "due_at",
                                "raised_at",
                                "assignee",
                                "manager",
                                "responsible",
                            ],
                            source,
                        )
                    )
            rows = ctx.connection.execute(
                select(a, c.c.tracking_code)
                .join(c, c.c.id == a.c.complaint_id)
                .where(a.c.id > before)
                .order_by(a.c.id)
            ).all()
            alerts = sorted(
                (Alert(**row._mapping) for row in rows),  # per complaint, in a stable order
                key=lambda x: (x.complaint_id, SLA_TARGETS.index(x.target), LEVELS.index(x.level)),
            )
            outbox = [
                {"alert_id": al.id, "recipient": who, "message": al.message, "created_at": as_of}
                for al in alerts
                for who in al.recipients
            ]
            if outbox:
                ctx.connection.execute(insert(t.outbox), outbox)
            if alerts and self.crm.has_hook("crmkit_complaints_sla_alerts"):
                self.crm.call("crmkit_complaints_sla_alerts", ctx=ctx, alerts=alerts)
            ctx.changes.other.setdefault("complaints_sla_alerts", []).extend(alerts)
            return alerts

    def _responsible_sql(self, department: Any) -> Any:
        """SQL for the ``responsible`` setting: department -> username, ``*`` for the rest."""
        table: Mapping[str, str] = self.settings["responsible"]
        default = table.get("*")
        otherwise = literal(default, core.staff.c.username.type) if default else null()
        whens = [
            (department == name, literal(user, core.staff.c.username.type))
            for name, user in sorted(table.items())
            if name != "*"
        ]
        return case(*whens, else_=otherwise) if whens else otherwise

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
        if not isinstance(csat, int) or not 1 <= csat <= 5:
            raise ValidationError(f"CSAT must be a whole number from 1 to 5, got {csat!r}")
        if not isinstance(nps, int) or not 0 <= nps <= 10:
            raise ValidationError(
                f"likelihood to recommend must be a whole number from 0 to 10, got {nps!r}"
            )
        with self.crm.transaction(now=at) as ctx:
            c = self._lock(ctx, complaint_id)
            if c.resolved_at is None and c.closed_at is None:
                raise ValidationError(
                    f"complaint #{complaint_id} is {c.stage}; survey it after resolution"
                )
            if ctx.connection.scalar(
                select(t.surveys.c.complaint_id).where(t.surveys.c.complaint_id == c.id)
            ):
                from crmkit.errors import Conflict

                raise Conflict(f"complaint #{complaint_id} already has a survey")
            values = {
                "complaint_id": c.id,
                "csat": csat,
                "nps": nps,
                "comment": comment,
                "at": ctx.now,
            }
            ctx.connection.execute(insert(t.surveys), values)
            return values

    # -- reads -------------------------------------------------------------
    def _lock(self, ctx: Any, complaint_id: int) -> Complaint:
        query = select(t.complaints).where(t.complaints.c.id == complaint_id)
        if ctx.connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = ctx.connection.execute(query).first()
        if row is None:
            raise NotFound(f"complaint {complaint_id} not found; see 'crmkit complaints list'")
        return _as_complaint(row)

    def get(self, complaint_id: int) -> Complaint:
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.complaints).where(t.complaints.c.id == complaint_id)
            ).first()
        if row is None:
            raise NotFound(f"complaint {complaint_id} not found; see 'crmkit complaints list'")
        return _as_complaint(row)

    def list(
        self,
        *,
        customer_id: int | None = None,
        stage: str | None = None,
        open_only: bool = False,
        department: str | None = None,
        limit: int | None = 100,
    ) -> list[Complaint]:
        query = select(t.complaints).order_by(t.complaints.c.id)
        if customer_id is not None:
            query = query.where(t.complaints.c.customer_id == customer_id)
        if stage:
            query = query.where(t.complaints.c.stage == stage)
        if open_only:
            query = query.where(t.complaints.c.stage.in_(OPEN_STAGES))
        if department:
            query = query.where(t.complaints.c.department == department)
        if limit:
            query = query.limit(limit)
        with self.crm.reading() as connection:
            return [_as_complaint(r) for r in connection.execute(query)]

    def replies(self, complaint_id: int, *, public_only: bool = False) -> list[dict[str, Any]]:
        query = select(t.replies).where(t.replies.c.complaint_id == complaint_id)
        if public_only:
            query = query.where(t.replies.c.public.is_(True))
        with self.crm.reading() as connection:
            rows = connection.execute(query.order_by(t.replies.c.at, t.replies.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def status(self, tracking_code: str) -> dict[str, Any]:
        """What the customer may see: stage, dates and public replies (no internal notes)."""
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.complaints).where(t.complaints.c.tracking_code == tracking_code)
            ).first()
        if row is None:
            raise NotFound(
                f"no complaint has tracking code {tracking_code!r}; check the code you received"
            )
        c = _as_complaint(row)
        definition = self.crm.workflows.definition(WORKFLOW)
        replies = []
        for r in self.replies(c.id, public_only=True):
            author = None
            if r["show_author"] and r["author"]:
                member = self.crm.staff.find(r["author"])
                author = member.name if member else None
            replies.append({"at": r["at"], "author": author, "body": r["body"]})
        return {
            "tracking_code": c.tracking_code,
            "category": c.category,
            "stage": c.stage,
            "stage_title": definition.stage(c.stage).title,
            "received_at": c.received_at,
            "resolved_at": c.resolved_at,
            "closed_at": c.closed_at,
            "replies": replies,
        }

    def status_page(self, tracking_code: str) -> str:
        return self.crm.templates.get_template("complaints/status.html").render(
            status=self.status(tracking_code), stages=self.crm.workflows.definition(WORKFLOW)
        )

    def durations(self, c: Complaint) -> dict[str, float | None]:
        """Time to first response and to resolution, in business and wall-clock hours."""
        with self.crm.reading() as connection:
            log = self._pause_log(connection, c.id, c.id).get(c.id, [])
        found = self.measure(c, log)
        return {k: v for k, v in found.items() if k.endswith("_h")}

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
        cal = self.clock(c.clock)
        log = list(log)

        def accrued(until: dt.datetime) -> dt.timedelta:
            total = cal.duration(c.received_at, until)
            for start, end, _ in log:
                a, b = max(start, c.received_at), until if end is None else min(end, until)
                if b > a:
                    total -= cal.duration(a, b)
            return total

        if as_of is None:
            responded, resolved = c.first_response_at, c.resolved_at
        else:
            responded = _at_or_before(c.first_response_at, as_of)
            resolved = _resolved_as_of(log, as_of)
        out: dict[str, Any] = {}
        for name, end in (("first_response", responded), ("resolution", resolved)):
            target = dt.timedelta(seconds=getattr(c, f"{name}_target_s"))
            used = accrued(end) if end is not None else None
            out[f"{name}_business_h"] = None if used is None else _hours(used)
            out[f"{name}_wall_h"] = None if end is None else _hours(end - c.received_at)
            if as_of is not None:
                late = used > target if used is not None else accrued(as_of) >= target
                out[f"{name}_breached"] = late
        out["open"] = resolved is None
        return out

    def report(
        self, by: str = "category", *, as_of: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Counts, CSAT, NPS, SLA compliance and mean times as of a moment, grouped by ``by``.

        Everything comes from stored timestamps (receipt, first response, pause log,
        surveys) up to ``as_of`` (default: now), so the figures do not depend on
        ``check-sla`` having run, and a past ``as_of`` reproduces a past report.
        Compliance is the share of complaints with neither target breached.
        """
        if by not in ("category", "department", "channel", "month"):
            raise ValidationError("report by category, department, channel or month")
        if as_of is None:
            as_of = dt.datetime.now(dt.UTC)
        elif as_of.tzinfo is None:
            raise ValidationError("--as-of needs a time zone, e.g. 2026-11-23T09:00+00:00")
        sv = t.surveys
        query = (
            select(t.complaints, sv.c.csat, sv.c.nps)
            .outerjoin(sv, and_(sv.c.complaint_id == t.complaints.c.id, sv.c.at <= as_of))
            .where(t.complaints.c.received_at <= as_of)
            .order_by(t.complaints.c.id)
        )
        with self.crm.reading() as connection:
            rows = connection.execute(query).all()
            log = self._pause_log(connection, rows[0].id, rows[-1].id) if rows else {}
        groups: dict[str, list[tuple[Any, Any, Any]]] = defaultdict(list)
        for row in rows:
            c = Complaint(**{k: v for k, v in row._mapping.items() if k not in ("csat", "nps")})
            key = c.received_at.strftime("%Y-%m") if by == "month" else getattr(c, by) or "-"
            groups[key].append((self.measure(c, log.get(c.id, ()), as_of), row.csat, row.nps))
        report = []
        for key in sorted(groups):
            items = groups[key]
            csats = [x[1] for x in items if x[1] is not None]
            times = [x[0] for x in items]
            kept = [m for m in times if not m["first_response_breached"] | m["resolution_breached"]]
            report.append(
                {
                    by: key,
                    "complaints": len(items),
                    "open": sum(1 for m in times if m["open"]),
                    "surveys": len(csats),
                    "csat": round(sum(csats) / len(csats), 2) if csats else None,
                    "nps": _nps([x[2] for x in items if x[2] is not None]),
                    "sla_compliance": round(len(kept) / len(items), 4),
                    **{
                        f"mean_{k}": _mean([m[k] for m in times])
                        for k in (
                            "first_response_business_h",
                            "first_response_wall_h",
                            "resolution_business_h",
                            "resolution_wall_h",
                        )
                    },
                }
            )
        return report

    def departments(self, department: str | None = None) -> list[dict[str, Any]]:
        """Per department (or just ``department``): its complaints with their categories and
        root causes, so R&D and management see what to change."""
        rows = []
        for c in self.list(department=department, limit=None):
            rows.append(
                {
                    "department": c.department or "-",
                    "id": c.id,
                    "category": c.category,
                    "stage": c.stage,
                    "root_cause": c.root_cause,
                }
            )
        return sorted(rows, key=lambda r: (r["department"], r["id"]))

    def propose(self, complaint_id: int) -> list[dict[str, Any]] | None:
        """Reply proposals from plugins implementing ``crmkit_complaints_propose_replies``;
        ``None`` when no plugin offers them."""
        c = self.get(complaint_id)
        if not self.crm.has_hook("crmkit_complaints_propose_replies"):
            return None
        batches = self.crm.call(
            "crmkit_complaints_propose_replies", crm=self.crm, complaint=c, text=c.description
        )
        found = [p for batch in batches or [] for p in batch or []]
        return sorted(found, key=lambda p: -float(p.get("score", 0)))


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _at_or_before(moment: dt.datetime | None, as_of: dt.datetime) -> dt.datetime | None:
    return moment if moment is not None and moment <= as_of else None


def _resolved_as_of(
    log: Iterable[tuple[dt.datetime, dt.datetime | None, str]], as_of: dt.datetime
) -> dt.datetime | None:
    """When the resolution in force at ``as_of`` was given (None when not resolved then)."""
    resolved_at = None
    for start, end, stage in log:  # ordered by start
        if start > as_of:
            break
        if stage == "resolved":
            resolved_at = start
        if end is None or end > as_of:  # the stay at as_of
            return resolved_at if stage in ("resolved", "closed") else None
    return None


def _us(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def _targets(policy: Policy) -> dict[str, Any]:
    """A policy's targets as stored on a complaint (round: 0.29 h is 1044 s, not 1043)."""
    return {
        "first_response_target_s": round(policy.first_response_hours * 3600),
        "resolution_target_s": round(policy.resolution_hours * 3600),
        "warn_ratio": policy.warn_ratio,
        "clock": policy.clock,
    }


def _governing(table: Mapping[tuple[str, str], Policy], priority: str, channel: str) -> Policy:
    for key in ((priority, channel), (priority, "*"), ("*", channel), ("*", "*")):
        if key in table:
            return table[key]
    raise ValidationError(  # settings validation guarantees a ("*", "*") policy
        "no SLA policy matches; add one for priority '*' and channel '*'"
    )


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _nps(scores: list[int]) -> float | None:
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 1)


def _check_policy(raw: Mapping[str, Any], settings: Mapping[str, Any], where: str) -> Policy:
    keys = {f.name for f in attrs.fields(Policy)}
    if unknown := set(raw) - keys:
        raise ValidationError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(keys)}")
    priority, channel = raw.get("priority", "*"), raw.get("channel", "*")
    if priority != "*" and priority not in settings["priorities"]:
        raise ValidationError(
            f"{where}: priority {priority!r} is not one of {settings['priorities']} or '*'"
        )
    if channel != "*" and channel not in CHANNELS:
        raise ValidationError(f"{where}: channel {channel!r} is not one of {CHANNELS} or '*'")
    for key in ("first_response_hours", "resolution_hours"):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValidationError(f"{where}: {key} must be a positive number of hours")
    ratio = raw.get("warn_ratio", 0.75)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ValidationError(f"{where}: warn_ratio must be above 0 and at most 1")
    clock = raw.get("clock", "business")
    if clock not in ("business", "wall"):
        raise ValidationError(f"{where}: clock must be 'business' or 'wall'")
    return Policy(
        priority=priority,
        channel=channel,
        first_response_hours=float(raw["first_response_hours"]),
        resolution_hours=float(raw["resolution_hours"]),
        warn_ratio=float(ratio),
        clock=clock,
    )


__all__ = ["Alert", "Complaint", "ComplaintService", "Policy", "hours", "service"]
