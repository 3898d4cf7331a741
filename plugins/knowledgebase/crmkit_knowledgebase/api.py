"""The knowledge base's HTTP routes, mounted under ``/api/v1/knowledgebase``.

Each handler calls the same service methods as the CLI (:mod:`.service`), which
authorise the request's actor and audit their writes; the handlers only translate
shapes (:mod:`.schemas`), cursors and ETags. An article's ETag is ``"r<revision>"``.
"""

from __future__ import annotations

from typing import Any

from crmkit import plugin
from crmkit.plugin import ApiRequest, ApiResponse, Page, PreconditionFailed, Route
from crmkit_knowledgebase import schemas as s
from crmkit_knowledgebase.entities import Article, Hit
from crmkit_knowledgebase.service import service

TAGS = ("knowledgebase",)


# -- paging ------------------------------------------------------------------------------


def encode_cursor(key: str, value: int) -> str:
    return plugin.encode_cursor({key: value})


def decode_cursor(cursor: str | None, key: str) -> int:
    """The number a cursor of :func:`encode_cursor` holds (0 without a cursor)."""
    state = plugin.decode_cursor(cursor, key)
    return 0 if state is None else plugin.cursor_int(state, key)


# -- shapes --------------------------------------------------------------------------------


def etag(article: Article) -> str:
    return f"r{article.revision}"


def summary(article: Article) -> s.ArticleSummary:
    fields = {f.name for f in s.ArticleSummary.__attrs_attrs__}
    return s.ArticleSummary(**{f: getattr(article, f) for f in fields})


def detail(req: ApiRequest, article: Article, status: int = 200) -> ApiResponse:
    kb = service(req.crm)
    revisions = [
        s.RevisionSummary(r.number, r.title, r.status, r.audience, r.author, r.at, r.message)
        for r in kb.revisions(article.id)
    ]
    fields = {f.name for f in s.ArticleOut.__attrs_attrs__} - {"revisions"}
    body = s.ArticleOut(**{f: getattr(article, f) for f in fields}, revisions=revisions)
    headers = {"Location": f"/api/v1/knowledgebase/articles/{article.id}"} if status == 201 else {}
    return ApiResponse(body, status=status, headers=headers, etag=etag(article))


def hit(h: Hit) -> s.SearchHit:
    a = h.article
    return s.SearchHit(a.id, a.slug, a.title, a.category, a.audience, a.status, a.revision,
                       round(h.score, 6), h.snippet)  # fmt: skip


def _hits_page(found: list[Any], offset: int, limit: int) -> tuple[list[Any], str | None]:
    """The page of ``found`` (limit + 1 asked for) and the next cursor."""
    more = len(found) > limit
    return found[:limit], encode_cursor("offset", offset + limit) if more else None


# -- handlers ------------------------------------------------------------------------------


def search(req: ApiRequest) -> Page:
    q: s.SearchQuery = req.query
    limit, offset = plugin.page_limit(q.limit, 20), decode_cursor(q.cursor, "offset")
    found = service(req.crm).search(
        q.q, category=q.category, tag=q.tag, audience=q.audience, status=q.status,
        mode=q.mode, limit=limit + 1, offset=offset,
    )  # fmt: skip
    items, cursor = _hits_page(found, offset, limit)
    return Page([hit(h) for h in items], cursor)


def public_search(req: ApiRequest) -> Page:
    q: s.PublicSearchQuery = req.query
    limit, offset = plugin.page_limit(q.limit, 20), decode_cursor(q.cursor, "offset")
    found = service(req.crm).public_search(q.q, limit=limit + 1, offset=offset)
    items, cursor = _hits_page(found, offset, limit)
    return Page(
        [
            s.PublicHit(
                h.article.slug,
                h.article.title,
                h.article.category,
                h.article.body,
                round(h.score, 6),
                h.snippet,
            )  # fmt: skip
            for h in items
        ],
        cursor,
    )


def suggest(req: ApiRequest) -> list[s.SuggestionOut]:
    b: s.SuggestBody = req.body
    kb = service(req.crm)
    limit = plugin.page_limit(b.limit, kb.settings.get("suggest_limit", 5))
    found = kb.suggest(
        b.message, limit=limit, audience=b.audience, articles=b.articles, templates=b.templates
    )
    return [s.SuggestionOut(x.kind, x.ref, x.title, x.score, list(x.why)) for x in found]


def list_articles(req: ApiRequest) -> Page:
    q: s.ArticleQuery = req.query
    limit, after = plugin.page_limit(q.limit), decode_cursor(q.cursor, "after")
    found = service(req.crm).list(
        category=q.category, tag=q.tag, audience=q.audience, status=q.status,
        limit=limit + 1, after_id=after,
    )  # fmt: skip
    items = found[:limit]
    cursor = encode_cursor("after", items[-1].id) if len(found) > limit else None
    return Page([summary(a) for a in items], cursor)


def get_article(req: ApiRequest) -> ApiResponse:
    return detail(req, service(req.crm).get(req.path["ref"]))


def get_revision(req: ApiRequest) -> s.RevisionOut:
    r = service(req.crm).revision(req.path["ref"], req.path["number"])
    fields = {f.name for f in s.RevisionOut.__attrs_attrs__}
    return s.RevisionOut(**{f: getattr(r, f) for f in fields})


def create_article(req: ApiRequest) -> ApiResponse:
    b: s.ArticleCreate = req.body
    article = service(req.crm).add(
        b.title, b.body, slug=b.slug, category=b.category, tags=b.tags, products=b.products,
        audience=b.audience, status=b.status, message=b.message,
    )  # fmt: skip
    return detail(req, article, status=201)


def expected_revision(req: ApiRequest) -> int | None:
    """The revision ``If-Match`` names (``"r3"``); None for ``*``."""
    tag = req.if_match
    if tag is None:  # the server answers a PATCH without If-Match with 428 before this
        raise PreconditionFailed('this edit needs If-Match: "r<revision>" (the article\'s ETag)')
    if tag.strip() == "*":
        return None
    number = tag.strip().removeprefix("r")
    if not number.isdigit():
        raise PreconditionFailed(
            f"If-Match {tag!r} is not an ETag of this article; read it again for its ETag"
        )
    return int(number)


def patch_article(req: ApiRequest) -> ApiResponse:
    b: s.ArticlePatch = req.body
    changes = {
        f: getattr(b, f)
        for f in ("slug", "title", "body", "category", "tags", "products", "audience", "status")
        if getattr(b, f) is not None
    }
    article = service(req.crm).edit_at(
        req.path["ref"], expected_revision(req), message=b.message, **changes
    )
    return detail(req, article)


def routes() -> list[Route]:
    """The routes ``crmkit_register_routes`` returns."""
    return [
        Route("GET", "/search", search, "Search articles (full text, English and Chinese)",
              query=s.SearchQuery, response=list[s.SearchHit], tags=TAGS),
        Route("GET", "/public/search", public_search,
              "Search the published public articles (self-service site, no sign-in)",
              query=s.PublicSearchQuery, response=list[s.PublicHit], public=True, tags=TAGS),
        Route("POST", "/suggest", suggest, "Reply templates and articles for a message",
              body=s.SuggestBody, response=list[s.SuggestionOut], tags=TAGS),
        Route("GET", "/articles", list_articles, "List articles",
              query=s.ArticleQuery, response=list[s.ArticleSummary], tags=TAGS),
        Route("POST", "/articles", create_article, "Create an article (revision 1)",
              body=s.ArticleCreate, response=s.ArticleOut, status=201, tags=TAGS,
              errors=(422,)),
        Route("GET", "/articles/{ref}", get_article, "An article with its revisions",
              response=s.ArticleOut, tags=TAGS, errors=(404,)),
        Route("PATCH", "/articles/{ref}", patch_article,
              "Edit an article (a new revision); needs If-Match", body=s.ArticlePatch,
              response=s.ArticleOut, tags=TAGS, errors=(404, 412, 428)),
        Route("GET", "/articles/{ref}/revisions/{number:int}", get_revision,
              "One revision of an article, with its content", response=s.RevisionOut,
              tags=TAGS, errors=(404,)),
    ]  # fmt: skip
