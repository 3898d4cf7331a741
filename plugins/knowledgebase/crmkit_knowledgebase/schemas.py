"""Request and response shapes of the knowledge base's HTTP API (``/api/v1/knowledgebase``).

The server decodes query strings and JSON bodies into the request classes (an unknown
field, a wrong type or a missing required field is a 422 before a handler runs) and the
OpenAPI document is generated from these classes. Times are ISO 8601 with an offset.
In a ``PATCH`` an absent field (or ``null``) leaves the field as it is.
"""

from __future__ import annotations

import datetime as dt

import attrs

# -- search and suggest ----------------------------------------------------------------


@attrs.define
class SearchQuery:
    """``GET /search``: the query syntax of ``crmkit kb search`` (words, "phrases",
    -excluded, prefix*); English and Chinese in one index, no language to choose."""

    q: str
    category: str | None = None
    tag: str | None = None
    #: internal or public
    audience: str | None = None
    #: draft, published or archived
    status: str | None = None
    #: all (every term) or any (one of them)
    mode: str = "all"
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class PublicSearchQuery:
    """``GET /public/search``: the published public articles only."""

    q: str
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class SearchHit:
    """An article found, best first, with an HTML snippet (matches in ``<mark>``)."""

    id: int
    slug: str
    title: str
    category: str
    audience: str
    status: str
    revision: int
    score: float
    snippet: str


@attrs.define
class PublicHit:
    """A published public article found, for the self-service site."""

    slug: str
    title: str
    category: str
    body: str
    score: float
    snippet: str


@attrs.define
class SuggestBody:
    """``POST /suggest``: an incoming message to answer."""

    message: str
    limit: int | None = None
    #: only articles of this audience (internal or public); templates are always staff's
    audience: str | None = None
    articles: bool = True
    templates: bool = True


@attrs.define
class SuggestionOut:
    """A reply template (``ref`` = its name) or published article (``ref`` = its slug)."""

    kind: str
    ref: str
    title: str
    score: float
    #: the trigger phrases or tags found whole in the message
    why: list[str]


# -- articles ----------------------------------------------------------------------------


@attrs.define
class ArticleQuery:
    """``GET /articles``: the filters of ``crmkit kb list``, by id."""

    category: str | None = None
    tag: str | None = None
    audience: str | None = None
    status: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class ArticleSummary:
    """An article without its body (lists)."""

    id: int
    slug: str
    title: str
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


@attrs.define
class RevisionSummary:
    """One revision of an article (its body: ``GET /articles/{ref}/revisions/{number}``)."""

    number: int
    title: str
    status: str
    audience: str
    author: str | None
    at: dt.datetime
    message: str


@attrs.define
class RevisionOut:
    """One revision with its whole content."""

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


@attrs.define
class ArticleOut:
    """An article with its body and its revisions, oldest first. Its ``ETag`` is
    ``"r<revision>"``: send it back as ``If-Match`` with a ``PATCH``."""

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
    created_by: str | None
    updated_by: str | None
    revisions: list[RevisionSummary]


@attrs.define
class ArticleCreate:
    """``POST /articles``: a new article (revision 1). Publishing (``status`` published)
    needs ``knowledgebase.publish`` besides ``knowledgebase.write``."""

    title: str
    body: str = ""
    #: default: from the title (``refund-policy``)
    slug: str | None = None
    category: str = "general"
    tags: list[str] = attrs.field(factory=list)
    products: list[str] = attrs.field(factory=list)
    #: internal or public
    audience: str = "internal"
    #: draft, published or archived
    status: str = "draft"
    #: the revision's message
    message: str = "created"


@attrs.define
class ArticlePatch:
    """``PATCH /articles/{ref}`` with ``If-Match: "r<revision>"``: the fields to change;
    an effective change is a new revision, no change none."""

    slug: str | None = None
    title: str | None = None
    body: str | None = None
    category: str | None = None
    tags: list[str] | None = None
    products: list[str] | None = None
    audience: str | None = None
    status: str | None = None
    #: the revision's message (default: the fields changed)
    message: str = ""
