"""``crmkit complaints ...`` commands."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import attrs
import click

from crmkit.plugin import CHANNELS, ValidationError, emit, format_option, jsonable, pass_crm
from crmkit_complaints.service import service

LIST_COLUMNS = ["id", "customer_id", "channel", "category", "priority", "stage", "assignee"]


def _when(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{text!r} is not a date-time; write e.g. 2026-11-23T09:00+00:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _row(c: Any) -> dict[str, Any]:
    return attrs.asdict(c)


@click.group()
def complaints() -> None:
    """Complaints from every channel: lifecycle, SLA, replies, surveys, reports."""


@complaints.command("log")
@click.option("--customer", "customer_ref", required=True, help="Customer id or external id.")
@click.option("--channel", required=True, type=click.Choice(CHANNELS))
@click.option("--category", required=True)
@click.option("--description", required=True)
@click.option("--severity", default="medium", show_default=True)
@click.option("--priority", default="normal", show_default=True)
@click.option("--assignee")
@click.option("--interaction", "interaction_id", type=int, help="Existing interaction id.")
@click.option("--staff", "actor", help="Staff member logging it.")
@click.option("--at", "at_text", help="When it was received (ISO date-time).")
@format_option()
@pass_crm
def log_cmd(crm: Any, customer_ref: str, channel: str, category: str, description: str,
            severity: str, priority: str, assignee: str | None, interaction_id: int | None,
            actor: str | None, at_text: str | None, fmt: str) -> None:  # fmt: skip
    """Log a complaint (its interaction is logged too unless --interaction is given)."""
    customer = crm.customers.resolve(customer_ref)
    c = service(crm).log(
        customer.id,
        channel=channel,
        category=category,
        description=description,
        severity=severity,
        priority=priority,
        assignee=assignee,
        interaction_id=interaction_id,
        actor=actor,
        at=_when(at_text),
    )
    emit([_row(c)], fmt, [*LIST_COLUMNS, "tracking_code", "first_response_due_at"])


@complaints.command("list")
@click.option("--customer", "customer_ref")
@click.option("--stage")
@click.option("--open", "open_only", is_flag=True)
@click.option("--department")
@click.option("--limit", default=100, show_default=True)
@format_option()
@pass_crm
def list_cmd(crm: Any, customer_ref: str | None, stage: str | None, open_only: bool,
             department: str | None, limit: int, fmt: str) -> None:  # fmt: skip
    """List complaints."""
    customer_id = crm.customers.resolve(customer_ref).id if customer_ref else None
    rows = service(crm).list(
        customer_id=customer_id,
        stage=stage,
        open_only=open_only,
        department=department,
        limit=limit,
    )
    emit([_row(c) for c in rows], fmt, LIST_COLUMNS)


@complaints.command("show")
@click.argument("complaint_id", type=int)
@format_option("table", "json")
@pass_crm
def show_cmd(crm: Any, complaint_id: int, fmt: str) -> None:
    """Show one complaint with its SLA figures, replies and notes."""
    svc = service(crm)
    c = svc.get(complaint_id)
    data = {**_row(c), **svc.durations(c), "replies": svc.replies(c.id)}
    if fmt == "json":
        click.echo(json.dumps(jsonable(data), ensure_ascii=False, indent=2))
        return
    for key, value in data.items():
        if key == "replies":
            continue
        click.echo(f"{key:26} {'' if value is None else value}")
    for r in data["replies"]:
        kind = "public" if r["public"] else "internal"
        click.echo(f"[{kind}] {r['at'].isoformat(timespec='minutes')} {r['author'] or ''}: "
                   f"{r['body']}")  # fmt: skip


@complaints.command("assign")
@click.argument("complaint_id", type=int)
@click.argument("username")
@click.option("--staff", "actor")
@pass_crm
def assign_cmd(crm: Any, complaint_id: int, username: str, actor: str | None) -> None:
    """Assign a complaint to a staff member."""
    c = service(crm).assign(complaint_id, username, actor=actor)
    click.echo(f"complaint #{c.id} assigned to {c.assignee}")


@complaints.command("move")
@click.argument("complaint_id", type=int)
@click.argument("stage")
@click.option("--staff", "actor", help="Staff member moving it (roles are checked).")
@click.option("--reason", default="")
@click.option("--root-cause")
@click.option("--resolution")
@click.option("--at", "at_text")
@pass_crm
def move_cmd(crm: Any, complaint_id: int, stage: str, actor: str | None, reason: str,
             root_cause: str | None, resolution: str | None,
             at_text: str | None) -> None:  # fmt: skip
    """Move a complaint to the next stage of its workflow."""
    c = service(crm).move(
        complaint_id,
        stage,
        actor=actor,
        reason=reason,
        root_cause=root_cause,
        resolution=resolution,
        at=_when(at_text),
    )
    click.echo(f"complaint #{c.id} is now {c.stage}")


@complaints.command("reply")
@click.argument("complaint_id", type=int)
@click.argument("text")
@click.option("--internal", is_flag=True, help="An internal note the customer never sees.")
@click.option("--show-author", is_flag=True, help="Show the author's name to the customer.")
@click.option("--staff", "actor")
@click.option("--at", "at_text")
@pass_crm
def reply_cmd(crm: Any, complaint_id: int, text: str, internal: bool, show_author: bool,
              actor: str | None, at_text: str | None) -> None:  # fmt: skip
    """Reply to the customer (public) or add an internal note."""
    r = service(crm).reply(
        complaint_id,
        text,
        public=not internal,
        show_author=show_author,
        actor=actor,
        at=_when(at_text),
    )
    kind = "internal note" if internal else "public reply"
    click.echo(f"{kind} {r['id']} added to complaint #{complaint_id}")


@complaints.command("check-sla")
@click.option("--as-of", "as_of", required=True, help="Check time (ISO date-time).")
@format_option()
@pass_crm
def check_sla_cmd(crm: Any, as_of: str, fmt: str) -> None:
    """Raise SLA warnings and breaches due by --as-of (each only once) and notify.

    The default notifier stores one outbox row per recipient; this command also prints
    them, one line each (the Python API prints nothing).
    """
    alerts = service(crm).check_sla(_when(as_of))
    if fmt == "table":
        for alert in alerts:
            for recipient in alert.recipients:
                click.echo(f"to {recipient}: {alert.message}")
        click.echo(f"{len(alerts)} new alert(s)")
        return
    emit([{**attrs.asdict(a), "recipients": a.recipients} for a in alerts], fmt)


@complaints.command("status")
@click.argument("code")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the page.")
@pass_crm
def status_cmd(crm: Any, code: str, html_path: str | None) -> None:
    """What the customer sees for tracking CODE: stage and public replies."""
    svc = service(crm)
    s = svc.status(code)
    if html_path:
        Path(html_path).write_text(svc.status_page(code), encoding="utf-8")
    click.echo(f"{s['tracking_code']}: {s['stage_title']} ({s['category']})")
    for r in s["replies"]:
        who = f" — {r['author']}" if r["author"] else ""
        click.echo(f"  {r['at'].isoformat(timespec='minutes')}{who}: {r['body']}")


@complaints.command("survey")
@click.argument("complaint_id", type=int)
@click.option("--csat", type=int, required=True, help="Satisfaction 1-5.")
@click.option("--recommend", "nps", type=int, required=True, help="Likelihood to recommend 0-10.")
@click.option("--comment", default="")
@click.option("--at", "at_text", help="When it was answered (ISO date-time).")
@pass_crm
def survey_cmd(crm: Any, complaint_id: int, csat: int, nps: int, comment: str,
               at_text: str | None) -> None:  # fmt: skip
    """Record the satisfaction survey after resolution."""
    service(crm).survey(complaint_id, csat=csat, nps=nps, comment=comment, at=_when(at_text))
    click.echo(f"survey recorded for complaint #{complaint_id}")


@complaints.command("report")
@click.option(
    "--by", type=click.Choice(["category", "department", "channel", "month"]), default="category"
)
@click.option("--as-of", "as_of", help="Figures as of this moment (default: now).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write an HTML report with charts (all groupings) to this file.")  # fmt: skip
@format_option()
@pass_crm
def report_cmd(crm: Any, by: str, as_of: str | None, html_path: str | None, fmt: str) -> None:
    """Counts, CSAT, NPS, SLA compliance and mean response/resolution times."""
    from crmkit_complaints.reports import report_html

    if html_path:
        Path(html_path).write_text(report_html(service(crm), _when(as_of)), encoding="utf-8")
        click.echo(f"report written to {html_path}")
        return
    emit(service(crm).report(by, as_of=_when(as_of)), fmt)


@complaints.command("departments")
@click.option("--department", help="Only this department (e.g. R&D).")
@format_option()
@pass_crm
def departments_cmd(crm: Any, department: str | None, fmt: str) -> None:
    """Per department: its complaints and their root causes."""
    emit(service(crm).departments(department), fmt)


@complaints.command("sla-policy")
@click.option("--priority", default="*", show_default=True)
@click.option("--channel", default="*", show_default=True)
@click.option("--first-response-hours", type=float, required=True)
@click.option("--resolution-hours", type=float, required=True)
@click.option("--warn-ratio", type=float, default=0.75, show_default=True)
@click.option("--clock", type=click.Choice(["business", "wall"]), default="business")
@pass_crm
def policy_cmd(crm: Any, priority: str, channel: str, first_response_hours: float,
               resolution_hours: float, warn_ratio: float, clock: str) -> None:  # fmt: skip
    """Set an SLA policy; open complaints it governs get new targets."""
    n = service(crm).set_policy(
        priority,
        channel,
        first_response_hours=first_response_hours,
        resolution_hours=resolution_hours,
        warn_ratio=warn_ratio,
        clock=clock,
    )
    click.echo(f"policy {priority}/{channel} stored; {n} open complaint(s) recomputed")


@complaints.command("recompute-sla")
@pass_crm
def recompute_cmd(crm: Any) -> None:
    """Re-apply the SLA policies to open complaints (after editing crmkit.toml)."""
    n = service(crm).recompute()
    click.echo(f"{n} open complaint(s) recomputed")


@complaints.command("propose")
@click.argument("complaint_id", type=int)
@format_option()
@pass_crm
def propose_cmd(crm: Any, complaint_id: int, fmt: str) -> None:
    """Reply proposals from plugins (e.g. knowledgebase)."""
    proposals = service(crm).propose(complaint_id)
    if proposals is None:
        click.echo(
            "no plugin offers reply proposals (install one implementing "
            "crmkit_complaints_reply_proposals, e.g. knowledgebase)"
        )
        return
    emit(proposals, fmt, ["score", "source", "title", "body"])


@complaints.command("check")
@format_option()
@pass_crm
def check_cmd(crm: Any, fmt: str) -> None:
    """Report customers whose vip value is not true or false (exit status 1 if any).

    Such values were stored before complaints declared the boolean attribute ``vip``;
    they count as not VIP and are kept as stored until edited.
    """
    from crmkit_complaints.intake import vip_problems

    with crm.reading() as connection:
        problems = vip_problems(crm, connection)
    if fmt == "table":
        for problem in problems:
            click.echo(problem.message)
        click.echo(
            f"{len(problems)} customer(s) with a vip value that is not true or false"
            if problems
            else "every vip value is true or false"
        )
    else:
        emit([{**attrs.asdict(p), "problem": p.message} for p in problems], fmt)
    if problems:
        click.get_current_context().exit(1)
