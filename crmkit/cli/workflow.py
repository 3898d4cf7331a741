"""``crmkit workflow ...``: start instances, move them, show them, list them, figures."""

from __future__ import annotations

import json
from typing import Any

import click

from crmkit.cli import UserError, cli, pass_crm
from crmkit.cli import params as p
from crmkit.cli.output import emit, format_option
from crmkit.core.serialize import jsonable
from crmkit.errors import NotFound


@cli.group(cls=p.RecordGroup)
def workflow() -> None:
    """Workflows (the sales pipeline and others): start, move, show, list, figures."""


@workflow.command("definitions")
@format_option()
@pass_crm
def workflow_definitions(crm: Any, fmt: str) -> None:
    """The defined workflows and their stages."""
    rows = [
        {
            "name": d.name,
            "title": d.title,
            "initial": d.initial,
            "stages": [s.name for s in d.stages] if fmt == "json" else " > ".join(d.stage_names),
            "source": d.source,
        }
        for d in crm.workflows.definitions
    ]
    emit(rows, fmt, ["name", "title", "initial", "stages", "source"])


@workflow.command("start")
@click.argument("name", metavar="WORKFLOW")
@click.argument("ref", metavar="CUSTOMER")
@click.option("--title", required=True, help="What it is about, e.g. 'Fleet renewal'.")
@click.option("--value", default=None, help="Expected value, a decimal.")
@click.option("--due-on", default=None, help="Due date, e.g. 2026-06-30.")
@click.option("--owner", default=None, help="Username of the responsible staff member.")
@click.option("--field", "fields", multiple=True, metavar="KEY=VALUE", help="A field (repeatable).")
@click.option("--actor", default=None, help="Staff username recorded as having started it.")
@pass_crm
def workflow_start(
    crm: Any,
    name: str,
    ref: str,
    title: str,
    value: str | None,
    due_on: str | None,
    owner: str | None,
    fields: tuple[str, ...],
    actor: str | None,
) -> None:
    """Start WORKFLOW (e.g. sales) for CUSTOMER (id or external id) at its first stage."""
    crm.workflows.definition(name)  # an unknown workflow is named before anything else
    target = p.customer(crm, ref)
    if actor and crm.staff.find(actor) is None:  # a lookup: no staff.read needed
        raise NotFound(f"staff member {actor!r} not found; add them with 'crmkit staff add'")
    instance = crm.workflows.start(
        name,
        target.id,
        title,
        value=p.money(value, "--value"),
        due_on=p.day(due_on, "--due-on"),
        owner=owner,
        fields=p.key_values(fields, "--field"),
        actor=actor,
    )
    click.echo(f"started {name} #{instance.id} for customer {target.id} at {instance.stage!r}")
    _next_steps(crm, instance.id)


@workflow.command("move")
@click.argument("instance_id", metavar="INSTANCE", type=int)
@click.argument("stage")
@click.option(
    "--actor", default=None,
    help="Staff username moving it (checked against the stage's roles); without it the "
    "system moves it.",
)  # fmt: skip
@click.option("--reason", default="", help="Why, recorded in the history.")
@click.option("--field", "fields", multiple=True, metavar="KEY=VALUE", help="A field (repeatable).")
@pass_crm
def workflow_move(
    crm: Any, instance_id: int, stage: str, actor: str | None, reason: str, fields: tuple[str, ...]
) -> None:
    """Move INSTANCE to STAGE (refused when not allowed: the reason is printed)."""
    before = crm.workflows.get(instance_id)
    after = crm.workflows.move(
        instance_id, stage, actor=actor, reason=reason, fields=p.key_values(fields, "--field")
    )
    click.echo(f"{after.workflow} #{after.id}: {before.stage} -> {after.stage}")
    _next_steps(crm, after.id)


def _next_steps(crm: Any, instance_id: int) -> None:
    steps = crm.workflows.next_steps(instance_id)
    if steps:
        click.echo("next steps: " + "; ".join(steps))


@workflow.command("show")
@click.argument("instance_id", metavar="INSTANCE", type=int)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="Output format.",
)  # fmt: skip
@pass_crm
def workflow_show(crm: Any, instance_id: int, fmt: str) -> None:
    """An instance: its stage, what to do next, where it may go, and its whole history."""
    instance = crm.workflows.get(instance_id)
    definition = crm.workflows.definition(instance.workflow)
    stage = definition.stage(instance.stage)
    history = crm.workflows.history(instance_id)
    if fmt == "json":
        data = {
            **jsonable(instance),
            "stage_title": stage.title,
            "roles": list(stage.roles),
            "next_steps": list(stage.next_steps),
            "allowed_moves": list(stage.to),
            "history": jsonable(history),
        }
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    lines = [
        f"{definition.title} #{instance.id}: {instance.title} (customer {instance.customer_id})",
        f"  stage: {stage.title} ({stage.name})" + (" - closed" if instance.closed_at else ""),
    ]
    if instance.value is not None:
        lines.append(f"  value: {instance.value}")
    for label, item in (("due on", instance.due_on), ("owner", instance.owner)):
        if item:
            lines.append(f"  {label}: {item}")
    for key, item in sorted(instance.fields.items()):
        lines.append(f"  field {key}: {item}")
    if stage.roles:
        lines.append(f"  responsible roles: {', '.join(stage.roles)}")
    lines += [f"  next: {step}" for step in stage.next_steps]
    lines.append(f"  may move to: {', '.join(stage.to) or 'nothing (terminal stage)'}")
    lines.append("history:")
    for t in history:
        frm = t.from_stage or "(start)"
        by = f" by {t.actor}" if t.actor else ""
        why = f": {t.reason}" if t.reason else ""
        lines.append(f"  {p.local(crm, t.at)} {frm} -> {t.to_stage}{by}{why}")
    click.echo("\n".join(lines))


@workflow.command("list")
@click.option("--workflow", "name", default=None, help="Only this workflow, e.g. sales.")
@click.option("--stage", default=None, help="Only instances at this stage.")
@click.option("--customer", "ref", default=None, help="Customer id or external id.")
@click.option("--owner", default=None, help="Username of the responsible staff member.")
@click.option("--open", "open_only", is_flag=True, help="Only instances not closed.")
@p.paging
@format_option()
@pass_crm
def workflow_list(
    crm: Any,
    name: str | None,
    stage: str | None,
    ref: str | None,
    owner: str | None,
    open_only: bool,
    limit: int,
    offset: int | None,
    page: int | None,
    fmt: str,
) -> None:
    """List workflow instances, oldest first."""
    if name:
        definition = crm.workflows.definition(name)
        if stage:
            p.choice(stage, "--stage", definition.stage_names)
    customer_id = p.customer(crm, ref).id if ref else None
    size, start = p.window(limit, offset, page)
    found = crm.workflows.list(
        workflow=name, stage=stage, customer_id=customer_id, owner=owner,
        open_only=open_only, limit=size, offset=start,
    )  # fmt: skip
    columns = ["id", "workflow", "customer_id", "title", "stage", "value", "owner", "created_at"]
    if fmt == "csv":
        columns += ["due_on", "closed_at"]
    p.emit_page([jsonable(i) for i in found], fmt, columns, size, start)


@workflow.command("figures")
@click.argument("name", metavar="WORKFLOW")
@click.option("--as-of", default=None, help="Figures as they were at this date or time.")
@format_option()
@pass_crm
def workflow_figures(crm: Any, name: str, as_of: str | None, fmt: str) -> None:
    """Per stage: entered, in it now, left, mean hours in stage, won, conversion."""
    moment = p.moment(as_of, "--as-of", crm.config.timezone)
    figures = crm.workflows.figures(name, as_of=moment)
    if not figures:
        raise UserError(f"workflow {name!r} has no stages")
    emit([jsonable(f) for f in figures], fmt)
