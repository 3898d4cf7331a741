"""Reply templates: save (checked in the sandbox), render for a customer, send and record.

Rendering itself is :mod:`crmkit_knowledgebase.templating` (the Jinja2 sandbox);
this module stores templates, builds their context from the CRM and records sends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import insert, select, update

from crmkit.plugin import NotFound, ValidationError
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase import templating
from crmkit_knowledgebase.articles import article_row
from crmkit_knowledgebase.content import clean_template
from crmkit_knowledgebase.entities import (
    Send,
    Template,
    article_from_row,
    send_from_row,
    template_from_row,
)

if TYPE_CHECKING:
    from crmkit.plugin import CRM


def template_row(connection: Any, name: str) -> Any:
    """The ``kb_templates`` row of a template by name; NotFound otherwise."""
    row = connection.execute(select(t.templates).where(t.templates.c.name == name)).first()
    if row is None:
        raise NotFound(
            f"reply template {name!r} not found; list templates with 'crmkit kb templates'"
        )
    return row


class ReplyTemplates:
    """Reply templates and sends (a part of :class:`crmkit_knowledgebase.KnowledgeBase`)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- templates --------------------------------------------------------
    def add_template(
        self,
        name: str,
        body: str,
        *,
        title: str = "",
        triggers: Iterable[str] = (),
        format: str = "text",  # noqa: A002 - the natural name
        category: str = "general",
        author: str | None = None,
    ) -> Template:
        """Save a reply template; refused when it does not compile or escapes the sandbox."""
        data = clean_template(
            {
                "name": name,
                "body": body,
                "title": title or name,
                "triggers": list(triggers),
                "format": format,
                "category": category,
            }
        )
        templating.check(name, data["body"], data["format"], self.crm.attribute_definitions)
        with self.crm.transaction(actor=author) as ctx:
            exists = ctx.connection.execute(
                select(t.templates.c.id).where(t.templates.c.name == name)
            ).first()
            if exists is not None:
                raise ValidationError(
                    f"a reply template named {name!r} already exists; edit it instead",
                    field="name",
                )
            ctx.connection.execute(
                insert(t.templates).values(
                    **data, created_at=ctx.now, updated_at=ctx.now, updated_by=author
                )
            )
            return template_from_row(template_row(ctx.connection, name))

    def edit_template(self, name: str, *, author: str | None = None, **changes: Any) -> Template:
        data = clean_template(changes)
        with self.crm.transaction(actor=author) as ctx:
            current = template_from_row(template_row(ctx.connection, name))
            merged = {**attrs.asdict(current), **data}
            templating.check(
                merged["name"], merged["body"], merged["format"], self.crm.attribute_definitions
            )
            ctx.connection.execute(
                update(t.templates)
                .where(t.templates.c.id == current.id)
                .values(**data, updated_at=ctx.now, updated_by=author)
            )
            return template_from_row(template_row(ctx.connection, merged["name"]))

    def template(self, name: str) -> Template:
        with self.crm.reading() as connection:
            return template_from_row(template_row(connection, name))

    def templates(self) -> list[Template]:
        with self.crm.reading() as connection:
            rows = connection.execute(select(t.templates).order_by(t.templates.c.name))
            return [template_from_row(r) for r in rows]

    def render(
        self,
        name: str,
        *,
        customer_id: int | None = None,
        complaint: Any = None,
        staff: str | None = None,
    ) -> str:
        """Render a template for a customer (and a complaint) in the sandbox."""
        template = self.template(name)
        customer = None
        if customer_id is None and complaint is not None:
            customer_id = _field(complaint, "customer_id")
        if customer_id is not None:
            customer = templating.customer_context(
                self.crm.customers.get(customer_id), self.crm.attribute_definitions
            )
        context = {
            "customer": customer,
            "complaint": templating.complaint_context(complaint),
            "company": self.crm.settings.get("knowledgebase", {}).get("company", ""),
            "staff": staff or "",
            "now": self.crm.local_time(dt.datetime.now(dt.UTC)),
        }
        if customer is None:
            context.pop("customer")
        return templating.render(name, template.body, template.format, context)

    # -- sends ------------------------------------------------------------
    def send(
        self,
        customer_id: int,
        *,
        template: str | None = None,
        article: int | str | None = None,
        complaint: Any = None,
        channel: str | None = None,
        staff: str | None = None,
    ) -> Send:
        """Record that a template (rendered) or an article was sent to a customer."""
        if (template is None) == (article is None):
            raise ValidationError("send exactly one of a template or an article", field="template")
        customer = self.crm.customers.get(customer_id)
        with self.crm.transaction(actor=staff) as ctx:
            if template is not None:
                tpl = template_from_row(template_row(ctx.connection, template))
                body = self.render(template, customer_id=customer.id, complaint=complaint,
                                   staff=staff)  # fmt: skip
                row = {"kind": "template", "template_id": tpl.id, "article_id": None,
                       "title": tpl.title, "body": body}  # fmt: skip
            else:
                art = article_from_row(article_row(ctx.connection, article))  # type: ignore[arg-type]
                row = {"kind": "article", "template_id": None, "article_id": art.id,
                       "title": art.title, "body": art.body}  # fmt: skip
            complaint_id = _field(complaint, "id") if complaint is not None else None
            new_id = ctx.connection.execute(
                insert(t.sends)
                .values(
                    **row,
                    customer_id=customer.id,
                    complaint_id=complaint_id,
                    channel=channel,
                    staff=staff,
                    at=ctx.now,
                )  # fmt: skip
                .returning(t.sends.c.id)
            ).scalar_one()
            ctx.changes.other.setdefault("kb_sends", []).append(new_id)
            return send_from_row(
                ctx.connection.execute(select(t.sends).where(t.sends.c.id == new_id)).one()
            )

    def sends(self, customer_id: int, *, limit: int | None = 50) -> list[Send]:
        q = (
            select(t.sends)
            .where(t.sends.c.customer_id == customer_id)
            .order_by(t.sends.c.at.desc(), t.sends.c.id.desc())
        )
        if limit is not None:
            q = q.limit(limit)
        with self.crm.reading() as connection:
            return [send_from_row(r) for r in connection.execute(q)]


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)
