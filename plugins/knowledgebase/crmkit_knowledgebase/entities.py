"""The knowledge base's entities (attrs classes) and how a database row becomes one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from crmkit_knowledgebase.content import CONTENT_FIELDS


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


def article_from_row(row: Any) -> Article:
    m = dict(row._mapping)
    m["tags"] = list(m["tags"] or [])
    m["products"] = list(m["products"] or [])
    return Article(**m)


def revision_from_row(row: Any) -> Revision:
    m = dict(row._mapping)
    m["tags"] = list(m["tags"] or [])
    m["products"] = list(m["products"] or [])
    return Revision(**m)


def template_from_row(row: Any) -> Template:
    m = dict(row._mapping)
    m["triggers"] = list(m["triggers"] or [])
    return Template(**m)


def send_from_row(row: Any) -> Send:
    return Send(**row._mapping)
