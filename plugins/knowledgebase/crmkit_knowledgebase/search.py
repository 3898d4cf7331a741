"""Full-text search of articles: the index behind one API (FTS5 on SQLite, tsvector on
PostgreSQL) and :class:`ArticleSearch`, the ``kb.search`` that ranks and highlights.

Both backends index the same analysed text (:mod:`crmkit_knowledgebase.text`), so
matching is identical; ranking uses each backend's own function (FTS5
``bm25`` with column weights, PostgreSQL ``ts_rank`` with setweight A/B/D). A query ranks
only its :data:`CANDIDATES` newest matches, the same ones on both backends.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import Connection, Dialect, bindparam, select, text

from crmkit.plugin import UTCDateTime, ValidationError, driver_rows
from crmkit_knowledgebase import access
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.content import AUDIENCES, STATUSES, choice
from crmkit_knowledgebase.entities import Article, Hit
from crmkit_knowledgebase.text import (
    SNIPPET_SCAN,
    Highlighter,
    Term,
    fts5_query,
    index_text,
    parse_query,
    plain_text,
    stored_fold,
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


def snippet_text(title: str, body: str) -> str:
    """What an article's search snippets are cut from: the body as plain text (the title
    when that is empty), as far as snippets look (``text.SNIPPET_SCAN``)."""
    return (plain_text(body) or title)[:SNIPPET_SCAN]


def snippet_row(article_id: int, title: str, body: str) -> dict[str, Any]:
    """The ``kb_snippet_texts`` row of an article: its snippet text and that text folded."""
    source = snippet_text(title, body)
    return {"article_id": article_id, "text": source, "folded": stored_fold(source)}


def upsert(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """(Re)index articles: each row has ``id, title, tags, products, category, body``.

    The index entry and the text the article's snippets are cut from (``kb_snippet_texts``)
    are written together, so the snippets always come from the text the index matched."""
    if not rows:
        return
    docs = []
    for row in rows:
        title, meta, body = document(
            row["title"], row["tags"], row["products"], row["category"], row["body"]
        )
        docs.append({"id": row["id"], "title": title, "meta": meta, "body": body})
    ids = [d["id"] for d in docs]
    connection.execute(t.snippet_texts.delete().where(t.snippet_texts.c.article_id.in_(ids)))
    connection.execute(
        t.snippet_texts.insert(),
        [snippet_row(r["id"], r["title"], r["body"]) for r in rows],
    )
    if connection.dialect.name == "sqlite":
        connection.execute(
            text("DELETE FROM kb_fts WHERE rowid IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": ids},
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


#: a query ranks at most this many of its matches: the newest (highest article ids) that pass
#: its filters. Ranking reads every ranked article's index entry, so a word found in thousands
#: of articles would cost thousands of reads; the candidates are picked in index order instead.
#: Both backends pick the same candidates, so they return the same articles.
CANDIDATES = 500


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
    candidates: int | None = CANDIDATES,
) -> list[tuple[int, float]]:
    """Article ids and scores (higher is better), best first.

    With ``candidates`` (n), only the n newest matching articles are ranked, so a query
    yields at most n results; ``None`` ranks every match. A query with at most n matches
    gets the same results either way."""
    where, params = _filters(category, tag, audience, status)
    params.update(limit=limit, offset=offset)
    extra = "".join(f" AND {w}" for w in where)
    if connection.dialect.name != "sqlite":
        params["q"] = tsquery(terms, mode)
        if candidates is not None:
            ranked = _pg_newest(connection, params, where, candidates)
            ranked.sort(key=lambda r: (-r[1], r[0]))
            return ranked[offset : offset + limit]
        sql = (
            "SELECT a.id, ts_rank(s.document, q.query) AS score "
            "FROM kb_search s JOIN kb_articles a ON a.id = s.article_id, "
            "to_tsquery('simple', :q) AS q(query) "
            f"WHERE s.document @@ q.query{extra} "
            "ORDER BY score DESC, a.id LIMIT :limit OFFSET :offset"
        )
    else:
        sql = _fts5_sql(terms, mode, params, where, candidates)
    return [(row[0], float(row[1])) for row in connection.execute(text(sql), params)]


def _filters(
    category: str | None, tag: str | None, audience: str | None, status: str | None
) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions on the article ``a`` for the filters given, and their parameters."""
    where = []
    params: dict[str, Any] = {}
    for name, value in (("category", category), ("audience", audience), ("status", status)):
        if value is not None:
            where.append(f"a.{name} = :{name}")
            params[name] = value
    if tag is not None:
        where.append(
            "EXISTS (SELECT 1 FROM kb_article_tags t WHERE t.article_id = a.id AND t.tag = :tag)"
        )
        params["tag"] = tag
    return where, params


def _fts5_sql(
    terms: Sequence[Term], mode: str, params: dict[str, Any], where: list[str], n: int | None
) -> str:
    """The FTS5 query of :func:`search` (its ``params`` completed): ``id, score`` rows."""
    params["q"] = fts5_query(terms, mode)
    extra = "".join(f" AND {w}" for w in where)
    w = ", ".join(str(x) for x in BM25_WEIGHTS)
    # unfiltered: the index alone; filtered: CROSS JOIN keeps the matches as the outer
    # loop, and each lookup stays inside the covering index ix_kb_articles_filter
    join = " CROSS JOIN kb_articles a ON a.id = kb_fts.rowid" if where else ""
    ranked = f"SELECT kb_fts.rowid AS id, -bm25(kb_fts, {w}) AS score FROM kb_fts{join} "
    if n is None:
        return (
            f"{ranked}WHERE kb_fts MATCH :q{extra} "
            "ORDER BY score DESC, kb_fts.rowid LIMIT :limit OFFSET :offset"
        )
    # the n newest matches (FTS5 reads its index in rowid order), then only they are ranked
    params["n"] = n
    return (
        f"SELECT id, score FROM ({ranked}WHERE kb_fts MATCH :q{extra} "
        "ORDER BY kb_fts.rowid DESC LIMIT :n) ORDER BY score DESC, id LIMIT :limit OFFSET :offset"
    )


def _pg_newest(
    connection: Connection, params: dict[str, Any], where: list[str], n: int
) -> list[tuple[int, float]]:
    """The ``n`` newest matches of ``params["q"]`` (and the filters ``where``), ranked.

    A GIN index yields the matches in no order, and finding the newest by reading every
    match's row costs as much as ranking them all. So the ids are scanned in slices, newest
    first and each four times wider than the last; the GIN bitmap is intersected with the
    primary key's range, and only the matches inside a slice are read."""
    join = " JOIN kb_articles a ON a.id = s.article_id" if where else ""
    extra = "".join(f" AND {w}" for w in where)
    sql = text(
        "SELECT c.article_id, ts_rank(c.document, to_tsquery('simple', :q)) FROM ("
        f"SELECT s.article_id, s.document FROM kb_search s{join} "
        f"WHERE s.document @@ to_tsquery('simple', :q) AND s.article_id <= :top "
        f"AND s.article_id > :low{extra} ORDER BY s.article_id DESC LIMIT :n) c"
    )
    # the planner does not know that testing a row's tsvector costs a read (and maybe a
    # decompression): given an index scan, it walks the id range testing every article
    # (the subquery runs first: the old value is read before the setting changes)
    old, bottom, top, _ = connection.execute(
        text(
            "SELECT old, bottom, top, set_config('enable_indexscan', 'off', true) FROM ("
            "SELECT current_setting('enable_indexscan') AS old, min(article_id) AS bottom, "
            "max(article_id) AS top FROM kb_search OFFSET 0) x"
        )
    ).one()
    query = {k: v for k, v in params.items() if k not in ("limit", "offset")}
    found: list[tuple[int, float]] = []
    try:
        width, scanned = 8 * n, 0
        while top is not None and len(found) < n:
            low = top - width if top - width >= bottom else bottom - 1
            rows = connection.execute(sql, {**query, "top": top, "low": low, "n": n - len(found)})
            found.extend((row[0], float(row[1])) for row in rows)
            scanned += top - low
            # the next slice: twice what the matches so far say the rest needs, at least 4x
            needed = 2 * (n - len(found)) * scanned // len(found) if found else top
            top, width = (low, max(width * 4, needed)) if low >= bottom else (None, width)
    finally:
        connection.execute(text("SELECT set_config('enable_indexscan', :old, true)"), {"old": old})
    return found


def erase_index(connection: Connection) -> None:
    """Empty the index and the snippet texts (before a rebuild)."""
    table = "kb_fts" if connection.dialect.name == "sqlite" else "kb_search"
    connection.execute(text(f"DELETE FROM {table}"))
    connection.execute(t.snippet_texts.delete())


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
            if connection.dialect.name == "sqlite":
                # the ranked ids and their articles in one statement
                where, params = _filters(category, tag, audience, status)
                params.update(limit=limit, offset=offset)
                ranked = _fts5_sql(terms, mode, params, where, CANDIDATES)
                rows = driver_rows(connection, _with_articles(ranked), params)
                # the ranked order (score, then id) here: in SQL, sorting carried each row
                # with its article's texts through SQLite's sorter
                rows.sort(key=lambda row: (-row[_SCORE], row[0]))
                return _hits(rows, _converters(connection.dialect), terms)
            # the module's search(): the ranked ids from the index
            found = search(
                connection, terms, mode=mode, category=category, tag=tag, audience=audience,
                status=status, limit=limit, offset=offset, candidates=CANDIDATES,
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
    statement = text(
        f"SELECT {_article_columns()}, x.text, x.folded FROM kb_articles art "
        "LEFT JOIN kb_snippet_texts x ON x.article_id = art.id WHERE art.id IN :ids"
    )
    rows = connection.execute(
        statement.bindparams(bindparam("ids", expanding=True)), {"ids": [i for i, _ in found]}
    )
    by_id = {row[0]: row for row in rows}
    ranked = [(*by_id[i][:-2], score, *by_id[i][-2:]) for i, score in found]
    return _hits(ranked, _converters(connection.dialect), terms)


def _hits(
    rows: Iterable[Sequence[Any]],
    convert: Callable[[Sequence[Any]], Article],
    terms: Sequence[Term],
) -> list[Hit]:
    """Hits of rows holding an article's columns, its score, its snippet text and that text
    folded (``kb_snippet_texts``; ``None`` for an article written without them: its snippet
    is cut from its body)."""
    snippet = Highlighter(terms).snippet
    out = []
    for row in rows:
        article = convert(row)
        source, folded = row[-2:]
        if source is None:
            source = snippet_text(article.title, article.body)
        out.append(Hit(article, row[-3], snippet(source, folded)))
    return out


@functools.cache
def _article_columns() -> str:
    return ", ".join(f"art.{c.name}" for c in t.articles.c)


#: where a row of :func:`_with_articles` has its score
_SCORE = len(t.articles.c)


def _with_articles(ranked: str) -> str:
    """The articles of the ``id, score`` rows of ``ranked`` with their score and snippet
    texts (in no particular order)."""
    return (
        f"SELECT {_article_columns()}, r.score, x.text, x.folded FROM ({ranked}) r "
        "CROSS JOIN kb_articles art ON art.id = r.id "
        "LEFT JOIN kb_snippet_texts x ON x.article_id = r.id"
    )


@functools.cache
def _converters(dialect: Dialect) -> Callable[[Sequence[Any]], Article]:
    """A row of :func:`_with_articles` to its article: each column's own conversion (JSON,
    time zone), applied without a typed statement (whose result set up costs 3x more)."""
    names = [c.name for c in t.articles.c]
    # the columns are the article's fields in order: rows convert positionally
    assert names == [f.name for f in attrs.fields(Article)], "kb_articles and Article differ"
    size = len(names)
    lists = {names.index("tags"), names.index("products")}
    if dialect.name == "sqlite":
        return _sqlite_converter(names, dialect)
    convert = [(i, c.type.result_processor(dialect, None)) for i, c in enumerate(t.articles.c)]
    convert = [(i, f) for i, f in convert if f is not None]

    def article(row: Sequence[Any]) -> Article:
        values = list(row[:size])
        for i, f in convert:
            values[i] = f(values[i])
        for i in lists:
            values[i] = list(values[i] or [])
        return Article(*values)

    return article


def _sqlite_converter(names: list[str], dialect: Dialect) -> Callable[[Sequence[Any]], Article]:
    """SQLite's rows: JSON lists come as text, times as ISO text that
    :class:`~crmkit.plugin.UTCDateTime` reads (the conversion its own processor makes of
    SQLite's text, without the generic layer in between)."""
    # the positions the converter below names
    assert names[5:7] == ["tags", "products"] and names[13:15] == ["created_at", "updated_at"]
    assert all(isinstance(c.type, UTCDateTime) for c in list(t.articles.c)[13:15])
    loads = dialect._json_deserializer or json.loads
    read = UTCDateTime().process_result_value
    iso = dt.datetime.fromisoformat

    def utc(value: Any) -> dt.datetime:
        # SQLite's own text of a naive UTC time ("2026-12-06 18:32:04.212084") read as UTC
        # at once: what UTCDateTime gives, without datetime.replace (a third of the cost)
        if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            return iso(value + "+00:00")
        return read(value, dialect)

    def as_list(value: str | None) -> list[Any]:
        if value == "[]":  # most articles have no products, many no tags
            return []
        return list((loads(value) if value is not None else None) or [])

    def article(row: Sequence[Any]) -> Article:
        values = row[: len(names)]
        created = utc(values[13])
        # an article never edited: its two times are one
        updated = created if values[14] == values[13] else utc(values[14])
        return Article(
            *values[:5],
            as_list(values[5]),
            as_list(values[6]),
            *values[7:13],
            created,
            updated,
            *values[15:],
        )

    return article


def _batches(rows: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
