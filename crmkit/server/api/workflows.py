"""Workflows: the definitions; instances (list, start, read with transitions, move)."""

from __future__ import annotations

from typing import Any

from crmkit.server.api import common
from crmkit.server.api import convert as c
from crmkit.server.api import schemas as s
from crmkit.server.routing import ApiRequest, ApiResponse, Page, Route

TAGS = ("workflows",)


def _definition_out(definition: Any) -> s.WorkflowOut:
    return s.WorkflowOut(
        name=definition.name,
        title=definition.title,
        initial=definition.initial,
        source=definition.source,
        stages=[
            s.StageOut(
                name=x.name,
                title=x.title,
                roles=list(x.roles),
                next_steps=list(x.next_steps),
                required_fields=list(x.required_fields),
                to=list(x.to),
                terminal=x.terminal,
                outcome=x.outcome,
            )
            for x in definition.stages
        ],
    )


def list_workflows(req: ApiRequest) -> list[s.WorkflowOut]:
    """The workflow definitions (the sales pipeline, plugins', the configuration's)."""
    return [_definition_out(d) for d in req.crm.workflows.definitions]


def get_workflow(req: ApiRequest) -> s.WorkflowOut:
    """One workflow definition with its stages."""
    return _definition_out(req.crm.workflows.definition(req.path["name"]))


def list_instances(req: ApiRequest) -> Page:
    """Workflow instances matching the filters, oldest first (cursor paging)."""
    query: s.WorkflowInstanceQuery = req.query or s.WorkflowInstanceQuery()
    crm = req.crm
    if query.workflow:
        definition = crm.workflows.definition(query.workflow)
        c.choice(query.stage, "stage", definition.stage_names)
    limit = common.limit_of(query.limit)
    filters = {
        "workflow": query.workflow,
        "stage": query.stage,
        "customer_id": c.customer_id_of(crm, query.customer),
        "owner": query.owner,
        "open_only": query.open,
    }

    def fetch(offset: int, size: int) -> list[Any]:
        return crm.workflows.list(**filters, limit=size, offset=offset)

    items, cursor = common.offset_page(fetch, limit, query.cursor)
    return Page([c.instance_out(i) for i in items], cursor)


def _detail(req: ApiRequest, instance: Any) -> s.WorkflowInstanceDetail:
    crm = req.crm
    definition = crm.workflow_definitions.get(instance.workflow)
    steps: list[str] = []
    open_stage = definition is not None and instance.stage in definition.stage_names
    if open_stage and instance.closed_at is None:
        steps = list(definition.stage(instance.stage).next_steps)
    return s.WorkflowInstanceDetail(
        **c.instance_values(instance),
        next_steps=steps,
        transitions=[c.transition_out(t) for t in crm.workflows.history(instance.id)],
    )


def get_instance(req: ApiRequest) -> ApiResponse:
    """A workflow instance with its transitions, oldest first, and its stage's next steps."""
    instance = req.crm.workflows.get(req.path["instance_id"])
    req.crm.customers.get(instance.customer_id)  # out of scope: 404 like no instance
    return ApiResponse(body=_detail(req, instance))


def start_instance(req: ApiRequest) -> ApiResponse:
    """Start an instance of a workflow for a customer at its initial stage."""
    body: s.WorkflowInstanceIn = req.body
    started = req.crm.workflows.start(
        body.workflow,
        body.customer_id,
        body.title,
        value=body.value,
        due_on=body.due_on,
        owner=body.owner,
        fields=dict(body.fields),
    )
    return ApiResponse(
        body=_detail(req, started),
        status=201,
        headers={"Location": f"/api/v1/workflow-instances/{started.id}"},
    )


def move_instance(req: ApiRequest) -> ApiResponse:
    """Move an instance to another stage as the signed-in staff member (their roles must
    allow it); refused moves are 409 transition-refused, nothing stored."""
    body: s.TransitionIn = req.body
    moved = req.crm.workflows.move(
        req.path["instance_id"],
        body.to_stage,
        actor=common.acting_username(req),
        reason=body.reason,
        fields=dict(body.fields),
    )
    return ApiResponse(body=_detail(req, moved), status=201)


def routes() -> list[Route]:
    one = "/workflow-instances/{instance_id:int}"
    return [
        Route("GET", "/workflows", list_workflows, "List workflow definitions",
              response=list[s.WorkflowOut], tags=TAGS, quick=True),
        Route("GET", "/workflows/{name}", get_workflow, "Get a workflow definition",
              response=s.WorkflowOut, tags=TAGS, quick=True, errors=(404,)),
        Route("GET", "/workflow-instances", list_instances, "List workflow instances",
              query=s.WorkflowInstanceQuery, response=list[s.WorkflowInstanceOut], tags=TAGS,
              quick=True),
        Route("POST", "/workflow-instances", start_instance, "Start a workflow instance",
              body=s.WorkflowInstanceIn, response=s.WorkflowInstanceDetail, status=201,
              tags=TAGS, quick=True, errors=(404, 409)),
        Route("GET", one, get_instance, "Get a workflow instance with its transitions",
              response=s.WorkflowInstanceDetail, tags=TAGS, quick=True, errors=(404,)),
        Route("POST", one + "/transitions", move_instance, "Move a workflow instance",
              body=s.TransitionIn, response=s.WorkflowInstanceDetail, status=201, tags=TAGS,
              quick=True, errors=(404, 409)),
    ]  # fmt: skip
