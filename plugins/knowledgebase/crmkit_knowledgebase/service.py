"""The knowledge base service: articles with revisions, search, templates, sends, suggest.

Get it with ``kb = service(crm)``. Every write is one transaction
(``crm.transaction()``): a write that fails changes nothing.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import and_, delete, func, insert, select, update

from crmkit.plugin import NotFound, ValidationError
from crmkit_knowledgebase import search as fts
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase import templating
from crmkit_knowledgebase.text import (
    STOP_WORDS,
    Term,
    analyse,
    cjk_tokens,
    fold,
    highlight,
    parse_query,
    pieces,
    plain_text,
    stem,
)

if TYPE_CHECKING:
    from crmkit.plugin import CRM

AUDIENCES = ("internal", "public")
STATUSES = ("draft", "published", "archived")
CONTENT_FIELDS = ("slug", "title", "body", "category", "tags", "products", "audience", "status")
#: weight of a trigger phrase (or an article tag) found whole in a message
TRIGGER_WEIGHT = 3.0
#: weight of a single word of a trigger or tag when the whole phrase is not found
PARTIAL = 1.0
_SLUG = re.compile(r"^[^\W_][\w-]*$")


@attrs.define
class Article:
    id: int
    slug: str
    title: str
    body: str
    category: str
    tags: list[str]
    products: list[str]
    audience: str
    status: str
    revision: int
    views: int
    helpful_yes: int
    helpful_no: int
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str | None = None
    updated_by: str | None = None

    def content(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in CONTENT_FIELDS}


@attrs.define
class Revision:
    id: int
    article_id: int
    number: int
    slug: str
    title: str
    body: str
    category: str
    tags: list[str]
    products: list[str]
    audience: str
    status: str
    author: str | None
    at: dt.datetime
    message: str

    def content(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in CONTENT_FIELDS}


@attrs.define
class Template:
    id: int
    name: str
    title: str
    body: str
    format: str
    triggers: list[str]
    category: str
    created_at: dt.datetime
    updated_at: dt.datetime
    updated_by: str | None = None


@attrs.define
class Send:
    id: int
    customer_id: int
    kind: str
    template_id: int | None
    article_id: int | None
    title: str
    body: str
    complaint_id: int | None
    channel: str | None
    staff: str | None
    at: dt.datetime


@attrs.define
class Hit:
    """A search result: the article, its score (higher is better) and an HTML snippet."""

    article: Article
    score: float
    snippet: str


@attrs.define
class Suggestion:
    """A template or article proposed for an incoming message."""

    kind: str  # "template" or "article"
    ref: str  # template name or article slug
    title: str
    score: float
    why: list[str]


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------


def _text(value: Any, field: str, *, max_len: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text, got {value!r}", field=field)
    value = value.strip() if field != "body" else value
    if required and not value.strip():
        raise ValidationError(f"article {field} must not be empty", field=field)
    if len(value) > max_len:
        raise ValidationError(
            f"{field} is {len(value)} characters long; the maximum is {max_len}", field=field
        )
    return value


def _names(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{field} must be a list of names, got {value!r}", field=field)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValidationError(f"{field} must be names (text), got {item!r}", field=field)
        item = item.strip()
        if not item:
            continue
        if len(item) > 100:
            raise ValidationError(f"{field} entry {item[:20]!r}… is longer than 100", field=field)
        if item not in out:
            out.append(item)
    return out


def _choice(value: Any, field: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValidationError(
            f"article {field} {value!r} is not valid; use one of: {', '.join(allowed)}",
            field=field,
        )
    return value


def slugify(title: str) -> str:
    slug = re.sub(r"[\W_]+", "-", fold(title)).strip("-")[:80].strip("-")
    return slug or "article"


def _check_slug(slug: Any) -> str:
    if not isinstance(slug, str) or not _SLUG.match(slug) or len(slug) > 200:
        raise ValidationError(
            f"slug {slug!r} is not valid; use letters, digits and '-' (e.g. 'refund-policy')",
            field="slug",
        )
    return slug


def clean_content(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate article content fields; raises ValidationError naming the field."""
    unknown = set(data) - set(CONTENT_FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown article field(s) {sorted(unknown)}; known: {', '.join(CONTENT_FIELDS)}",
            field=sorted(unknown)[0],
        )
    out: dict[str, Any] = {}
    if "slug" in data:
        out["slug"] = _check_slug(data["slug"])
    if "title" in data:
        out["title"] = _text(data["title"], "title", max_len=300)
    if "body" in data:
        out["body"] = _text(data["body"], "body", max_len=1_000_000, required=False)
    if "category" in data:
        out["category"] = _text(data["category"], "category", max_len=100)
    for name in ("tags", "products"):
        if name in data:
            out[name] = _names(data[name], name)
    if "audience" in data:
        out["audience"] = _choice(data["audience"], "audience", AUDIENCES)
    if "status" in data:
        out["status"] = _choice(data["status"], "status", STATUSES)
    return out


# --------------------------------------------------------------------------
# the service
# --------------------------------------------------------------------------


class KnowledgeBase:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    @property
    def settings(self) -> dict[str, Any]:
        return self.crm.settings.get("knowledgebase", {})

    # -- articles: reads --------------------------------------------------
    @staticmethod
    def _article(row: Any) -> Article:
        m = dict(row._mapping)
        m["tags"] = list(m["tags"] or [])
        m["products"] = list(m["products"] or [])
        return Article(**m)

    def _row(self, connection: Any, ref: int | str) -> Any:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            cond = t.articles.c.id == int(ref)
        else:
            cond = t.articles.c.slug == ref
        row = connection.execute(select(t.articles).where(cond)).first()
        if row is None:
            raise NotFound(
                f"knowledge base article {ref!r} not found; list articles with 'crmkit kb list'"
            )
        return row

    def get(self, ref: int | str) -> Article:
        """An article by id or slug."""
        with self.crm.reading() as connection:
            return self._article(self._row(connection, ref))

    def list(
        self,
        *,
        category: str | None = None,
        tag: str | None = None,
        audience: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Article]:
        q = select(t.articles).order_by(t.articles.c.category, t.articles.c.title, t.articles.c.id)
        for name, value in (("category", category), ("audience", audience), ("status", status)):
            if value is not None:
                q = q.where(t.articles.c[name] == value)
        if tag is not None:
            q = q.where(
                t.articles.c.id.in_(
                    select(t.article_tags.c.article_id).where(t.article_tags.c.tag == tag)
                )
            )
        if limit is not None:
            q = q.limit(limit)
        with self.crm.reading() as connection:
            return [self._article(r) for r in connection.execute(q.offset(offset))]

    def count(self) -> int:
        with self.crm.reading() as connection:
            return connection.execute(select(func.count()).select_from(t.articles)).scalar_one()

    # -- articles: writes -------------------------------------------------
    def add(
        self,
        title: str,
        body: str = "",
        *,
        slug: str | None = None,
        category: str = "general",
        tags: Iterable[str] = (),
        products: Iterable[str] = (),
        audience: str = "internal",
        status: str = "draft",
        author: str | None = None,
        message: str = "created",
    ) -> Article:
        """Create an article and its revision 1."""
        data = {
            "title": title,
            "body": body,
            "category": category,
            "tags": list(tags),
            "products": list(products),
            "audience": audience,
            "status": status,
        }
        if slug is not None:
            data["slug"] = slug
        return self.add_many([data], author=author, message=message)[0]

    def add_many(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        author: str | None = None,
        message: str = "created",
        now: dt.datetime | None = None,
    ) -> list[Article]:
        """Create many articles in one transaction (batched inserts, one index update)."""
        cleaned = []
        for i, item in enumerate(items):
            try:
                content = clean_content(item)
                for required in ("title",):
                    if required not in content:
                        raise ValidationError(f"article {required} is missing", field=required)
            except ValidationError as exc:
                where = f"article {i + 1} ({item.get('slug') or item.get('title')!r})"
                raise ValidationError(f"{where}: {exc}", field=exc.field) from None
            content.setdefault("body", "")
            content.setdefault("category", "general")
            content.setdefault("tags", [])
            content.setdefault("products", [])
            content.setdefault("audience", "internal")
            content.setdefault("status", "draft")
            cleaned.append(content)
        with self.crm.transaction(actor=author, now=now) as ctx:
            conn = ctx.connection
            given = [c["slug"] for c in cleaned if "slug" in c]
            dupes = [s for s, n in Counter(given).items() if n > 1]
            if dupes:
                raise ValidationError(f"slug {dupes[0]!r} is given twice", field="slug")
            auto = [slugify(c["title"]) for c in cleaned if "slug" not in c]
            taken = self._taken_slugs(conn, given, auto)
            existing = taken & set(given)
            if existing:
                raise ValidationError(
                    f"an article with slug {sorted(existing)[0]!r} already exists; "
                    "edit it or choose another slug",
                    field="slug",
                )
            taken |= set(given)
            for c in cleaned:
                if "slug" not in c:
                    base = slugify(c["title"])
                    slug, n = base, 1
                    while slug in taken:
                        n += 1
                        slug = f"{base}-{n}"
                    c["slug"] = slug
                    taken.add(slug)
            rows = [
                {
                    **c,
                    "revision": 1,
                    "views": 0,
                    "helpful_yes": 0,
                    "helpful_no": 0,
                    "created_at": ctx.now,
                    "updated_at": ctx.now,
                    "created_by": author,
                    "updated_by": author,
                }
                for c in cleaned
            ]
            ids = [
                r[0]
                for r in conn.execute(
                    insert(t.articles).returning(t.articles.c.id, sort_by_parameter_order=True),
                    rows,
                )
            ]
            for row, new_id in zip(rows, ids, strict=True):
                row["id"] = new_id
            conn.execute(
                insert(t.revisions),
                [
                    {
                        **{f: r[f] for f in CONTENT_FIELDS},
                        "article_id": r["id"],
                        "number": 1,
                        "author": author,
                        "at": ctx.now,
                        "message": message,
                    }
                    for r in rows
                ],
            )
            tag_rows = [{"article_id": r["id"], "tag": tag} for r in rows for tag in r["tags"]]
            if tag_rows:
                conn.execute(insert(t.article_tags), tag_rows)
            fts.upsert(conn, rows)
            ctx.changes.other.setdefault("kb_articles", []).extend(ids)
            return [
                self._article(r)
                for r in conn.execute(
                    select(t.articles).where(t.articles.c.id.in_(ids)).order_by(t.articles.c.id)
                )
            ]

    @staticmethod
    def _taken_slugs(conn: Any, given: Sequence[str], auto: Sequence[str]) -> set[str]:
        """Slugs already stored among ``given`` and the ``auto`` bases, plus the numbered
        variants (``refund-policy-2``) of each base that is taken or wanted twice."""
        taken: set[str] = set()
        for chunk in _chunks(sorted(set(given) | set(auto)), 500):
            taken.update(
                conn.execute(
                    select(t.articles.c.slug).where(t.articles.c.slug.in_(chunk))
                ).scalars()
            )
        # only colliding bases need their variants: LIKE scans, so keep it to the few
        repeated = {s for s, n in Counter(auto).items() if n > 1}
        for base in sorted((taken | set(given)) & set(auto) | repeated):
            pattern = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            taken.update(
                conn.execute(
                    select(t.articles.c.slug).where(
                        t.articles.c.slug.like(f"{pattern}-%", escape="\\")
                    )
                ).scalars()
            )
        return taken

    def edit(
        self,
        ref: int | str,
        *,
        author: str | None = None,
        message: str = "",
        now: dt.datetime | None = None,
        **changes: Any,
    ) -> Article:
        """Change an article; every effective change is a new revision. No change: no revision."""
        cleaned = clean_content(changes)
        with self.crm.transaction(actor=author, now=now) as ctx:
            conn = ctx.connection
            current = self._article(self._row(conn, ref))
            before = current.content()
            after = {**before, **cleaned}
            if after == before:
                return current
            if after["slug"] != before["slug"]:
                clash = conn.execute(
                    select(t.articles.c.id).where(t.articles.c.slug == after["slug"])
                ).first()
                if clash is not None:
                    raise ValidationError(
                        f"an article with slug {after['slug']!r} already exists", field="slug"
                    )
            number = current.revision + 1
            conn.execute(
                update(t.articles)
                .where(t.articles.c.id == current.id)
                .values(**after, revision=number, updated_at=ctx.now, updated_by=author)
            )
            conn.execute(
                insert(t.revisions).values(
                    **after,
                    article_id=current.id,
                    number=number,
                    author=author,
                    at=ctx.now,
                    message=message or _describe(before, after),
                )
            )
            if after["tags"] != before["tags"]:
                conn.execute(
                    delete(t.article_tags).where(t.article_tags.c.article_id == current.id)
                )
                if after["tags"]:
                    conn.execute(
                        insert(t.article_tags),
                        [{"article_id": current.id, "tag": tag} for tag in after["tags"]],
                    )
            fts.upsert(conn, [{**after, "id": current.id}])
            ctx.changes.other.setdefault("kb_articles", []).append(current.id)
            return self._article(self._row(conn, current.id))

    # -- revisions --------------------------------------------------------
    def revisions(self, ref: int | str) -> list[Revision]:
        with self.crm.reading() as connection:
            article = self._row(connection, ref)
            rows = connection.execute(
                select(t.revisions)
                .where(t.revisions.c.article_id == article.id)
                .order_by(t.revisions.c.number)
            )
            return [_revision(r) for r in rows]

    def revision(self, ref: int | str, number: int) -> Revision:
        with self.crm.reading() as connection:
            article = self._row(connection, ref)
            row = connection.execute(
                select(t.revisions).where(
                    and_(t.revisions.c.article_id == article.id, t.revisions.c.number == number)
                )
            ).first()
            if row is None:
                raise NotFound(
                    f"article {article.slug!r} has no revision {number}; it has revisions 1 to "
                    f"{article.revision} (see 'crmkit kb history {article.slug}')"
                )
            return _revision(row)

    def diff(self, ref: int | str, a: int | None = None, b: int | None = None) -> str:
        """A unified diff (difflib) between two revisions; default: the last change."""
        article = self.get(ref)
        b = article.revision if b is None else b
        a = max(1, b - 1) if a is None else a
        old, new = self.revision(ref, a), self.revision(ref, b)
        from crmkit_knowledgebase.transfer import dump_article

        def lines(content: dict[str, Any]) -> list[str]:
            text = dump_article(content)
            return (text if text.endswith("\n") else text + "\n").splitlines(keepends=True)

        return "".join(
            difflib.unified_diff(
                lines(old.content()),
                lines(new.content()),
                fromfile=f"{article.slug}@{a}",
                tofile=f"{article.slug}@{b}",
            )
        )

    def restore(
        self, ref: int | str, number: int, *, author: str | None = None, message: str = ""
    ) -> Article:
        """Make revision ``number``'s content current again, as a new revision."""
        old = self.revision(ref, number)
        return self.edit(
            ref, author=author, message=message or f"restored revision {number}", **old.content()
        )

    # -- views and votes --------------------------------------------------
    def view(self, ref: int | str, *, count: int = 1) -> Article:
        """Return an article and count ``count`` views (more than one: imported figures)."""
        if not isinstance(count, int) or count < 1:
            raise ValidationError("view count must be a whole number of at least 1", field="count")
        with self.crm.transaction() as ctx:
            row = self._row(ctx.connection, ref)
            ctx.connection.execute(
                update(t.articles)
                .where(t.articles.c.id == row.id)
                .values(views=t.articles.c.views + count)
            )
            return self._article(self._row(ctx.connection, row.id))

    def vote(
        self,
        ref: int | str,
        helpful: bool,
        *,
        customer_id: int | None = None,
        comment: str = "",
    ) -> Article:
        """Record a was-this-helpful vote."""
        if not isinstance(helpful, bool):
            raise ValidationError("helpful must be true or false", field="helpful")
        with self.crm.transaction() as ctx:
            row = self._row(ctx.connection, ref)
            if customer_id is not None:
                self.crm.customers.get(customer_id)
            ctx.connection.execute(
                insert(t.votes).values(
                    article_id=row.id,
                    helpful=helpful,
                    customer_id=customer_id,
                    comment=comment or "",
                    at=ctx.now,
                )
            )
            column = "helpful_yes" if helpful else "helpful_no"
            ctx.connection.execute(
                update(t.articles)
                .where(t.articles.c.id == row.id)
                .values({column: t.articles.c[column] + 1})
            )
            return self._article(self._row(ctx.connection, row.id))

    # -- search -----------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        category: str | None = None,
        tag: str | None = None,
        audience: str | None = None,
        status: str | None = None,
        mode: str = "all",
        limit: int = 20,
        offset: int = 0,
    ) -> list[Hit]:
        """Full-text search, best first, with highlighted snippets.

        ``mode="all"`` needs every term, ``"any"`` one of them. See
        :func:`crmkit_knowledgebase.text.parse_query` for the query syntax.
        """
        if audience is not None:
            _choice(audience, "audience", AUDIENCES)
        if status is not None:
            _choice(status, "status", STATUSES)
        if mode not in ("all", "any"):
            raise ValidationError(f"mode {mode!r} is not valid; use all or any", field="mode")
        if limit < 1:
            raise ValidationError("limit must be at least 1", field="limit")
        terms = parse_query(query)
        with self.crm.reading() as connection:
            found = fts.search(
                connection,
                terms,
                mode=mode,
                category=category,
                tag=tag,
                audience=audience,
                status=status,
                limit=limit,
                offset=offset,
            )
            return self._hits(connection, found, terms)

    def _hits(self, connection: Any, found: list[tuple[int, float]], terms: Sequence[Term]):
        if not found:
            return []
        rows = {
            r.id: r
            for r in connection.execute(
                select(t.articles).where(t.articles.c.id.in_([i for i, _ in found]))
            )
        }
        hits = []
        for article_id, score in found:
            article = self._article(rows[article_id])
            source = plain_text(article.body) or article.title
            hits.append(Hit(article, score, highlight(source, terms)))
        return hits

    # -- templates --------------------------------------------------------
    @staticmethod
    def _template(row: Any) -> Template:
        m = dict(row._mapping)
        m["triggers"] = list(m["triggers"] or [])
        return Template(**m)

    def _template_row(self, connection: Any, name: str) -> Any:
        row = connection.execute(select(t.templates).where(t.templates.c.name == name)).first()
        if row is None:
            raise NotFound(
                f"reply template {name!r} not found; list templates with 'crmkit kb templates'"
            )
        return row

    def _clean_template(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "name" in data:
            out["name"] = _check_slug(data["name"])
        if "title" in data:
            out["title"] = _text(data["title"], "title", max_len=300, required=False)
        if "body" in data:
            out["body"] = _text(data["body"], "body", max_len=100_000, required=False)
        if "format" in data:
            out["format"] = data["format"]
        if "triggers" in data:
            out["triggers"] = _names(data["triggers"], "triggers")
        if "category" in data:
            out["category"] = _text(data["category"], "category", max_len=100)
        return out

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
        data = self._clean_template(
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
            return self._template(self._template_row(ctx.connection, name))

    def edit_template(self, name: str, *, author: str | None = None, **changes: Any) -> Template:
        data = self._clean_template(changes)
        with self.crm.transaction(actor=author) as ctx:
            current = self._template(self._template_row(ctx.connection, name))
            merged = {**attrs.asdict(current), **data}
            templating.check(
                merged["name"], merged["body"], merged["format"], self.crm.attribute_definitions
            )
            ctx.connection.execute(
                update(t.templates)
                .where(t.templates.c.id == current.id)
                .values(**data, updated_at=ctx.now, updated_by=author)
            )
            return self._template(self._template_row(ctx.connection, merged["name"]))

    def template(self, name: str) -> Template:
        with self.crm.reading() as connection:
            return self._template(self._template_row(connection, name))

    def templates(self) -> list[Template]:
        with self.crm.reading() as connection:
            rows = connection.execute(select(t.templates).order_by(t.templates.c.name))
            return [self._template(r) for r in rows]

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
            "company": self.settings.get("company", ""),
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
                tpl = self._template(self._template_row(ctx.connection, template))
                body = self.render(template, customer_id=customer.id, complaint=complaint,
                                   staff=staff)  # fmt: skip
                row = {"kind": "template", "template_id": tpl.id, "article_id": None,
                       "title": tpl.title, "body": body}  # fmt: skip
            else:
                art = self._article(self._row(ctx.connection, article))  # type: ignore[arg-type]
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
            return Send(**ctx.connection.execute(
                select(t.sends).where(t.sends.c.id == new_id)
            ).one()._mapping)  # fmt: skip

    def sends(self, customer_id: int, *, limit: int | None = 50) -> list[Send]:
        q = (
            select(t.sends)
            .where(t.sends.c.customer_id == customer_id)
            .order_by(t.sends.c.at.desc(), t.sends.c.id.desc())
        )
        if limit is not None:
            q = q.limit(limit)
        with self.crm.reading() as connection:
            return [Send(**r._mapping) for r in connection.execute(q)]

    # -- suggest ----------------------------------------------------------
    def suggest(
        self,
        text: str,
        *,
        limit: int = 5,
        articles: bool = True,
        templates: bool = True,
        audience: str | None = None,
        candidates: int = 30,
    ) -> list[Suggestion]:
        """Rank reply templates and published articles for an incoming message.

        Candidates are every template and the ``candidates`` best published
        articles from the full-text index (any term). All are scored by the same
        formula (see README): idf-weighted overlap of the message's terms with
        the candidate's fields (triggers and title weigh most), plus a bonus for
        each trigger phrase found whole in the message.
        """
        if text is None or not text.strip():
            raise ValidationError("message text is empty; give the message to answer", field="text")
        sequence = match_tokens(text)
        if not sequence:
            raise ValidationError(
                "message has no words to match; give the message text", field="text"
            )
        message = set(sequence)
        docs: list[tuple[str, str, str, list[tuple[set[str], float]], list[tuple[Any, str]]]] = []
        with self.crm.reading() as connection:
            if templates:
                for row in connection.execute(select(t.templates)):
                    tpl = self._template(row)
                    trig = [match_tokens(x) for x in tpl.triggers]
                    fields = [
                        ({tok for x in trig for tok in x}, PARTIAL),
                        (set(match_tokens(tpl.title)), 3.0),
                        (set(match_tokens(tpl.category)), 1.5),
                        (set(match_tokens(tpl.body)), 0.5),
                    ]
                    phrases = list(zip(trig, tpl.triggers, strict=True))
                    docs.append(("template", tpl.name, tpl.title, fields, phrases))
            if articles:
                terms = [Term((tok,)) for tok in dict.fromkeys(sequence)]
                found = fts.search(
                    connection, terms, mode="any", status="published", audience=audience,
                    limit=candidates,
                )  # fmt: skip
                ids = [i for i, _ in found]
                rows = connection.execute(select(t.articles).where(t.articles.c.id.in_(ids)))
                for row in rows:
                    art = self._article(row)
                    tags = [match_tokens(x) for x in art.tags]
                    fields = [
                        ({tok for x in tags for tok in x}, PARTIAL),
                        (set(match_tokens(art.title)), 3.0),
                        (set(match_tokens(" ".join(art.products) + " " + art.category)), 1.5),
                        (set(match_tokens(art.body)), 0.5),
                    ]
                    phrases = list(zip(tags, art.tags, strict=True))
                    docs.append(("article", art.slug, art.title, fields, phrases))
        if not docs:
            return []
        n = len(docs)
        df: Counter[str] = Counter()
        for doc in docs:
            present: set[str] = set()
            for tokens, _ in doc[3]:
                present |= tokens & message
            df.update(present)
        results = []
        for kind, ref, title, fields, phrases in docs:
            score = 0.0
            why: list[str] = []
            for tok in message:
                weight = max((w for tokens, w in fields if tok in tokens), default=0.0)
                if weight:
                    score += weight * math.log(1 + n / df[tok])
            for phrase, raw in phrases:
                if phrase and _contains(sequence, phrase):
                    score += TRIGGER_WEIGHT * sum(math.log(1 + n / df[tok]) for tok in set(phrase))
                    why.append(raw)
            if score > 0:
                results.append(Suggestion(kind, ref, title, round(score, 4), why))
        results.sort(key=lambda s: (-s.score, s.kind, s.ref))
        return results[:limit]

    # -- maintenance ------------------------------------------------------
    def reindex(self) -> int:
        """Rebuild the full-text index from the articles table."""
        with self.crm.transaction() as ctx:
            fts.erase_index(ctx.connection)
            count = 0
            for chunk in _batches(ctx.connection.execute(select(t.articles)), 2000):
                fts.upsert(ctx.connection, [dict(r._mapping) for r in chunk])
                count += len(chunk)
            return count


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def match_tokens(text: str) -> list[str]:
    """Tokens for suggestion matching: stems without stop words, CJK bigrams (no tail unigrams)."""
    tokens: list[str] = []
    for p in pieces(text or ""):
        if p.cjk:
            tokens.extend(cjk_tokens(p.text)[:-1] if len(p.text) > 1 else [p.text])
        elif p.text not in STOP_WORDS and (len(p.text) > 1 or p.text.isdigit()):
            tokens.append(stem(p.text))
    return tokens


def _contains(sequence: list[str], phrase: list[str]) -> bool:
    k = len(phrase)
    return any(sequence[i : i + k] == phrase for i in range(len(sequence) - k + 1))


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _revision(row: Any) -> Revision:
    m = dict(row._mapping)
    m["tags"] = list(m["tags"] or [])
    m["products"] = list(m["products"] or [])
    return Revision(**m)


def _describe(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    changed = [f for f in CONTENT_FIELDS if before[f] != after[f]]
    return "changed " + ", ".join(changed)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _batches(rows: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def service(crm: CRM) -> KnowledgeBase:
    """The knowledge base of ``crm``."""
    return KnowledgeBase(crm)


__all__ = ["Article", "Hit", "KnowledgeBase", "Revision", "Send", "Suggestion", "Template",
           "analyse", "highlight", "service"]  # fmt: skip
