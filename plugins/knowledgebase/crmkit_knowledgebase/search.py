"""Full-text search of articles: the index behind one API (FTS5 on SQLite, tsvector on
PostgreSQL) and :class:`ArticleSearch`, the ``kb.search`` that ranks and highlights.

Both backends index the same analysed text (:mod:`crmkit_knowledgebase.text`), so
matching is identical; ranking uses each backend's own function (FTS5
``bm25`` with column weights, PostgreSQL ``ts_rank`` with setweight A/B/D).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select, text

from crmkit.plugin import ValidationError
from crmkit_knowledgebase import access
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.content import AUDIENCES, STATUSES, choice
from crmkit_knowledgebase.entities import Hit, article_from_row
from crmkit_knowledgebase.text import (
    Term,
    fts5_query,
    highlight,
    index_text,
    parse_query,
    plain_text,
    tsquery,
)

if TYPE_CHECKING:
    from crmkit.plugin import CRM

#: FTS5 bm25 weights of the columns title, meta (tags, category, products), body
BM25_WEIGHTS = (10.0, 4.0, 1.0)


def document(title: str, tags: Sequence[str], products: Sequence[str], category: str, body: str):
    """The analysed (title, meta, body) triple stored in the index."""
    return (
        index_text(title),
        index_text(" ".join(tags), " ".join(products), category),
        index_text(body),
    )


def upsert(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """(Re)index articles: each row has ``id, title, tags, products, category, body``."""
    if not rows:
        return
    docs = []
    for row in rows:
        title, meta, body = document(
            row["title"], row["tags"], row["products"], row["category"], row["body"]
        )
        docs.append({"id": row["id"], "title": title, "meta": meta, "body": body})
    if connection.dialect.name == "sqlite":
        connection.execute(
            text("DELETE FROM kb_fts WHERE rowid IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": [d["id"] for d in docs]},
        )
        connection.execute(
            text(
                "INSERT INTO kb_fts (rowid, title, meta, body) VALUES (:id, :title, :meta, :body)"
            ),
            docs,
        )
    else:
        connection.execute(
            text(
                "INSERT INTO kb_search (article_id, document) VALUES (:id, "
                "setweight(to_tsvector('simple', :title), 'A') || "
                "setweight(to_tsvector('simple', :meta), 'B') || "
                "setweight(to_tsvector('simple', :body), 'D')) "
                "ON CONFLICT (article_id) DO UPDATE SET document = EXCLUDED.document"
            ),
            docs,
        )


def search(
    connection: Connection,
    terms: Sequence[Term],
    *,
    mode: str = "all",
    category: str | None = None,
    tag: str | None = None,
    audience: str | None = None,
    status: str | None = None,
    limit: int = 20,
    offset: int = 0,
) -> list[tuple[int, float]]:
    """Article ids and scores (higher is better), best first."""
    where = []
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for name, value in (("category", category), ("audience", audience), ("status", status)):
        if value is not None:
            where.append(f"a.{name} = :{name}")
            params[name] = value
    if tag is not None:
        where.append(
            "EXISTS (SELECT 1 FROM kb_article_tags t WHERE t.article_id = a.id AND t.tag = :tag)"
        )
        params["tag"] = tag
    extra = "".join(f" AND {w}" for w in where)
    if connection.dialect.name == "sqlite":
        params["q"] = fts5_query(terms, mode)
        w = ", ".join(str(x) for x in BM25_WEIGHTS)
        # unfiltered: the index alone; filtered: CROSS JOIN keeps the matches as the outer
        # loop, and each lookup stays inside the covering index ix_kb_articles_filter
        join = " CROSS JOIN kb_articles a ON a.id = kb_fts.rowid" if where else ""
        sql = (
            f"SELECT kb_fts.rowid, -bm25(kb_fts, {w}) AS score FROM kb_fts{join} "
            f"WHERE kb_fts MATCH :q{extra} "
            "ORDER BY score DESC, kb_fts.rowid LIMIT :limit OFFSET :offset"
        )
    else:
        params["q"] = tsquery(terms, mode)
        sql = (
            "SELECT a.id, ts_rank(s.document, q.query) AS score "
            "FROM kb_search s JOIN kb_articles a ON a.id = s.article_id, "
            "to_tsquery('simple', :q) AS q(query) "
            f"WHERE s.document @@ q.query{extra} "
            "ORDER BY score DESC, a.id LIMIT :limit OFFSET :offset"
        )
    return [(row[0], float(row[1])) for row in connection.execute(text(sql), params)]


def erase_index(connection: Connection) -> None:
    """Empty the index (before a rebuild)."""
    table = "kb_fts" if connection.dialect.name == "sqlite" else "kb_search"
    connection.execute(text(f"DELETE FROM {table}"))


class ArticleSearch:
    """``kb.search`` and ``kb.reindex`` (a part of :class:`crmkit_knowledgebase.KnowledgeBase`)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

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
        self.crm.authorise(access.READ)
        return self._search(query, category=category, tag=tag, audience=audience,
                            status=status, mode=mode, limit=limit, offset=offset)  # fmt: skip

    def public_search(self, query: str, *, limit: int = 20, offset: int = 0) -> list[Hit]:
        """Search the published public articles: what the self-service site shows, so it
        needs no permission (the HTTP API serves it without sign-in)."""
        return self._search(query, audience="public", status="published", limit=limit,
                            offset=offset)  # fmt: skip

    def _search(
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
        if audience is not None:
            choice(audience, "audience", AUDIENCES)
        if status is not None:
            choice(status, "status", STATUSES)
        if mode not in ("all", "any"):
            raise ValidationError(f"mode {mode!r} is not valid; use all or any", field="mode")
        if limit < 1:
            raise ValidationError("limit must be at least 1", field="limit")
        terms = parse_query(query)
        with self.crm.reading() as connection:
            # the module's search(): the ranked ids from the index
            found = search(
                connection, terms, mode=mode, category=category, tag=tag, audience=audience,
                status=status, limit=limit, offset=offset,
            )  # fmt: skip
            return hits(connection, found, terms)

    def reindex(self) -> int:
        """Rebuild the full-text index from the articles table."""
        self.crm.authorise(access.ADMIN)
        with self.crm.transaction() as ctx:
            erase_index(ctx.connection)
            count = 0
            for chunk in _batches(ctx.connection.execute(select(t.articles)), 2000):
                upsert(ctx.connection, [dict(r._mapping) for r in chunk])
                count += len(chunk)
            ctx.audit("kb.reindex", "kb_index", changes={"articles": [None, count]})
            return count


def hits(
    connection: Connection, found: list[tuple[int, float]], terms: Sequence[Term]
) -> list[Hit]:
    """The articles of ``found`` (ids and scores, best first) with their snippets."""
    if not found:
        return []
    rows = {
        r.id: r
        for r in connection.execute(
            select(t.articles).where(t.articles.c.id.in_([i for i, _ in found]))
        )
    }
    out = []
    for article_id, score in found:
        article = article_from_row(rows[article_id])
        source = plain_text(article.body) or article.title
        out.append(Hit(article, score, highlight(source, terms)))
    return out


def _batches(rows: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
