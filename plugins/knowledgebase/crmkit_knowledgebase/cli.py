"""``crmkit kb ...``: articles, search, templates, suggestions, files and the site."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import click

from crmkit.plugin import ValidationError, emit, format_option, pass_crm
from crmkit_knowledgebase.content import AUDIENCES, STATUSES
from crmkit_knowledgebase.service import service

ARTICLE_COLUMNS = ["id", "slug", "title", "category", "audience", "status", "revision", "views",
                   "helpful_yes", "helpful_no"]  # fmt: skip


def _body(body: str | None, body_file: str | None) -> str | None:
    if body is not None and body_file is not None:
        raise ValidationError("give --body or --body-file, not both")
    if body_file is not None:
        return Path(body_file).read_text(encoding="utf-8")
    return body


def _article_row(a: Any) -> dict[str, Any]:
    return {c: getattr(a, c) for c in ARTICLE_COLUMNS} | {
        "tags": a.tags,
        "products": a.products,
        "updated_at": a.updated_at,
        "updated_by": a.updated_by,
    }


def _plain(snippet: str) -> str:
    return html.unescape(re.sub(r"</?mark>", lambda m: "]" if "/" in m.group(0) else "[", snippet))


@click.group("kb")
def kb() -> None:
    """Knowledge base: articles, search, reply templates, self-service site."""


@kb.command("add")
@click.option("--title", required=True)
@click.option("--body", help="Markdown body.")
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--slug")
@click.option("--category", default="general", show_default=True)
@click.option("--tag", "tags", multiple=True, help="Repeat for several tags.")
@click.option("--product", "products", multiple=True)
@click.option("--audience", type=click.Choice(AUDIENCES), default="internal", show_default=True)
@click.option("--status", type=click.Choice(STATUSES), default="draft", show_default=True)
@click.option("--author")
@click.option("--message", default="created", show_default=True)
@format_option()
@pass_crm
def add(crm: Any, title: str, body: str | None, body_file: str | None, slug: str | None,
        category: str, tags: tuple[str, ...], products: tuple[str, ...], audience: str,
        status: str, author: str | None, message: str, fmt: str) -> None:  # fmt: skip
    """Create an article (revision 1)."""
    article = service(crm).add(
        title, _body(body, body_file) or "", slug=slug, category=category, tags=tags,
        products=products, audience=audience, status=status, author=author, message=message,
    )  # fmt: skip
    emit([_article_row(article)], fmt, ARTICLE_COLUMNS)


@kb.command("edit")
@click.argument("ref")
@click.option("--title")
@click.option("--body")
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--slug")
@click.option("--category")
@click.option("--tag", "tags", multiple=True, help="Replaces the tags; repeat for several.")
@click.option("--clear-tags", is_flag=True)
@click.option("--product", "products", multiple=True, help="Replaces the products.")
@click.option("--audience", type=click.Choice(AUDIENCES))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--author")
@click.option("--message", default="", help="Revision message (default: what changed).")
@format_option()
@pass_crm
def edit(crm: Any, ref: str, title: str | None, body: str | None, body_file: str | None,
         slug: str | None, category: str | None, tags: tuple[str, ...], clear_tags: bool,
         products: tuple[str, ...], audience: str | None, status: str | None,
         author: str | None, message: str, fmt: str) -> None:  # fmt: skip
    """Change an article by id or slug; each change is a new revision."""
    changes: dict[str, Any] = {
        k: v
        for k, v in (("title", title), ("body", _body(body, body_file)), ("slug", slug),
                     ("category", category), ("audience", audience), ("status", status))
        if v is not None
    }  # fmt: skip
    if tags or clear_tags:
        changes["tags"] = list(tags)
    if products:
        changes["products"] = list(products)
    if not changes:
        raise ValidationError("nothing to change; give --title, --body, --status, ...")
    kbs = service(crm)
    before = kbs.get(ref).revision
    article = kbs.edit(ref, author=author, message=message, **changes)
    if article.revision == before:
        click.echo(f"article {article.slug!r} unchanged (revision {before})", err=True)
    emit([_article_row(article)], fmt, ARTICLE_COLUMNS)


@kb.command("show")
@click.argument("ref")
@click.option("--revision", type=int, help="Show an older revision.")
@click.option("--no-count", is_flag=True, help="Do not count this as a view.")
@format_option("text", "json", default="text")
@pass_crm
def show(crm: Any, ref: str, revision: int | None, no_count: bool, fmt: str) -> None:
    """Show an article (counts a view)."""
    kbs = service(crm)
    if revision is not None:
        r = kbs.revision(ref, revision)
        data = {**r.content(), "revision": r.number, "author": r.author, "at": r.at,
                "message": r.message}  # fmt: skip
    else:
        a = kbs.get(ref) if no_count else kbs.view(ref)
        data = {**_article_row(a), "body": a.body}
    if fmt == "json":
        emit([data], "json")
        return
    click.echo(f"# {data['title']}")
    click.echo(
        f"slug: {data['slug']}  category: {data['category']}  audience: {data['audience']}  "
        f"status: {data['status']}  revision: {data['revision']}"
    )
    if data.get("tags"):
        click.echo("tags: " + ", ".join(data["tags"]))
    if "views" in data:
        click.echo(
            f"views: {data['views']}  helpful: {data['helpful_yes']} yes / {data['helpful_no']} no"
        )
    click.echo("")
    click.echo(data["body"])


@kb.command("list")
@click.option("--category")
@click.option("--tag")
@click.option("--audience", type=click.Choice(AUDIENCES))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--limit", type=int, default=100, show_default=True)
@format_option()
@pass_crm
def list_(crm: Any, category: str | None, tag: str | None, audience: str | None,
          status: str | None, limit: int, fmt: str) -> None:  # fmt: skip
    """List articles."""
    rows = service(crm).list(category=category, tag=tag, audience=audience, status=status,
                             limit=limit)  # fmt: skip
    emit([_article_row(a) for a in rows], fmt, ARTICLE_COLUMNS)


@kb.command("search")
@click.argument("query")
@click.option("--category")
@click.option("--tag")
@click.option("--audience", type=click.Choice(AUDIENCES))
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--any", "any_", is_flag=True, help="Match any word instead of all.")
@click.option("--limit", type=int, default=10, show_default=True)
@format_option()
@pass_crm
def search_(crm: Any, query: str, category: str | None, tag: str | None, audience: str | None,
            status: str | None, any_: bool, limit: int, fmt: str) -> None:  # fmt: skip
    """Full-text search (English and Chinese), best first, with snippets."""
    hits = service(crm).search(
        query, category=category, tag=tag, audience=audience, status=status,
        mode="any" if any_ else "all", limit=limit,
    )  # fmt: skip
    rows = [
        {"slug": h.article.slug, "title": h.article.title, "score": h.score,
         "category": h.article.category, "status": h.article.status,
         "snippet": h.snippet if fmt == "json" else _plain(h.snippet)}
        for h in hits
    ]  # fmt: skip
    if fmt == "table":
        if not rows:
            click.echo(f"no article matches {query!r}")
        for r in rows:
            click.echo(f"{r['slug']}  {r['title']}  ({r['category']}, {r['status']}, "
                       f"score {r['score']:.3f})\n    {r['snippet']}")  # fmt: skip
        return
    emit(rows, fmt)


@kb.command("history")
@click.argument("ref")
@format_option()
@pass_crm
def history(crm: Any, ref: str, fmt: str) -> None:
    """List an article's revisions."""
    rows = [
        {"revision": r.number, "at": r.at, "author": r.author, "message": r.message,
         "title": r.title, "status": r.status}
        for r in service(crm).revisions(ref)
    ]  # fmt: skip
    emit(rows, fmt)


@kb.command("diff")
@click.argument("ref")
@click.argument("a", type=int, required=False)
@click.argument("b", type=int, required=False)
@pass_crm
def diff(crm: Any, ref: str, a: int | None, b: int | None) -> None:
    """Unified diff between revisions A and B (default: the last change)."""
    text = service(crm).diff(ref, a, b)
    click.echo(text if text else "(no differences)", nl=not text)


@kb.command("restore")
@click.argument("ref")
@click.argument("number", type=int)
@click.option("--author")
@click.option("--message", default="")
@pass_crm
def restore(crm: Any, ref: str, number: int, author: str | None, message: str) -> None:
    """Make an old revision current again (as a new revision)."""
    article = service(crm).restore(ref, number, author=author, message=message)
    click.echo(f"article {article.slug!r} restored from revision {number} "
               f"as revision {article.revision}")  # fmt: skip


@kb.command("vote")
@click.argument("ref")
@click.option("--helpful/--not-helpful", required=True)
@click.option("--customer", type=int)
@click.option("--comment", default="")
@pass_crm
def vote(crm: Any, ref: str, helpful: bool, customer: int | None, comment: str) -> None:
    """Record a was-this-helpful vote."""
    a = service(crm).vote(ref, helpful, customer_id=customer, comment=comment)
    click.echo(f"{a.slug}: {a.helpful_yes} helpful, {a.helpful_no} not helpful")


@kb.command("suggest")
@click.option("--text", required=True, help="The incoming message.")
@click.option("--limit", type=int)
@format_option()
@pass_crm
def suggest(crm: Any, text: str, limit: int | None, fmt: str) -> None:
    """Rank reply templates and articles for an incoming message."""
    kbs = service(crm)
    found = kbs.suggest(text, limit=limit or kbs.settings["suggest_limit"])
    rows = [{"rank": i + 1, "kind": s.kind, "ref": s.ref, "title": s.title, "score": s.score,
             "triggers": s.why} for i, s in enumerate(found)]  # fmt: skip
    if not rows and fmt == "table":
        click.echo("no template or article matches this message")
        return
    emit(rows, fmt, ["rank", "kind", "ref", "title", "score", "triggers"])


@kb.command("send")
@click.option("--customer", type=int, required=True)
@click.option("--template")
@click.option("--article")
@click.option("--channel")
@click.option("--staff")
@click.option("--show", is_flag=True, help="Print the text sent.")
@pass_crm
def send(crm: Any, customer: int, template: str | None, article: str | None,
         channel: str | None, staff: str | None, show: bool) -> None:  # fmt: skip
    """Record that a template (rendered for the customer) or an article was sent."""
    s = service(crm).send(customer, template=template, article=article, channel=channel,
                          staff=staff)  # fmt: skip
    click.echo(f"recorded send #{s.id}: {s.kind} {s.title!r} to customer {customer}")
    if show:
        click.echo(s.body)


@kb.command("import")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--author")
@pass_crm
def import_(crm: Any, directory: str, author: str | None) -> None:
    """Import Markdown files with front matter (all or nothing).

    DIR/articles/*.md (or DIR/*.md) and DIR/templates/*.md; each file starts with
    TOML between +++ lines or YAML between --- lines (Jekyll, MkDocs, Obsidian)."""
    from crmkit_knowledgebase.transfer import import_dir

    counts = import_dir(service(crm), directory, author=author)
    click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))


@kb.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--front-matter", type=click.Choice(["toml", "yaml"]), default="toml",
              show_default=True,
              help="toml: between +++ lines; yaml: between --- lines.")  # fmt: skip
@pass_crm
def export(crm: Any, directory: str, front_matter: str) -> None:
    """Write every article and template as Markdown with front matter."""
    from crmkit_knowledgebase.transfer import export_dir

    counts = export_dir(service(crm), directory, front_matter=front_matter)
    click.echo(f"exported {counts['articles']} article(s), {counts['templates']} template(s) "
               f"to {directory}")  # fmt: skip


@kb.command("export-site")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--title", help="Site title (default: the site_title setting).")
@pass_crm
def export_site(crm: Any, directory: str, title: str | None) -> None:
    """Write the static self-service site (public, published articles only)."""
    from crmkit_knowledgebase.site import export_site as build

    counts = build(service(crm), directory, title=title)
    click.echo(f"site written to {directory}: {counts['articles']} article(s) in "
               f"{counts['categories']} categor(y/ies); open {directory}/index.html")  # fmt: skip


@kb.command("reindex")
@pass_crm
def reindex(crm: Any) -> None:
    """Rebuild the full-text index."""
    click.echo(f"reindexed {service(crm).reindex()} article(s)")


# -- templates -------------------------------------------------------------
@kb.group("template")
def template() -> None:
    """Reply templates (Jinja2, rendered in a sandbox)."""


@template.command("add")
@click.argument("name")
@click.option("--body")
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--title", default="")
@click.option("--trigger", "triggers", multiple=True, help="Keyword or phrase; repeat.")
@click.option("--format", "fmt_", type=click.Choice(["text", "html"]), default="text")
@click.option("--category", default="general", show_default=True)
@pass_crm
def template_add(crm: Any, name: str, body: str | None, body_file: str | None, title: str,
                 triggers: tuple[str, ...], fmt_: str, category: str) -> None:  # fmt: skip
    """Save a template (refused if it does not compile or escapes the sandbox)."""
    text = _body(body, body_file)
    if text is None:
        raise ValidationError("give the template text with --body or --body-file")
    t = service(crm).add_template(name, text, title=title, triggers=triggers, format=fmt_,
                                  category=category)  # fmt: skip
    click.echo(f"template {t.name!r} saved ({len(t.triggers)} trigger(s))")


@template.command("edit")
@click.argument("name")
@click.option("--body")
@click.option("--body-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--title")
@click.option("--trigger", "triggers", multiple=True, help="Replaces the triggers.")
@click.option("--format", "fmt_", type=click.Choice(["text", "html"]))
@click.option("--category")
@pass_crm
def template_edit(crm: Any, name: str, body: str | None, body_file: str | None,
                  title: str | None, triggers: tuple[str, ...], fmt_: str | None,
                  category: str | None) -> None:  # fmt: skip
    """Change a template."""
    changes: dict[str, Any] = {
        k: v for k, v in (("body", _body(body, body_file)), ("title", title), ("format", fmt_),
                          ("category", category)) if v is not None
    }  # fmt: skip
    if triggers:
        changes["triggers"] = list(triggers)
    t = service(crm).edit_template(name, **changes)
    click.echo(f"template {t.name!r} saved")


@template.command("list")
@format_option()
@pass_crm
def template_list(crm: Any, fmt: str) -> None:
    """List templates."""
    rows = [{"name": t.name, "title": t.title, "format": t.format, "category": t.category,
             "triggers": t.triggers} for t in service(crm).templates()]  # fmt: skip
    emit(rows, fmt)


@template.command("variables")
@format_option()
@pass_crm
def template_variables(crm: Any, fmt: str) -> None:
    """List what templates can use: built-in variables and those plugins contribute."""
    from crmkit_knowledgebase.templating import CUSTOMER_FIELDS

    rows = [{"variable": "customer", "field": f, "description": f"the customer's {f}"}
            for f in CUSTOMER_FIELDS]  # fmt: skip
    rows.append({"variable": "customer", "field": "attributes.<name>",
                 "description": "a declared customer attribute"})  # fmt: skip
    for name, what in (("company", "the company setting of [knowledgebase]"),
                       ("staff", "who sends the reply"), ("now", "the local time")):  # fmt: skip
        rows.append({"variable": name, "field": "", "description": what})
    for variable, fields in sorted(service(crm).template_variables().items()):
        rows += [{"variable": variable, "field": f, "description": d} for f, d in fields.items()]
    emit(rows, fmt, ["variable", "field", "description"])


@template.command("render")
@click.argument("name")
@click.option("--customer", type=int)
@click.option("--staff")
@pass_crm
def template_render(crm: Any, name: str, customer: int | None, staff: str | None) -> None:
    """Render a template for a customer (without recording a send)."""
    click.echo(service(crm).render(name, customer_id=customer, staff=staff))
