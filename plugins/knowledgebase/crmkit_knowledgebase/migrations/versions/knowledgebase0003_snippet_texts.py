"""knowledgebase: the text search snippets are cut from, stored with the index

Revision ID: knowledgebase0003
Revises: knowledgebase0002
Create Date: 2026-12-06

A search's snippet is cut from the article's body as plain text (Markdown removed; the
title when the body has none), matched in its folded form. Reducing the Markdown of every
hit at every search cost about 6 µs an article, folding Chinese text 15-50 µs;
``kb_snippet_texts`` keeps both texts, written with the full-text index, and a search reads
them with the hits. Existing articles are filled here, with the
same function the index uses (not in ``--sql`` mode, where it cannot read the articles: a
search cuts the snippets of articles without a stored text from their body, as before,
until ``crmkit kb reindex`` fills it).
"""

import sqlalchemy as sa
from alembic import context, op

revision = "knowledgebase0003"
down_revision = "knowledgebase0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "kb_snippet_texts",
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("folded", sa.Text),
        sa.PrimaryKeyConstraint("article_id", name="pk_kb_snippet_texts"),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["kb_articles.id"],
            name="fk_kb_snippet_texts_article_id_kb_articles",
            ondelete="CASCADE",
        ),
    )
    if context.is_offline_mode():
        return  # SQL text only: searches cut these snippets from the body until `kb reindex`
    from crmkit_knowledgebase.search import snippet_row

    bind = op.get_bind()
    articles = sa.table("kb_articles", sa.column("id"), sa.column("title"), sa.column("body"))
    last = 0
    while True:  # in chunks of ids, so a large knowledge base is not held in memory at once
        rows = bind.execute(
            sa.select(articles.c.id, articles.c.title, articles.c.body)
            .where(articles.c.id > last)
            .order_by(articles.c.id)
            .limit(2000)
        ).all()
        if not rows:
            break
        op.bulk_insert(table, [snippet_row(r.id, r.title, r.body) for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table("kb_snippet_texts")
