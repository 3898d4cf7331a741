"""A query ranks at most ``search.CANDIDATES`` of its matches, the newest (highest ids) that
pass its filters; the rule is the same on both backends (every test here runs on both)."""

from __future__ import annotations

from typing import Any

import pytest
from crmkit_knowledgebase import search
from crmkit_knowledgebase.text import parse_query


def ranked(kb: Any, query: str, candidates: int | None, **kw: Any) -> list[int]:
    with kb.crm.reading() as connection:
        found = search.search(connection, parse_query(query), limit=1000, candidates=candidates,
                              **kw)  # fmt: skip
    return [i for i, _ in found]


def bounded_rule(kb: Any, query: str, n: int, **kw: Any) -> list[int]:
    """The rule spelled out: every match ranked, then only the n newest kept, in rank order."""
    everything = ranked(kb, query, None, **kw)
    newest = set(sorted(everything)[-n:])
    return [i for i in everything if i in newest]


@pytest.fixture
def widgets(kb: Any) -> dict[str, int]:
    """Eight articles with the word "widget"; the oldest ranks best (the word in its title)."""
    ids = {"manual": kb.add("Widget manual", "widget widget widget", slug="manual").id}
    for i in range(7):
        status = "published" if i % 2 else "draft"
        ids[f"n{i}"] = kb.add(f"Note {i}", f"a widget note {i}", slug=f"n{i}", status=status).id
    kb.add("Unrelated", "nothing here", slug="other")
    return ids


def test_a_broad_query_ranks_only_its_newest_matches(kb: Any, widgets: dict[str, int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    everything = ranked(kb, "widget", None)
    assert len(everything) == 8 and everything[0] == widgets["manual"]
    monkeypatch.setattr(search, "CANDIDATES", 4)
    found = [h.article.slug for h in kb.search("widget")]
    assert sorted(found) == ["n3", "n4", "n5", "n6"]  # the 4 newest: the old manual is not one
    assert [widgets[s] for s in found] == bounded_rule(kb, "widget", 4)
    # pages stay inside the candidates
    assert [h.article.slug for h in kb.search("widget", limit=3)] == found[:3]
    assert [h.article.slug for h in kb.search("widget", limit=3, offset=3)] == found[3:]
    assert kb.search("widget", offset=4) == []
    # as many candidates as matches (or more): the full ranking
    monkeypatch.setattr(search, "CANDIDATES", 8)
    assert [widgets[h.article.slug] for h in kb.search("widget")] == everything


def test_filters_apply_before_the_newest_are_picked(kb: Any, widgets: dict[str, int]) -> None:
    published = ranked(kb, "widget", None, status="published")
    assert sorted(published) == sorted(widgets[f"n{i}"] for i in (1, 3, 5))
    assert ranked(kb, "widget", 2, status="published") == bounded_rule(
        kb, "widget", 2, status="published"
    )
    assert sorted(ranked(kb, "widget", 2, status="published")) == [widgets["n3"], widgets["n5"]]
    assert ranked(kb, "widget", 2, tag="none") == []


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 40])
def test_the_rule_holds_wherever_the_matches_lie(kb: Any, n: int) -> None:
    """Matches among many other articles, old and new, dense and sparse: PostgreSQL finds the
    newest in widening slices of ids (the first 8n ids wide), SQLite in one statement."""
    for i in range(60):
        words = ["gadget"] if i < 5 or i % 9 == 0 or i > 56 else ["other"]
        kb.add(f"Article {i}", " ".join(words * (1 + i % 3)), slug=f"a{i}")
    for query in ("gadget", "gadg", "other", "gadget other"):
        assert ranked(kb, query, n) == bounded_rule(kb, query, n), query
        assert ranked(kb, query, n, mode="any") == bounded_rule(kb, query, n, mode="any")


def test_chinese_and_phrases_follow_the_same_rule(kb: Any) -> None:
    for i in range(12):
        kb.add(f"第{i}篇", "退款政策说明" if i % 2 else "退款时间", slug=f"z{i}")
    for query in ("退款", "退款政策", "政策说", "退"):
        assert ranked(kb, query, 3) == bounded_rule(kb, query, 3), query
        assert len(ranked(kb, query, 3)) == 3


def test_the_search_leaves_the_connection_settings_as_they_were(kb: Any,
                                                                widgets: dict[str, int]) -> None:  # fmt: skip
    """PostgreSQL: the candidate search turns index scans off for its own statements only."""
    with kb.crm.transaction() as ctx:
        connection = ctx.connection
        search.search(connection, parse_query("widget"), candidates=2)
        if connection.dialect.name == "postgresql":
            setting = connection.exec_driver_sql("SHOW enable_indexscan").scalar()
            assert setting == "on"
