"""The workflow engine: start instances, move them through stages, report on them.

Starting, moving and changing instances needs ``workflows.move`` on the instance's
customer, reading them ``workflows.read`` (lists and figures keep the instances of
customers the actor may see). A staff actor moving an instance is held to the stage's
roles like a named ``actor``. Audited as ``workflow.start``, ``workflow.move`` and
``workflow.update``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, insert, over, select, true, update

from crmkit.core import access, prebuilt
from crmkit.core import tables as t
from crmkit.core.entities import to_money
from crmkit.core.workflow import StageFigures, Transition, WorkflowDefinition, WorkflowInstance
from crmkit.errors import NotFound, TransitionRefused, ValidationError

if TYPE_CHECKING:
    from crmkit.crm import CRM

#: A staff member holding this role may act at any stage.
ADMIN_ROLE = "admin"


class WorkflowService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def definition(self, name: str) -> WorkflowDefinition:
        """The workflow definition called ``name``; :class:`NotFound` naming the known ones."""
        try:
            return self.crm.workflow_definitions[name]
        except KeyError:
            known = ", ".join(sorted(self.crm.workflow_definitions)) or "none"
            raise NotFound(
                f"workflow {name!r} is not defined; defined workflows: {known}"
            ) from None

    @property
    def definitions(self) -> list[WorkflowDefinition]:
        return sorted(self.crm.workflow_definitions.values(), key=lambda d: d.name)

    # -- writes -----------------------------------------------------------
    def start(
        self,
        workflow: str,
        customer_id: int,
        title: str,
        *,
        value: Decimal | str | None = None,
        due_on: dt.date | None = None,
        owner: str | None = None,
        fields: dict[str, Any] | None = None,
        actor: str | None = None,
        at: dt.datetime | None = None,
    ) -> WorkflowInstance:
        """Start an instance at the initial stage (recorded as a transition from None)."""
        access.require(self.crm, "workflows.move")
        definition = self.definition(workflow)
        if not title or not title.strip():
            raise ValidationError("a workflow instance needs a title", field="title")
        with self.crm.transaction(actor=actor, now=at) as ctx:
            # in the actor's scope, not erased, not merged
            self.crm.customers.writable_for(customer_id, "workflows.move")
            if owner:
                self.crm.staff._get(owner)
                self.crm.staff.refuse_inactive(owner, "own workflow instances")
            initial = definition.stage(definition.initial)
            fields = dict(fields or {})
            self._check_required(initial.required_fields, fields, value, due_on, initial.name)
            row = {
                "workflow": workflow,
                "customer_id": customer_id,
                "title": title.strip(),
                "stage": definition.initial,
                "value": None if value is None else to_money(value, "value"),
                "due_on": due_on,
                "owner": owner,
                "fields": fields,
                "created_at": ctx.now,
                "stage_entered_at": ctx.now,
                "closed_at": ctx.now if initial.terminal else None,
            }
            new_id = ctx.connection.scalar(
                insert(t.workflow_instances).returning(t.workflow_instances.c.id), row
            )
            transition = self._record(ctx, new_id, workflow, None, definition.initial, "started")
            ctx.audit(
                "workflow.start",
                "workflow",
                new_id,
                customer_id=customer_id,
                after={k: v for k, v in row.items() if k not in ("customer_id", "created_at")},
            )
            self.crm.fire(ctx, "crmkit_after_workflow_transitions", transitions=[transition])
            return self._get(new_id)

    def move(
        self,
        instance_id: int,
        to_stage: str,
        *,
        actor: str | None = None,
        reason: str = "",
        fields: dict[str, Any] | None = None,
        at: dt.datetime | None = None,
    ) -> WorkflowInstance:
        """Move an instance to ``to_stage``.

        Refused (TransitionRefused, nothing stored) when the move is not in the
        current stage's ``to`` list, the actor lacks a role of the current
        stage, a field required by the target stage is missing, or a plugin
        vetoes through ``crmkit_allow_transition``. ``actor=None`` for the local
        operator acts as the system and skips the role check; a staff actor is checked
        against the stage's roles as themselves.
        """
        access.require(self.crm, "workflows.move")
        current_actor = self.crm.actor
        if actor is None and not current_actor.is_operator:
            actor = current_actor.username
        with self.crm.transaction(actor=actor, now=at) as ctx:
            instance = self._lock(ctx, instance_id)
            access.authorise(
                self.crm, "workflows.move", instance.customer_id, kind="workflow", id=instance_id
            )
            definition = self.definition(instance.workflow)
            current = definition.stage(instance.stage)
            if to_stage not in definition.stage_names:
                raise TransitionRefused(
                    f"{instance.workflow} has no stage {to_stage!r}; "
                    f"stages: {', '.join(definition.stage_names)}"
                )
            if to_stage not in current.to:
                allowed = ", ".join(current.to) or "none (terminal stage)"
                raise TransitionRefused(
                    f"cannot move {instance.workflow} #{instance_id} from {current.name!r} to "
                    f"{to_stage!r}; allowed next stages: {allowed}"
                )
            if actor is not None:  # a deactivated member takes no part in workflows
                self.crm.staff.refuse_inactive(actor, "act in workflows")
            if actor is not None and current.roles:
                member = self.crm.staff._get(actor)
                if ADMIN_ROLE not in member.roles and not set(member.roles) & set(current.roles):
                    raise TransitionRefused(
                        f"{actor!r} (roles: {', '.join(member.roles) or 'none'}) may not move "
                        f"{instance.workflow} #{instance_id} out of {current.name!r}; "
                        f"that needs one of: {', '.join(current.roles)}"
                    )
            merged = {**instance.fields, **(fields or {})}
            target = definition.stage(to_stage)
            self._check_required(
                target.required_fields, merged, instance.value, instance.due_on, to_stage
            )
            candidate = WorkflowInstance(**{**_instance_values(instance), "fields": merged})
            answers = self.crm.call(
                "crmkit_allow_transition", ctx=ctx, instance=candidate, to_stage=to_stage
            )
            veto = next((a for a in answers if isinstance(a, str) and a.strip()), None)
            if veto:
                raise TransitionRefused(
                    f"moving #{instance_id} to {to_stage!r} was refused: {veto}"
                )
            ctx.connection.execute(
                update(t.workflow_instances)
                .where(t.workflow_instances.c.id == instance_id)
                .values(
                    stage=to_stage,
                    fields=merged,
                    stage_entered_at=ctx.now,
                    closed_at=ctx.now if target.terminal else None,
                )
            )
            transition = self._record(
                ctx, instance_id, instance.workflow, instance.stage, to_stage, reason
            )
            ctx.audit(
                "workflow.move",
                "workflow",
                instance_id,
                customer_id=instance.customer_id,
                before={"stage": instance.stage, "fields": instance.fields},
                after={"stage": to_stage, "fields": merged, "reason": reason or None},
            )
            self.crm.fire(ctx, "crmkit_after_workflow_transitions", transitions=[transition])
            return self._get(instance_id)

    def update(
        self,
        instance_id: int,
        *,
        value: Decimal | str | None = None,
        due_on: dt.date | None = None,
        owner: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> WorkflowInstance:
        """Change an instance's value, due date, owner or fields without moving it
        (``workflows.move`` on its customer; audited as ``workflow.update``)."""
        access.require(self.crm, "workflows.move")
        with self.crm.transaction() as ctx:
            instance = self._lock(ctx, instance_id)
            access.authorise(
                self.crm, "workflows.move", instance.customer_id, kind="workflow", id=instance_id
            )
            changes: dict[str, Any] = {}
            if value is not None:
                changes["value"] = to_money(value, "value")
            if due_on is not None:
                changes["due_on"] = due_on
            if owner is not None:
                self.crm.staff._get(owner)
                self.crm.staff.refuse_inactive(owner, "own workflow instances")
                changes["owner"] = owner
            if fields:
                changes["fields"] = {**instance.fields, **fields}
            if changes:
                ctx.connection.execute(
                    update(t.workflow_instances)
                    .where(t.workflow_instances.c.id == instance_id)
                    .values(changes)
                )
                ctx.audit(
                    "workflow.update",
                    "workflow",
                    instance_id,
                    customer_id=instance.customer_id,
                    before={k: getattr(instance, k) for k in changes},
                    after=changes,
                )
            return self._get(instance_id)

    @staticmethod
    def _check_required(
        required: tuple[str, ...], fields: dict[str, Any], value: Any, due_on: Any, stage: str
    ) -> None:
        present = {**fields, "value": value, "due_on": due_on}
        missing = [f for f in required if present.get(f) in (None, "")]
        if missing:
            raise TransitionRefused(
                f"stage {stage!r} needs {', '.join(missing)}; "
                "give them with fields={...} (--field NAME=VALUE)"
            )

    def _record(
        self,
        ctx: Any,
        instance_id: int,
        workflow: str,
        from_stage: str | None,
        to_stage: str,
        reason: str,
    ) -> Transition:
        values = {
            "instance_id": instance_id,
            "from_stage": from_stage,
            "to_stage": to_stage,
            "actor": ctx.actor.label,
            "at": ctx.now,
            "reason": reason or "",
        }
        new_id = ctx.connection.scalar(
            insert(t.workflow_transitions).returning(t.workflow_transitions.c.id), values
        )
        transition = Transition(workflow=workflow, id=new_id, **values)
        ctx.changes.transitions.append(transition)
        return transition

    def _lock(self, ctx: Any, instance_id: int) -> WorkflowInstance:
        query = select(t.workflow_instances).where(t.workflow_instances.c.id == instance_id)
        if ctx.connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = ctx.connection.execute(query).first()
        if row is None:
            raise NotFound(f"workflow instance {instance_id} not found")
        return WorkflowInstance(**row._mapping)

    # -- reads ------------------------------------------------------------
    def _visible(self) -> Any:
        """A SELECT of the instances of customers the actor may see (``workflows.read``)."""
        query = select(t.workflow_instances)
        scoped = access.owners_filter(
            self.crm, "workflows.read", t.workflow_instances.c.customer_id
        )
        return query if scoped is None else query.where(scoped)

    def get(self, instance_id: int) -> WorkflowInstance:
        """The workflow instance (a deal, a case ...) with this id (``workflows.read`` on
        its customer; outside the actor's scope: :class:`NotFound`)."""
        access.require(self.crm, "workflows.read")
        instance = self._get(instance_id)
        access.authorise(
            self.crm, "workflows.read", instance.customer_id, kind="workflow", id=instance_id
        )
        return instance

    def _get(self, instance_id: int) -> WorkflowInstance:
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.workflow_instances).where(t.workflow_instances.c.id == instance_id)
            ).first()
        if row is None:
            raise NotFound(f"workflow instance {instance_id} not found; see 'crmkit workflow list'")
        return WorkflowInstance(**row._mapping)

    def list(
        self,
        *,
        workflow: str | None = None,
        stage: str | None = None,
        customer_id: int | None = None,
        owner: str | None = None,
        open_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[WorkflowInstance]:
        """Workflow instances, newest first, filtered by workflow, stage, customer, owner, open.
        Only instances of customers the actor may see (``workflows.read``)."""
        if customer_id is not None:
            access.authorise(self.crm, "workflows.read", customer_id)
        query = self._visible()
        filtered = workflow or stage or owner or open_only or offset or limit is not None
        if customer_id is not None and query.whereclause is None and not filtered:
            # one customer's instances (the 360's read): the statement built once
            with self.crm.reading() as connection:
                rows = prebuilt.rows(connection, _OF_CUSTOMER, {"customer_id": customer_id})
                return [WorkflowInstance(**row._asdict()) for row in rows]
        if workflow:
            query = query.where(t.workflow_instances.c.workflow == workflow)
        if stage:
            query = query.where(t.workflow_instances.c.stage == stage)
        if customer_id is not None:
            query = query.where(t.workflow_instances.c.customer_id == customer_id)
        if owner:
            query = query.where(t.workflow_instances.c.owner == owner)
        if open_only:
            query = query.where(t.workflow_instances.c.closed_at.is_(None))
        query = query.order_by(t.workflow_instances.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.crm.reading() as connection:
            return [WorkflowInstance(**row._mapping) for row in connection.execute(query)]

    def history(self, instance_id: int) -> list[Transition]:
        """Every transition of an instance, oldest first: the audit trail."""
        self.get(instance_id)
        query = (
            select(t.workflow_transitions, t.workflow_instances.c.workflow)
            .join(
                t.workflow_instances,
                t.workflow_instances.c.id == t.workflow_transitions.c.instance_id,
            )
            .where(t.workflow_transitions.c.instance_id == instance_id)
            .order_by(t.workflow_transitions.c.at, t.workflow_transitions.c.id)
        )
        with self.crm.reading() as connection:
            return [Transition(**row._mapping) for row in connection.execute(query)]

    def next_steps(self, instance_id: int) -> tuple[str, ...]:
        """The next steps the instance's current stage suggests to the person working it."""
        instance = self.get(instance_id)
        return self.definition(instance.workflow).stage(instance.stage).next_steps

    def figures(self, workflow: str, *, as_of: dt.datetime | None = None) -> list[StageFigures]:
        """Per stage: entered, in it now, left; mean time in stage; conversion to won.

        Computed in SQL: each transition's time in stage is the gap to the
        instance's next transition (a window function), so it scales with the
        database, not with Python.
        """
        definition = self.definition(workflow)
        as_of = as_of or dt.datetime.now(dt.UTC)
        tr = t.workflow_transitions
        wi = t.workflow_instances
        scoped = access.owners_filter(self.crm, "workflows.read", wi.c.customer_id)
        visits = (
            select(
                tr.c.instance_id,
                tr.c.to_stage.label("stage"),
                tr.c.at.label("entered_at"),
                over(
                    func.lead(tr.c.at), partition_by=tr.c.instance_id, order_by=(tr.c.at, tr.c.id)
                ).label("left_at"),
            )
            .join(wi, wi.c.id == tr.c.instance_id)
            .where(and_(wi.c.workflow == workflow, tr.c.at <= as_of))
            .where(scoped if scoped is not None else true())
            .subquery()
        )
        won_stages = [s.name for s in definition.stages if s.outcome == "won"]
        won_instances = select(wi.c.id).where(
            and_(wi.c.workflow == workflow, wi.c.stage.in_(won_stages or ["\0"]))
        )
        with self.crm.reading() as connection:
            rows = connection.execute(
                select(
                    visits.c.stage,
                    visits.c.instance_id,
                    visits.c.entered_at,
                    visits.c.left_at,
                    visits.c.instance_id.in_(won_instances).label("won"),
                )
            ).all()
        stats: dict[str, dict[str, Any]] = {
            s.name: {"entered": set(), "current": 0, "left": 0, "seconds": [], "won": set()}
            for s in definition.stages
        }
        for stage, instance_id, entered_at, left_at, won in rows:
            entry = stats.setdefault(
                stage, {"entered": set(), "current": 0, "left": 0, "seconds": [], "won": set()}
            )
            entry["entered"].add(instance_id)
            if won:
                entry["won"].add(instance_id)
            if left_at is None:
                entry["current"] += 1
            else:
                entry["left"] += 1
                entry["seconds"].append((_aware(left_at) - _aware(entered_at)).total_seconds())
        figures = []
        for stage, entry in stats.items():
            entered = len(entry["entered"])
            seconds = entry["seconds"]
            figures.append(
                StageFigures(
                    stage=stage,
                    entered=entered,
                    current=entry["current"],
                    left=entry["left"],
                    mean_hours_in_stage=round(sum(seconds) / len(seconds) / 3600, 2)
                    if seconds
                    else None,
                    won=len(entry["won"]),
                    conversion=round(len(entry["won"]) / entered, 4) if entered else None,
                )
            )
        return figures


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _instance_values(instance: WorkflowInstance) -> dict[str, Any]:
    import attrs

    return attrs.asdict(instance, recurse=False)


# one customer's instances: what list() builds for them, built once (building a Core
# statement costs about as much CPU as running it)
_OF_CUSTOMER = (
    select(t.workflow_instances)
    .where(t.workflow_instances.c.customer_id == bindparam("customer_id"))
    .order_by(t.workflow_instances.c.id)
)
