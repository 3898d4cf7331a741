"""knowledgebase: articles, revisions, votes, templates, sends, full-text index

Revision ID: knowledgebase0001
Revises:
Create Date: 2026-11-22

The full-text index is dialect-specific (see the plugin README):

* SQLite: an FTS5 virtual table ``kb_fts(title, meta, body)`` whose rowid is
  the article id, holding text already analysed in Python (stemmed words,
  CJK bigrams), tokenised by ``unicode61`` on the spaces; prefix indexes for
  1-3 characters make prefix queries cheap.
* PostgreSQL: a table ``kb_search(article_id, document tsvector)`` with a GIN
  index; the document is ``to_tsvector('simple', ...)`` of the same analysed
  text, weighted A (title), B (tags, category, products) and D (body).
"""

import sqlalchemy as sa
from alembic import op

from crmkit.plugin import UTCDateTime

revision = "knowledgebase0001"
down_revision = None
branch_labels = ("knowledgebase",)
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("products", sa.JSON, nullable=False),
        sa.Column("audience", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("views", sa.Integer, nullable=False),
        sa.Column("helpful_yes", sa.Integer, nullable=False),
        sa.Column("helpful_no", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(100)),
        sa.Column("updated_by", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_kb_articles"),
        sa.UniqueConstraint("slug", name="uq_kb_articles_slug"),
    )
    op.create_index("ix_kb_articles_status_audience", "kb_articles", ["status", "audience"])
    op.create_index("ix_kb_articles_category", "kb_articles", ["category"])

    op.create_table(
        "kb_article_tags",
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "tag", name="pk_kb_article_tags"),
        _fk("kb_article_tags", "article_id", "kb_articles", "CASCADE"),
    )
    op.create_index("ix_kb_article_tags_tag", "kb_article_tags", ["tag"])

    op.create_table(
        "kb_revisions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("products", sa.JSON, nullable=False),
        sa.Column("audience", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("author", sa.String(100)),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_revisions"),
        sa.UniqueConstraint("article_id", "number", name="uq_kb_revisions_article_id"),
        _fk("kb_revisions", "article_id", "kb_articles", "CASCADE"),
    )

    op.create_table(
        "kb_votes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("helpful", sa.Boolean, nullable=False),
        sa.Column("customer_id", sa.Integer),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_votes"),
        _fk("kb_votes", "article_id", "kb_articles", "CASCADE"),
        _fk("kb_votes", "customer_id", "customers", "SET NULL"),
    )
    op.create_index("ix_kb_votes_article_id", "kb_votes", ["article_id"])

    op.create_table(
        "kb_templates",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("triggers", sa.JSON, nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_kb_templates"),
        sa.UniqueConstraint("name", name="uq_kb_templates_name"),
    )

    op.create_table(
        "kb_sends",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("template_id", sa.Integer),
        sa.Column("article_id", sa.Integer),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("complaint_id", sa.Integer),
        sa.Column("channel", sa.String(20)),
        sa.Column("staff", sa.String(100)),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_sends"),
        _fk("kb_sends", "customer_id", "customers", "CASCADE"),
        _fk("kb_sends", "template_id", "kb_templates", "SET NULL"),
        _fk("kb_sends", "article_id", "kb_articles", "SET NULL"),
    )
    op.create_index("ix_kb_sends_customer_at", "kb_sends", ["customer_id", "at"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE kb_fts USING fts5("
            "title, meta, body, tokenize = 'unicode61', prefix = '1 2 3')"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE TABLE kb_search ("
            " article_id INTEGER NOT NULL,"
            " document TSVECTOR NOT NULL,"
            " CONSTRAINT pk_kb_search PRIMARY KEY (article_id),"
            " CONSTRAINT fk_kb_search_article_id_kb_articles FOREIGN KEY (article_id)"
            " REFERENCES kb_articles (id) ON DELETE CASCADE)"
        )
        op.execute("CREATE INDEX ix_kb_search_document ON kb_search USING GIN (document)")
    else:  # pragma: no cover - crmkit supports SQLite and PostgreSQL
        raise NotImplementedError(f"knowledgebase: no full-text index for {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS kb_fts")
    else:
        op.execute("DROP TABLE IF EXISTS kb_search")
    for table in (
        "kb_sends",
        "kb_templates",
        "kb_votes",
        "kb_revisions",
        "kb_article_tags",
        "kb_articles",
    ):
        op.drop_table(table)
