"""Articles and their revisions: create, edit (every change a revision), read, compare,
restore, views and was-this-helpful votes.

Every write is one transaction (``crm.transaction()``): a write that fails changes
nothing. The full-text index (:mod:`crmkit_knowledgebase.search`) is updated in the
same transaction.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, select, update

from crmkit.plugin import NotFound, PreconditionFailed, Resource, ValidationError
from crmkit_knowledgebase import access, frontmatter
from crmkit_knowledgebase import search as fts
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.content import (
    CONTENT_FIELDS,
    clean_content,
    clean_new_article,
    slugify,
)
from crmkit_knowledgebase.entities import (
    Article,
    Revision,
    article_from_row,
    revision_from_row,
)

if TYPE_CHECKING:
    from crmkit.plugin import CRM


def article_row(connection: Any, ref: int | str, *, lock: bool = False) -> Any:
    """The ``kb_articles`` row of an article by id or slug; NotFound otherwise. ``lock``:
    ``SELECT ... FOR UPDATE`` on PostgreSQL (SQLite's write transaction locks already)."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        cond = t.articles.c.id == int(ref)
    else:
        cond = t.articles.c.slug == ref
    query = select(t.articles).where(cond)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(
            f"knowledge base article {ref!r} not found; list articles with 'crmkit kb list'"
        )
    return row


class Articles:
    """Articles with revisions (a part of :class:`crmkit_knowledgebase.KnowledgeBase`)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- reads ------------------------------------------------------------
    def get(self, ref: int | str) -> Article:
        """An article by id or slug."""
        self.crm.authorise(access.READ)
        with self.crm.reading() as connection:
            return article_from_row(article_row(connection, ref))

    def list(
        self,
        *,
        category: str | None = None,
        tag: str | None = None,
        audience: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        after_id: int | None = None,
    ) -> list[Article]:
        """Articles by category, title and id; ``after_id`` instead orders by id and starts
        after it (the HTTP API's cursor)."""
        self.crm.authorise(access.READ)
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
        if after_id is not None:
            q = q.order_by(None).order_by(t.articles.c.id).where(t.articles.c.id > after_id)
        if limit is not None:
            q = q.limit(limit)
        with self.crm.reading() as connection:
            return [article_from_row(r) for r in connection.execute(q.offset(offset))]

    def count(self) -> int:
        self.crm.authorise(access.READ)
        with self.crm.reading() as connection:
            return connection.execute(select(func.count()).select_from(t.articles)).scalar_one()

    # -- writes -----------------------------------------------------------
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
        cleaned = [clean_new_article(item, i + 1) for i, item in enumerate(items)]
        self.crm.authorise(access.WRITE)
        if any(c["status"] == "published" for c in cleaned):
            self.crm.authorise(access.PUBLISH)
        with self.crm.transaction(actor=author, now=now) as ctx:
            conn = ctx.connection
            who = ctx.actor.label
            _assign_slugs(conn, cleaned)
            rows = [
                {**c, "revision": 1, "views": 0, "helpful_yes": 0, "helpful_no": 0,
                 "created_at": ctx.now, "updated_at": ctx.now, "created_by": who,
                 "updated_by": who}
                for c in cleaned
            ]  # fmt: skip
            ids = _insert_articles(conn, rows, author=who, at=ctx.now, message=message)
            if len(ids) == 1:
                content = {f: rows[0][f] for f in CONTENT_FIELDS}
                access.record(
                    ctx,
                    "kb_article.create",
                    "kb_article",
                    ids[0],
                    changes=access.content_changes(None, content, (None, 1)),
                )
            else:
                access.record(
                    ctx,
                    "kb_article.create_many",
                    "kb_article",
                    changes={"articles": [None, len(ids)], "ids": [None, [ids[0], ids[-1]]]},
                )
            ctx.changes.other.setdefault("kb_articles", []).extend(ids)
            return [
                article_from_row(r)
                for r in conn.execute(
                    select(t.articles).where(t.articles.c.id.in_(ids)).order_by(t.articles.c.id)
                )
            ]

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
        return self._edit(ref, None, author, message, now, changes)

    def edit_at(
        self,
        ref: int | str,
        revision: int | None,
        *,
        author: str | None = None,
        message: str = "",
        now: dt.datetime | None = None,
        **changes: Any,
    ) -> Article:
        """:meth:`edit` if the article is still at ``revision`` (None: whatever it is at),
        else :class:`PreconditionFailed` with nothing written (the HTTP API's
        ``If-Match``). Checked with the row locked: of two edits from the same revision,
        exactly one wins."""
        return self._edit(ref, revision, author, message, now, changes)

    def _edit(
        self,
        ref: int | str,
        expected_revision: int | None,
        author: str | None,
        message: str,
        now: dt.datetime | None,
        changes: dict[str, Any],
    ) -> Article:
        cleaned = clean_content(changes)
        self.crm.authorise(access.WRITE)
        with self.crm.transaction(actor=author, now=now) as ctx:
            conn = ctx.connection
            author = ctx.actor.label
            current = article_from_row(article_row(conn, ref, lock=expected_revision is not None))
            if expected_revision is not None and current.revision != expected_revision:
                raise PreconditionFailed(
                    f"article {current.slug!r} is at revision {current.revision}, not "
                    f"{expected_revision}; read it again and re-apply your change"
                )
            before = current.content()
            after = {**before, **cleaned}
            if after == before:
                return current
            if "published" in (before["status"], after["status"]):
                self.crm.authorise(access.PUBLISH)
            if after["slug"] != before["slug"]:
                _check_slug_free(conn, after["slug"])
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
                _replace_tags(conn, current.id, after["tags"])
            fts.upsert(conn, [{**after, "id": current.id}])
            access.record(
                ctx,
                "kb_article.update",
                "kb_article",
                current.id,
                changes=access.content_changes(before, after, (current.revision, number)),
            )
            ctx.changes.other.setdefault("kb_articles", []).append(current.id)
            return article_from_row(article_row(conn, current.id))

    # -- revisions --------------------------------------------------------
    def revisions(self, ref: int | str) -> list[Revision]:
        self.crm.authorise(access.READ)
        with self.crm.reading() as connection:
            article = article_row(connection, ref)
            rows = connection.execute(
                select(t.revisions)
                .where(t.revisions.c.article_id == article.id)
                .order_by(t.revisions.c.number)
            )
            return [revision_from_row(r) for r in rows]

    def revision(self, ref: int | str, number: int) -> Revision:
        self.crm.authorise(access.READ)
        with self.crm.reading() as connection:
            article = article_row(connection, ref)
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
            return revision_from_row(row)

    def diff(self, ref: int | str, a: int | None = None, b: int | None = None) -> str:
        """A unified diff (difflib) between two revisions' files (TOML front matter and
        body); default: the last change."""
        article = self.get(ref)
        b = article.revision if b is None else b
        a = max(1, b - 1) if a is None else a
        old, new = self.revision(ref, a), self.revision(ref, b)

        def lines(content: dict[str, Any]) -> list[str]:
            text = frontmatter.dump_article(content)
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
        self.crm.authorise(access.READ)
        with self.crm.transaction() as ctx:
            row = article_row(ctx.connection, ref)
            ctx.connection.execute(
                update(t.articles)
                .where(t.articles.c.id == row.id)
                .values(views=t.articles.c.views + count)
            )
            access.record(
                ctx,
                "kb_article.view",
                "kb_article",
                row.id,
                changes={"views": [row.views, row.views + count]},
            )
            return article_from_row(article_row(ctx.connection, row.id))

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
        self.crm.authorise(access.READ)
        with self.crm.transaction() as ctx:
            row = article_row(ctx.connection, ref)
            if customer_id is not None:  # a vote by a customer is a write about them
                self.crm.authorise(access.SEND, Resource.customer(customer_id))
                self.crm.customers.require_writable(customer_id)
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
            access.record(
                ctx,
                "kb_article.vote",
                "kb_article",
                row.id,
                customer_id=customer_id,
                changes={
                    column: [row._mapping[column], row._mapping[column] + 1],
                    "comment": [None, comment or ""],
                },
            )
            ctx.connection.execute(
                update(t.articles)
                .where(t.articles.c.id == row.id)
                .values({column: t.articles.c[column] + 1})
            )
            return article_from_row(article_row(ctx.connection, row.id))


# --------------------------------------------------------------------------
# helpers of the writes
# --------------------------------------------------------------------------


def _assign_slugs(conn: Any, cleaned: list[dict[str, Any]]) -> None:
    """Refuse given slugs that repeat or exist; give the others one from the title
    (``delivery-times``, then ``delivery-times-2`` ...)."""
    given = [c["slug"] for c in cleaned if "slug" in c]
    dupes = [s for s, n in Counter(given).items() if n > 1]
    if dupes:
        raise ValidationError(f"slug {dupes[0]!r} is given twice", field="slug")
    auto = [slugify(c["title"]) for c in cleaned if "slug" not in c]
    taken = _taken_slugs(conn, given, auto)
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


def _taken_slugs(conn: Any, given: Sequence[str], auto: Sequence[str]) -> set[str]:
    """Slugs already stored among ``given`` and the ``auto`` bases, plus the numbered
    variants (``refund-policy-2``) of each base that is taken or wanted twice."""
    taken: set[str] = set()
    for chunk in _chunks(sorted(set(given) | set(auto)), 500):
        taken.update(
            conn.execute(select(t.articles.c.slug).where(t.articles.c.slug.in_(chunk))).scalars()
        )
    # only colliding bases need their variants: LIKE scans, so keep it to the few
    repeated = {s for s, n in Counter(auto).items() if n > 1}
    for base in sorted((taken | set(given)) & set(auto) | repeated):
        pattern = base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        taken.update(
            conn.execute(
                select(t.articles.c.slug).where(t.articles.c.slug.like(f"{pattern}-%", escape="\\"))
            ).scalars()
        )
    return taken


def _insert_articles(
    conn: Any, rows: list[dict[str, Any]], *, author: str | None, at: dt.datetime, message: str
) -> list[int]:
    """Insert new articles with their revision 1, tags and index entries; their ids."""
    ids = [
        r[0]
        for r in conn.execute(
            insert(t.articles).returning(t.articles.c.id, sort_by_parameter_order=True), rows
        )
    ]
    for row, new_id in zip(rows, ids, strict=True):
        row["id"] = new_id
    conn.execute(
        insert(t.revisions),
        [
            {**{f: r[f] for f in CONTENT_FIELDS}, "article_id": r["id"], "number": 1,
             "author": author, "at": at, "message": message}
            for r in rows
        ],
    )  # fmt: skip
    tag_rows = [{"article_id": r["id"], "tag": tag} for r in rows for tag in r["tags"]]
    if tag_rows:
        conn.execute(insert(t.article_tags), tag_rows)
    fts.upsert(conn, rows)
    return ids


def _check_slug_free(conn: Any, slug: str) -> None:
    clash = conn.execute(select(t.articles.c.id).where(t.articles.c.slug == slug)).first()
    if clash is not None:
        raise ValidationError(f"an article with slug {slug!r} already exists", field="slug")


def _replace_tags(conn: Any, article_id: int, tags: Sequence[str]) -> None:
    conn.execute(delete(t.article_tags).where(t.article_tags.c.article_id == article_id))
    if tags:
        conn.execute(
            insert(t.article_tags), [{"article_id": article_id, "tag": tag} for tag in tags]
        )


def _describe(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    changed = [f for f in CONTENT_FIELDS if before[f] != after[f]]
    return "changed " + ", ".join(changed)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
