"""Hook implementations of the knowledgebase plugin (its own hook: :mod:`.hookspecs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import crmkit.plugin as ck
from crmkit_knowledgebase.limit_settings import DEFAULTS as LIMIT_DEFAULTS
from crmkit_knowledgebase.limit_settings import validate_settings as validate_limits

# The plugin's other modules (SQLAlchemy tables, the service) are imported inside the
# hooks that use them: loading the plugin for ``crmkit --help`` stays cheap.

CRMKIT_API = ">=1.7,<2"  # driver_rows (1.7); lazy_command (1.4); routes (1.3)

DEFAULTS: dict[str, Any] = {
    "site_title": "Help centre",
    "company": "",
    "suggest_limit": 5,
    "propose_limit": 3,
    # what rendering a reply template may spend (crmkit_knowledgebase.limits; README)
    **LIMIT_DEFAULTS,
}

SAMPLES = Path(__file__).parent / "samples"
#: sample templates that use the ``complaint`` variable the complaints plugin contributes
COMPLAINT_SAMPLES = SAMPLES / "with-complaints"


def _validate(values: dict[str, Any]) -> None:
    for key in ("site_title", "company"):
        if not isinstance(values[key], str):
            raise ValueError(f"{key} must be text")
    for key in ("suggest_limit", "propose_limit"):
        if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 1:
            raise ValueError(f"{key} must be a whole number of at least 1")
    validate_limits(values)


@ck.hookimpl
def crmkit_register_hookspecs() -> object:
    from crmkit_knowledgebase import hookspecs

    return hookspecs


@ck.hookimpl
def crmkit_register_migrations() -> str:
    return str(Path(__file__).parent / "migrations" / "versions")


@ck.hookimpl
def crmkit_register_settings() -> ck.SettingsSpec:
    return ck.SettingsSpec("knowledgebase", DEFAULTS, _validate)


@ck.hookimpl
def crmkit_register_template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]


@ck.hookimpl
def crmkit_register_permissions() -> tuple[ck.PermissionSpec, ...]:
    """knowledgebase.read / write / publish / send / admin (see :mod:`.access`)."""
    from crmkit_knowledgebase.access import PERMISSIONS

    return PERMISSIONS


@ck.hookimpl
def crmkit_register_routes() -> list[ck.Route]:
    """Search, suggest, articles with revisions; a public search (see :mod:`.api`)."""
    from crmkit_knowledgebase.api import routes

    return routes()


@ck.hookimpl
def crmkit_register_commands(cli: Any) -> None:
    # imported when a kb command runs, not for ``crmkit --help``
    help = "Knowledge base: articles, search, reply templates, self-service site."
    cli.add_command(ck.lazy_command("kb", "crmkit_knowledgebase.cli:kb", help))


@ck.hookimpl
def crmkit_customer_360_section(crm: Any, customer: Any) -> ck.Section | None:
    from crmkit_knowledgebase.service import service

    try:
        sends = service(crm).sends(customer.id, limit=50)
    except ck.Forbidden:  # a role without knowledgebase.read: the 360 goes without it
        return None
    if not sends:
        return None
    return ck.Section(
        title="Knowledge base: articles and templates sent",
        data={
            "sends": [
                {
                    "at": s.at.isoformat(),
                    "kind": s.kind,
                    "title": s.title,
                    "template_id": s.template_id,
                    "article_id": s.article_id,
                    "channel": s.channel,
                    "staff": s.staff,
                    "complaint_id": s.complaint_id,
                }
                for s in sends
            ]
        },
        template="knowledgebase/section.html",
        name="knowledgebase",
    )


@ck.hookimpl
def crmkit_export_personal_data(ctx: Any, customer: Any) -> dict[str, Any] | None:
    """The customer's sends (with their texts) and votes (with their comments)."""
    from crmkit_knowledgebase import personal

    return personal.export(ctx.connection, customer.id)


@ck.hookimpl
def crmkit_erase_personal_data(ctx: Any, customer: Any) -> None:
    """Send texts blanked (the sends stay, for the counts); votes unlinked, comments blanked
    (the helpful counts stay). Idempotent."""
    from crmkit_knowledgebase import personal

    personal.erase(ctx.connection, [customer.id])


@ck.hookimpl
def crmkit_merge_customers(ctx: Any, kept: Any, merged: Any) -> dict[str, Any] | None:
    """Re-link the duplicate's sends and votes to the kept customer:
    ``{"sends": n, "votes": m}``, or None when it had none."""
    from crmkit_knowledgebase import personal

    return personal.merge(ctx.connection, kept.id, merged.id)


@ck.hookimpl
def crmkit_customer_timeline(crm: Any, customer: Any, limit: int) -> list[ck.TimelineEntry]:
    """Replies (templates) and articles sent to the customer, newest first, at most limit."""
    from crmkit_knowledgebase import personal

    with crm.reading() as connection:
        return personal.timeline(connection, customer.id, limit)


@ck.hookimpl
def crmkit_catch_up(ctx: Any, since: Any) -> str | None:
    """Re-link sends and votes of customers merged, and erase those of customers erased,
    while this plugin was off (found from the tables, so ``since`` is not needed)."""
    from crmkit_knowledgebase import personal

    return personal.catch_up(ctx.connection)


@ck.hookimpl
def crmkit_generate_demo_data(crm: Any, rng: Any) -> str | None:
    from crmkit_knowledgebase.service import service
    from crmkit_knowledgebase.transfer import import_dir

    kb = service(crm)
    counts = import_dir(kb, SAMPLES, author="demo")
    if "complaint" in kb.template_variables():
        counts["templates_created"] += import_dir(kb, COMPLAINT_SAMPLES, author="demo")[
            "templates_created"
        ]
    articles = kb.list(status="published", limit=None)
    customers = crm.customers.list(limit=20)
    for article in articles:
        kb.view(article.id, count=rng.randint(1, 30))
        for _ in range(rng.randint(0, 4)):
            kb.vote(article.id, rng.random() < 0.8)
    templates = kb.templates()
    sent = 0
    for customer in customers[:10]:
        tpl = rng.choice(templates)
        try:
            kb.send(customer.id, template=tpl.name, channel="email", staff="demo")
            sent += 1
        except ck.CrmError:
            continue  # a template that needs a complaint
    return (
        f"knowledgebase: {counts['articles_created']} articles, "
        f"{counts['templates_created']} reply templates, {sent} sends"
    )


@ck.hookimpl(optionalhook=True)
def crmkit_complaints_reply_proposals(crm: Any, complaint: Any, text: str) -> list[dict[str, Any]]:
    """Reply proposals for a complaint: the templates and public published articles
    suggested for ``text``, best first; templates rendered for the complaint (its
    ``customer_id`` picks the customer; its fields are read as the ``complaint``
    variable declares them).

    A template that can not be rendered for this complaint (a field it needs is
    missing) is left out rather than failing the whole proposal.
    """
    from crmkit_knowledgebase.service import service

    kb = service(crm)
    limit = crm.settings.get("knowledgebase", DEFAULTS)["propose_limit"]
    try:
        suggestions = kb.suggest(text or "", limit=limit * 2, audience="public")
    except (ck.ValidationError, ck.Forbidden):  # no words to match; no knowledgebase.read
        return []
    proposals = []
    for s in suggestions:
        if s.kind == "template":
            try:
                body = kb.render(s.ref, complaint=complaint)
            except ck.CrmError:
                continue
        else:
            body = kb.get(s.ref).body
        proposals.append(
            {
                "source": f"knowledgebase:{s.kind}:{s.ref}",
                "title": s.title,
                "body": body,
                "score": round(s.score / (s.score + 10.0), 4),
            }  # fmt: skip
        )
    return proposals[:limit]


def counts(crm: Any) -> dict[str, int]:
    """Row counts of the plugin's tables (for tests and `crmkit kb stats`)."""
    from sqlalchemy import func, select

    from crmkit_knowledgebase import tables as t

    with crm.reading() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in (
                ("articles", t.articles),
                ("revisions", t.revisions),
                ("templates", t.templates),
                ("sends", t.sends),
                ("votes", t.votes),
            )
        }
