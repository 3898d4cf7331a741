"""Reply templates: save (checked in the sandbox), render for a customer, send and record.

Rendering itself is :mod:`crmkit_knowledgebase.templating` (the Jinja2 sandbox);
this module stores templates, collects the variables other plugins contribute
(:func:`contributed_variables`), builds a template's context from the CRM and the
objects given, and records sends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import insert, select, update

from crmkit.plugin import NotFound, PluginError, Resource, ValidationError
from crmkit_knowledgebase import access, templating
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.articles import article_row
from crmkit_knowledgebase.content import clean_template
from crmkit_knowledgebase.entities import (
    Send,
    Template,
    article_from_row,
    send_from_row,
    template_from_row,
)
from crmkit_knowledgebase.limits import Limits
from crmkit_knowledgebase.templating import BUILTIN, HOOK

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
        self.crm.authorise(access.WRITE)
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
        templating.check(
            name,
            data["body"],
            data["format"],
            self.crm.attribute_definitions,
            contributed_variables(self.crm),
            self.template_limits(),
        )
        with self.crm.transaction(actor=author) as ctx:
            exists = ctx.connection.execute(
                select(t.templates.c.id).where(t.templates.c.name == name)
            ).first()
            if exists is not None:
                raise ValidationError(
                    f"a reply template named {name!r} already exists; edit it instead",
                    field="name",
                )
            new_id = ctx.connection.execute(
                insert(t.templates)
                .values(**data, created_at=ctx.now, updated_at=ctx.now, updated_by=ctx.actor.label)
                .returning(t.templates.c.id)
            ).scalar_one()
            access.record(ctx, "kb_template.create", "kb_template", new_id, after=data)
            return template_from_row(template_row(ctx.connection, name))

    def edit_template(self, name: str, *, author: str | None = None, **changes: Any) -> Template:
        data = clean_template(changes)
        self.crm.authorise(access.WRITE)
        with self.crm.transaction(actor=author) as ctx:
            current = template_from_row(template_row(ctx.connection, name))
            merged = {**attrs.asdict(current), **data}
            templating.check(
                merged["name"],
                merged["body"],
                merged["format"],
                self.crm.attribute_definitions,
                contributed_variables(self.crm),
                self.template_limits(),
            )
            ctx.connection.execute(
                update(t.templates)
                .where(t.templates.c.id == current.id)
                .values(**data, updated_at=ctx.now, updated_by=ctx.actor.label)
            )
            old = attrs.asdict(current)
            access.record(
                ctx,
                "kb_template.update",
                "kb_template",
                current.id,
                before={k: old[k] for k in data},
                after=data,
            )
            return template_from_row(template_row(ctx.connection, merged["name"]))

    def template(self, name: str) -> Template:
        self.crm.authorise(access.READ)
        with self.crm.reading() as connection:
            return template_from_row(template_row(connection, name))

    def templates(self) -> list[Template]:
        self.crm.authorise(access.READ)
        with self.crm.reading() as connection:
            rows = connection.execute(select(t.templates).order_by(t.templates.c.name))
            return [template_from_row(r) for r in rows]

    def template_limits(self) -> Limits:
        """What rendering a template may spend (the ``template_*`` settings of
        ``[knowledgebase]``); the trial render at save has the same limits."""
        return Limits.from_settings(self.crm.settings.get("knowledgebase", {}))

    def template_variables(self) -> dict[str, dict[str, str]]:
        """The variables enabled plugins contribute to templates (besides the built-in
        customer, company, staff, now): ``{variable: {field: description}}``."""
        return contributed_variables(self.crm)

    def render(
        self,
        name: str,
        *,
        customer_id: int | None = None,
        complaint: Any = None,
        staff: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> str:
        """Render a template for a customer in the sandbox.

        ``variables`` gives the objects of contributed variables by name (``complaint=``
        is short for ``variables={"complaint": ...}``); only their declared fields are
        read. Without ``customer_id``, a given object's ``customer_id`` picks the customer.
        """
        template = self.template(name)
        given = _given(complaint, variables)
        contributed = contributed_variables(self.crm)
        if customer_id is None:
            customer_id = _customer_id(given.values())
        if customer_id is not None:  # the customer's fields go into the text
            self.crm.authorise("customers.read", Resource.customer(customer_id))
        context: dict[str, Any] = {
            "company": self.crm.settings.get("knowledgebase", {}).get("company", ""),
            "staff": staff or "",
            "now": self.crm.local_time(dt.datetime.now(dt.UTC)),
        }
        if customer_id is not None:
            context["customer"] = templating.customer_context(
                self.crm.customers.get(customer_id), self.crm.attribute_definitions
            )
        for variable, fields in contributed.items():
            if given.get(variable) is not None:
                context[variable] = templating.variable_context(given[variable], fields)
        return templating.render(
            name, template.body, template.format, context, contributed, self.template_limits()
        )

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
        variables: Mapping[str, Any] | None = None,
    ) -> Send:
        """Record that a template (rendered, see :meth:`render`) or an article was sent to a
        customer; a ``complaint``'s ``id`` is recorded with the send."""
        if (template is None) == (article is None):
            raise ValidationError("send exactly one of a template or an article", field="template")
        self.crm.authorise(access.SEND, Resource.customer(customer_id))
        with self.crm.transaction(actor=staff) as ctx:
            staff = ctx.actor.label
            # a send is a write about the customer: refused for one erased or merged away
            customer = self.crm.customers.require_writable(customer_id)
            if template is not None:
                tpl = template_from_row(template_row(ctx.connection, template))
                body = self.render(template, customer_id=customer.id, complaint=complaint,
                                   staff=staff, variables=variables)  # fmt: skip
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
            access.record(
                ctx,
                "kb_send.create",
                "kb_send",
                new_id,
                customer_id=customer.id,
                changes={
                    "kind": [None, row["kind"]],
                    "title": [None, row["title"]],
                    "channel": [None, channel],
                    "complaint_id": [None, complaint_id],
                },
            )
            ctx.changes.other.setdefault("kb_sends", []).append(new_id)
            return send_from_row(
                ctx.connection.execute(select(t.sends).where(t.sends.c.id == new_id)).one()
            )

    def sends(self, customer_id: int, *, limit: int | None = 50) -> list[Send]:
        self.crm.authorise(access.READ)
        self.crm.authorise("customers.read", Resource.customer(customer_id))
        q = (
            select(t.sends)
            .where(t.sends.c.customer_id == customer_id)
            .order_by(t.sends.c.at.desc(), t.sends.c.id.desc())
        )
        if limit is not None:
            q = q.limit(limit)
        with self.crm.reading() as connection:
            return [send_from_row(r) for r in connection.execute(q)]


def contributed_variables(crm: Any) -> dict[str, dict[str, str]]:
    """Every enabled plugin's answer to ``crmkit_knowledgebase_register_template_variables``,
    checked and merged; a bad contribution is a PluginError naming the plugin."""
    if not crm.has_hook(HOOK):
        return {}
    merged: dict[str, dict[str, str]] = {}
    owners: dict[str, str] = {}
    for impl in getattr(crm.hook, HOOK).get_hookimpls():
        plugin = impl.plugin_name
        try:
            answer = impl.function()
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin!r} failed in {HOOK}: {type(exc).__name__}: {exc}", plugin=plugin
            ) from exc
        for variable, fields in _checked(answer or {}, plugin).items():
            if variable in owners:
                raise PluginError(
                    f"plugins {owners[variable]!r} and {plugin!r} both contribute the template "
                    f"variable {variable!r} ({HOOK}); disable one of them",
                    plugin=plugin,
                )
            owners[variable] = plugin
            merged[variable] = fields
    return merged


def _checked(answer: Any, plugin: str) -> dict[str, dict[str, str]]:
    def refuse(what: str) -> PluginError:
        return PluginError(
            f"plugin {plugin!r} contributes template variables that are not valid ({HOOK}): "
            f"{what}; return {{variable: {{field: description}}}} with identifiers as names",
            plugin=plugin,
        )

    if not isinstance(answer, Mapping):
        raise refuse(f"a {type(answer).__name__}, not a dict")
    out: dict[str, dict[str, str]] = {}
    for variable, fields in answer.items():
        if not isinstance(variable, str) or not variable.isidentifier():
            raise refuse(f"variable name {variable!r}")
        if variable in BUILTIN:
            raise refuse(f"{variable!r} is built in")
        if not isinstance(fields, Mapping) or not all(
            isinstance(f, str) and f.isidentifier() and isinstance(d, str)
            for f, d in fields.items()
        ):
            raise refuse(f"the fields of {variable!r} must map field names to descriptions")
        out[variable] = dict(fields)
    return out


def _given(complaint: Any, variables: Mapping[str, Any] | None) -> dict[str, Any]:
    """The objects given for contributed variables, by name."""
    given = dict(variables or {})
    if complaint is not None:
        if given.get("complaint", complaint) is not complaint:
            raise ValidationError(
                "give the complaint once: complaint= or variables['complaint']", field="complaint"
            )
        given["complaint"] = complaint
    builtin = sorted(set(given) & set(BUILTIN))
    if builtin:
        raise ValidationError(
            f"variables {', '.join(builtin)} are built in and not given as objects; "
            "give customer_id= and staff= instead",
            field="variables",
        )
    return given


def _customer_id(objects: Iterable[Any]) -> int | None:
    """The first ``customer_id`` among the objects given (a complaint's customer)."""
    for obj in objects:
        found = _field(obj, "customer_id")
        if found is not None:
            return found
    return None


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)
