"""The knowledgebase's tables (SQLAlchemy Core on the shared metadata).

The full-text index is not here: it is backend-specific (an FTS5 virtual
table ``kb_fts`` on SQLite, a ``kb_search`` table with a GIN-indexed
``tsvector`` on PostgreSQL), created by the migration with ``op.execute`` and
reached through :mod:`crmkit_knowledgebase.search`.

Columns holding personal data are marked ``info={"personal": True}`` (``kb_sends.body``,
``kb_votes.comment``); :mod:`crmkit_knowledgebase.personal` exports and erases them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from crmkit.plugin import UTCDateTime, metadata

articles = Table(
    "kb_articles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(200), nullable=False, unique=True),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("category", String(100), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("products", JSON, nullable=False),
    Column("audience", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("views", Integer, nullable=False),
    Column("helpful_yes", Integer, nullable=False),
    Column("helpful_no", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("created_by", String(100)),
    Column("updated_by", String(100)),
    Index("ix_kb_articles_status_audience", "status", "audience"),
    Index("ix_kb_articles_category", "category"),
    # covers the search's join from a full-text match to the filter columns
    Index("ix_kb_articles_filter", "id", "status", "audience", "category"),
)

#: what an article's search snippets are cut from: its body as plain text (the title when the
#: body has none), the first ``text.SNIPPET_SCAN`` characters, and that text folded when folding
#: keeps each character in place (``text.stored_fold``; else NULL). Written with the full-text
#: index (``search.upsert``), so a search reads them with its hits instead of reducing Markdown
#: and folding text per hit.
snippet_texts = Table(
    "kb_snippet_texts",
    metadata,
    Column(
        "article_id", Integer, ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("text", Text, nullable=False),
    Column("folded", Text),
)

article_tags = Table(
    "kb_article_tags",
    metadata,
    Column(
        "article_id", Integer, ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("tag", String(100), primary_key=True),
    Index("ix_kb_article_tags_tag", "tag"),
)

revisions = Table(
    "kb_revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("slug", String(200), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("category", String(100), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("products", JSON, nullable=False),
    Column("audience", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("author", String(100)),
    Column("at", UTCDateTime, nullable=False),
    Column("message", Text, nullable=False),
    UniqueConstraint("article_id", "number"),
)

votes = Table(
    "kb_votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False),
    Column("helpful", Boolean, nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="SET NULL")),
    # the customer's own words (personal: exported, blanked and unlinked at erasure)
    Column("comment", Text, nullable=False, info={"personal": True}),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_kb_votes_article_id", "article_id"),
)

templates = Table(
    "kb_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("format", String(10), nullable=False),
    Column("triggers", JSON, nullable=False),
    Column("category", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(100)),
)

sends = Table(
    "kb_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("template_id", Integer, ForeignKey("kb_templates.id", ondelete="SET NULL")),
    Column("article_id", Integer, ForeignKey("kb_articles.id", ondelete="SET NULL")),
    # the template's or article's title, the same for everyone: not personal
    Column("title", String(300), nullable=False),
    # the text sent: a reply names the person and quotes them (exported, blanked at erasure)
    Column("body", Text, nullable=False, info={"personal": True}),
    Column("complaint_id", Integer),
    Column("channel", String(20)),
    Column("staff", String(100)),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_kb_sends_customer_at", "customer_id", "at"),
)
