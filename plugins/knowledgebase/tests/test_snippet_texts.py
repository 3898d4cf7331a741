"""Hits read their snippet text from ``kb_snippet_texts`` (written with the index) and their
articles through a converter of their own: what they give is what the articles and their
bodies give (both backends)."""

from __future__ import annotations

from typing import Any

from crmkit_knowledgebase import search
from crmkit_knowledgebase.text import highlight, parse_query, plain_text
from sqlalchemy import text

ARTICLES = [
    (
        "Refund policy",
        "## Refunds\n\nWe **refund** within [30 days](https://x.y) & <fast>.",
        ["refund", "money"],
        ["fridge"],
    ),  # fmt: skip
    ("退款政策", "退款：请在三十天内申请，我们会尽快处理退款。", ["退款"], []),
    ("Café refunds", "Le café «refunded» naïvely — Ｅ２１ straße refunding.", [], ["kettle"]),
    ("Refund in the title only", "Nothing <here> & \"quoted\" 'text'.", [], []),
    ("Empty body refund", "", ["x"], []),
]


def the_old_snippet(kb: Any, article_id: int, query: str) -> str:
    """The snippet as every search made it before: cut from the body at search time."""
    article = kb.get(article_id)
    return highlight(plain_text(article.body) or article.title, parse_query(query))


def add_articles(kb: Any) -> list[int]:
    return [kb.add(title, body, tags=tags, products=products).id
            for title, body, tags, products in ARTICLES]  # fmt: skip


def check(kb: Any, queries: list[str]) -> int:
    seen = 0
    for query in queries:
        for hit in kb.search(query):
            assert hit.article == kb.get(hit.article.id), query
            assert hit.snippet == the_old_snippet(kb, hit.article.id, query), query
            seen += 1
    return seen


QUERIES = ["refund", "refu", "退款", "退", "cafe", "e21", "here", "naive", "strasse", "申请 退款"]


def test_hits_give_the_articles_and_the_snippets_of_their_bodies(kb: Any) -> None:
    ids = add_articles(kb)
    kb.edit(ids[0], body="We refund within 30 days; <b>really</b>.", tags=["refund"], author="x")
    assert kb.get(ids[0]).updated_at != kb.get(ids[0]).created_at
    assert check(kb, QUERIES) >= 12
    hit = next(h for h in kb.search("refund") if h.article.id == ids[3])
    assert "<mark>" not in hit.snippet and "&lt;here&gt; &amp; &quot;quoted&quot;" in hit.snippet


def test_articles_without_a_stored_text_are_cut_from_their_body(kb: Any) -> None:
    """A database upgraded with ``--sql`` has no stored texts until ``kb reindex``."""
    add_articles(kb)
    with kb.crm.transaction() as ctx:
        ctx.connection.execute(text("DELETE FROM kb_snippet_texts"))
    assert check(kb, QUERIES) >= 12
    assert kb.reindex() == len(ARTICLES)
    with kb.crm.reading() as connection:
        stored = connection.execute(text("SELECT count(*) FROM kb_snippet_texts")).scalar()
    assert stored == len(ARTICLES)
    assert check(kb, QUERIES) >= 12


def test_the_migration_fills_the_texts_of_existing_articles(kb: Any) -> None:
    ids = add_articles(kb)
    kb.crm.downgrade("knowledgebase0002")
    kb.crm.upgrade()
    with kb.crm.reading() as connection:
        rows = connection.execute(
            text("SELECT article_id, text, folded FROM kb_snippet_texts ORDER BY article_id")
        ).all()
    expected = [search.snippet_row(i, kb.get(i).title, kb.get(i).body) for i in ids]
    assert [dict(r._mapping) for r in rows] == expected
    assert (
        expected[1]["folded"] == "退款:请在三十天内申请,我们会尽快处理退款。"
    )  # full-width folded
    assert expected[0]["folded"] is None  # ASCII: lower-cased at search time
    assert check(kb, QUERIES) >= 12
