"""Hook implementations of the complaints plugin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

import crmkit.plugin as ck
from crmkit_complaints import hookspecs

# The plugin's other modules (SQLAlchemy tables, the service) are imported inside the
# hooks that use them: loading the plugin for ``crmkit --help`` stays cheap.

CRMKIT_API = ">=1.4,<2"  # lazy_command (1.4); permissions, audit, routes (1.3)

HANDLERS = ["complaint_handler", "manager"]

COMPLAINT_FLOW: dict[str, Any] = {
    "title": "Complaint",
    "initial": "received",
    "stages": [
        {
            "name": "received",
            "next_steps": ["Acknowledge to the customer", "Check category and assignee"],
            "to": ["acknowledged", "investigating", "waiting_on_customer", "resolved"],
        },
        {
            "name": "acknowledged",
            "roles": HANDLERS,
            "next_steps": ["Investigate the cause"],
            "to": ["investigating", "waiting_on_customer", "resolved"],
        },
        {
            "name": "investigating",
            "roles": HANDLERS,
            "next_steps": ["Find the root cause", "Agree a resolution"],
            "to": ["waiting_on_customer", "resolved"],
        },
        {
            "name": "waiting_on_customer",
            "title": "Waiting on customer",
            "roles": HANDLERS,
            "next_steps": ["Wait for the customer's answer (SLA clock paused)"],
            "to": ["investigating", "resolved"],
        },
        {
            "name": "resolved",
            "roles": HANDLERS,
            "next_steps": ["Send the satisfaction survey", "Close, or reopen if not solved"],
            "to": ["closed", "investigating"],
        },
        {
            "name": "closed",
            "roles": HANDLERS,
            "terminal": True,
            "next_steps": ["Reopen if the customer comes back"],
            "to": ["investigating"],
        },
    ],
}

DEFAULTS: dict[str, Any] = {
    "categories": [
        "product quality",
        "product use",
        "delivery",
        "billing",
        "staff attitude",
        "process",
    ],
    "routing": {
        "product quality": "R&D",
        "product use": "R&D",
        "delivery": "logistics",
        "billing": "finance",
        "staff attitude": "management",
        "process": "management",
    },
    # department -> username of the staff member who gets alerts of unassigned complaints
    # ("*": every other department); empty: such alerts go to "(unassigned)" in the outbox
    "responsible": {},
    "severities": ["low", "medium", "high", "critical"],
    "priorities": ["low", "normal", "high", "urgent"],
    "vip_priority": "urgent",
    "calendar": {
        "timezone": "UTC",
        "week": {
            day: [["09:00", "12:00"], ["13:00", "18:00"]]
            for day in ("mon", "tue", "wed", "thu", "fri")
        },
        "holidays": [],
    },
    "sla_policies": [
        # the default: first answer within one working day, resolution within a week
        {"priority": "*", "channel": "*", "first_response_hours": 8, "resolution_hours": 40},
        # e-mail: customers expect an answer within a day; warn after 12 hours without reply
        {
            "priority": "*",
            "channel": "email",
            "first_response_hours": 24,
            "resolution_hours": 120,
            "warn_ratio": 0.5,
            "clock": "wall",
        },
        # VIP and urgent complaints get the fastest reaction
        {"priority": "urgent", "channel": "*", "first_response_hours": 1, "resolution_hours": 8},
        {"priority": "high", "channel": "*", "first_response_hours": 4, "resolution_hours": 24},
    ],
}


def _validate(values: dict[str, Any]) -> None:
    from crmkit_complaints.businesshours import Calendar
    from crmkit_complaints.policies import check_policy

    try:
        Calendar.from_dict(values["calendar"], "calendar")
    except ck.ConfigError as exc:
        raise ValueError(str(exc)) from None
    for name in ("categories", "severities", "priorities"):
        if not values[name] or not all(isinstance(v, str) for v in values[name]):
            raise ValueError(f"{name} must be a non-empty list of names")
    if bad := set(values["routing"]) - set(values["categories"]):
        raise ValueError(f"routing names unknown categories {sorted(bad)}")
    responsible = values["responsible"]
    if not isinstance(responsible, dict) or not all(
        isinstance(v, str) and v.strip() for v in responsible.values()
    ):
        raise ValueError('responsible must map departments to usernames, e.g. {"R&D" = "rita"}')
    departments = set(values["routing"].values())
    if bad := set(responsible) - departments - {"*"}:
        raise ValueError(
            f"responsible names unknown departments {sorted(bad)}; departments are the "
            f"values of routing: {sorted(departments)}, or '*' for any other"
        )
    if values["vip_priority"] not in values["priorities"]:
        raise ValueError(f"vip_priority {values['vip_priority']!r} is not one of the priorities")
    keys = set()
    for i, raw in enumerate(values["sla_policies"]):
        try:
            policy = check_policy(raw, values, f"sla_policies[{i}]")
        except ck.ValidationError as exc:
            raise ValueError(str(exc)) from None
        keys.add((policy.priority, policy.channel))
    if ("*", "*") not in keys:
        raise ValueError("sla_policies needs a fallback policy with priority '*' and channel '*'")


@ck.hookimpl
def crmkit_register_hookspecs() -> ModuleType:
    return hookspecs


@ck.hookimpl
def crmkit_register_migrations() -> str:
    return str(Path(__file__).parent / "migrations" / "versions")


@ck.hookimpl
def crmkit_register_settings() -> ck.SettingsSpec:
    return ck.SettingsSpec("complaints", DEFAULTS, _validate)


@ck.hookimpl
def crmkit_register_workflows() -> list[ck.WorkflowDefinition]:
    return [ck.WorkflowDefinition.from_dict("complaint", COMPLAINT_FLOW, source="complaints")]


@ck.hookimpl
def crmkit_register_attributes() -> list[ck.AttributeDefinition]:
    return [
        ck.AttributeDefinition(
            "vip",
            "boolean",
            description="VIP customer: complaints get the top priority",
            declared_by="complaints",
        )
    ]


@ck.hookimpl
def crmkit_register_permissions() -> list[ck.PermissionSpec]:
    from crmkit_complaints import access

    return list(access.PERMISSIONS)


@ck.hookimpl
def crmkit_register_routes() -> list[ck.Route]:
    from crmkit_complaints.api import routes

    return routes()


@ck.hookimpl
def crmkit_register_template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]


@ck.hookimpl
def crmkit_after_workflow_transitions(ctx: Any, transitions: Sequence[Any]) -> None:
    from crmkit_complaints.service import service

    if any(tr.workflow == "complaint" for tr in transitions):
        service(ctx.crm).on_transitions(ctx, transitions)


@ck.hookimpl(optionalhook=True)
def crmkit_knowledgebase_register_template_variables() -> dict[str, dict[str, str]]:
    """The knowledge base's reply templates may use ``complaint.<field>``: the fields of
    :class:`~crmkit_complaints.hookspecs.ComplaintFacts`, with their descriptions."""
    return {
        "complaint": {f.name: f.metadata["doc"] for f in attrs.fields(hookspecs.ComplaintFacts)}
    }


@ck.hookimpl
def crmkit_register_commands(cli: Any) -> None:
    # imported when a complaints command runs, not for ``crmkit --help``
    help = "Complaints from every channel: lifecycle, SLA, replies, surveys, reports."
    cli.add_command(ck.lazy_command("complaints", "crmkit_complaints.cli:complaints", help))


@ck.hookimpl
def crmkit_customer_360_section(crm: Any, customer: Any) -> ck.Section | None:
    from crmkit_complaints.service import service

    try:
        open_ones = service(crm).list(customer_id=customer.id, open_only=True, limit=None)
    except (ck.Forbidden, ck.NotFound):  # the reader may see the customer, not complaints
        return None
    if not open_ones:
        return None
    return ck.Section(
        title="Open complaints",
        name="complaints",
        template="complaints/section.html",
        data={
            "complaints": [
                {
                    "id": c.id,
                    "category": c.category,
                    "channel": c.channel,
                    "stage": c.stage,
                    "priority": c.priority,
                    "assignee": c.assignee,
                    "received_at": c.received_at.isoformat(),
                    "resolution_due_at": c.resolution_due_at.isoformat()
                    if c.resolution_due_at
                    else None,
                }
                for c in open_ones
            ]
        },
    )


@ck.hookimpl
def crmkit_export_personal_data(ctx: Any, customer: Any) -> dict[str, Any] | None:
    """Every personal value of the customer's complaints (see ``personal.export``)."""
    from crmkit_complaints import personal

    return personal.export(ctx.connection, customer.id)


@ck.hookimpl
def crmkit_erase_personal_data(ctx: Any, customer: Any) -> None:
    """Blank the customer's complaint texts, notes, survey comments and tracking codes;
    idempotent, so a re-run completes a partial erasure."""
    from crmkit_complaints import personal

    personal.erase(ctx.connection, [customer.id])


@ck.hookimpl
def crmkit_merge_customers(ctx: Any, kept: Any, merged: Any) -> dict[str, Any] | None:
    """Re-link the duplicate's complaints to the kept customer: ``{"complaints": n}``."""
    from crmkit_complaints import personal

    return personal.merge(ctx.connection, kept.id, merged.id)


@ck.hookimpl
def crmkit_customer_timeline(crm: Any, customer: Any, limit: int) -> list[ck.TimelineEntry]:
    """Complaints opened and public replies sent to the customer, newest first (nothing
    for a reader without ``complaints.read`` on the customer)."""
    from crmkit_complaints import access, personal

    try:
        access.on_customer(crm, access.READ, customer.id)
    except (ck.Forbidden, ck.NotFound):
        return []
    with crm.reading() as connection:
        return list(personal.timeline(connection, customer.id, limit))


@ck.hookimpl
def crmkit_catch_up(ctx: Any, since: dt.datetime | None) -> str | None:
    """Complete erasures and merges made while complaints was off; report invalid ``vip``
    values. ``since`` is not needed: see ``crmkit_complaints.catchup``."""
    from crmkit_complaints import catchup

    return catchup.catch_up(ctx)


@ck.hookimpl
def crmkit_generate_demo_data(crm: Any, rng: Any) -> str | None:
    from crmkit_complaints.service import service

    svc = service(crm)
    customers = crm.customers.list(limit=20)
    if not customers:
        return None
    staff = [s.username for s in crm.staff.list()] or [None]
    start = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    channels = ["phone", "email", "letter", "web", "chat", "visit"]
    texts = {
        "product quality": "The kettle stopped heating after two weeks.",
        "delivery": "The parcel arrived three days late and the box was damaged.",
        "billing": "I was charged twice for the same order.",
        "staff attitude": "The agent on the phone was rude.",
        "process": "Returning a product needs three different forms.",
        "product use": "I cannot find how to descale the machine.",
    }
    made = 0
    for i, channel in enumerate(channels):
        customer = rng.choice(customers)
        category = rng.choice(sorted(texts))
        c = svc.log(
            customer.id,
            channel=channel,
            category=category,
            description=texts[category],
            assignee=rng.choice(staff),
            at=start + dt.timedelta(days=i, hours=rng.randint(0, 6)),
        )
        made += 1
        if i % 2 == 0:
            at = c.received_at + dt.timedelta(hours=2)
            svc.reply(c.id, "Thank you, we are looking into it.", at=at)
            svc.move(c.id, "investigating", root_cause="supplier batch", at=at)
            if i % 4 == 0:
                later = at + dt.timedelta(days=1)
                svc.move(c.id, "resolved", resolution="Replaced", at=later)
                svc.survey(c.id, csat=rng.randint(3, 5), nps=rng.randint(6, 10), at=later)
    return f"complaints: {made} complaints across {len(channels)} channels"


def __getattr__(name: str) -> Any:
    if name == "OPEN_STAGES":  # re-exported on first use (PEP 562): records imports SQLAlchemy
        from crmkit_complaints.records import OPEN_STAGES

        return OPEN_STAGES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMPLAINT_FLOW", "DEFAULTS", "OPEN_STAGES"]  # noqa: F822 (OPEN_STAGES: lazy)
