"""Articles: revisions (list, diff, restore), views, votes, bad input that changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from crmkit_knowledgebase.plugin import counts

from crmkit.plugin import NotFound, ValidationError


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_every_edit_is_a_revision_that_can_be_listed_compared_and_restored(kb: Any) -> None:
    a = kb.add("Refund policy", "Refunds within 14 days.\n", category="billing",
               tags=["refund"], audience="public", status="draft", author="ann")  # fmt: skip
    assert (a.slug, a.revision, a.created_by) == ("refund-policy", 1, "ann")
    kb.edit(a.slug, body="Refunds within 30 days.\n", author="ben", message="longer window",
            now=at(2026, 5, 1))  # fmt: skip
    kb.edit(a.id, status="published", tags=["refund", "退款"], author="cy")
    # an edit that changes nothing is not a revision
    assert kb.edit(a.id, status="published", author="dan").revision == 3
    history = kb.revisions(a.slug)
    assert [(r.number, r.author) for r in history] == [(1, "ann"), (2, "ben"), (3, "cy")]
    assert history[1].message == "longer window" and history[1].at == at(2026, 5, 1)
    assert history[2].message == "changed tags, status"  # default message: what changed
    assert history[0].body == "Refunds within 14 days.\n" and history[0].status == "draft"

    d = kb.diff(a.slug, 1, 2)
    assert "--- refund-policy@1\n+++ refund-policy@2\n" in d
    assert "-Refunds within 14 days.\n+Refunds within 30 days.\n" in d
    last = kb.diff(a.slug)  # default: the last change
    assert '-status = "draft"' in last and '+status = "published"' in last
    assert '+tags = ["refund", "退款"]' in last and "14 days" not in last
    assert kb.diff(a.slug, 2, 2) == ""

    restored = kb.restore(a.slug, 1, author="ann")
    assert restored.revision == 4 and restored.body == "Refunds within 14 days.\n"
    assert (restored.status, restored.tags) == ("draft", ["refund"])
    assert kb.revisions(a.id)[-1].message == "restored revision 1"
    # the tag table and the search index follow the restore
    assert [x.slug for x in kb.list(tag="refund")] == ["refund-policy"]
    assert kb.list(tag="退款") == []
    assert [h.article.slug for h in kb.search("14")] == ["refund-policy"]
    assert kb.search("30") == []


def test_slugs_are_unique_and_generated_from_titles(kb: Any) -> None:
    first = kb.add("Delivery times")
    second = kb.add("Delivery times")
    chinese = kb.add("退款政策")
    assert (first.slug, second.slug, chinese.slug) == ("delivery-times", "delivery-times-2",
                                                      "退款政策")  # fmt: skip
    assert kb.get("退款政策").id == chinese.id
    batch = kb.add_many([{"title": "Delivery times"}, {"title": "delivery_times"},
                         {"title": "Given", "slug": "delivery-times-4"}, {"title": "Q&A"}])  # fmt: skip
    assert [a.slug for a in batch] == ["delivery-times-3", "delivery-times-5",
                                       "delivery-times-4", "q-a"]  # fmt: skip
    with pytest.raises(ValidationError, match="slug 'delivery-times' already exists"):
        kb.edit(second.id, slug="delivery-times")
    assert kb.get(second.id).slug == "delivery-times-2"


def test_views_and_votes(kb: Any, make_crm: Any) -> None:
    crm = kb.crm
    ann = crm.customers.add(name="Ann")
    a = kb.add("Reset your password", audience="public", status="published")
    for _ in range(3):
        kb.view(a.slug)
    assert kb.get(a.id).views == 3  # get does not count
    assert kb.view(a.id, count=4).views == 7  # imported figures
    with pytest.raises(ValidationError, match="view count must be a whole number"):
        kb.view(a.id, count=0)
    assert kb.get(a.id).views == 7
    kb.vote(a.id, True, customer_id=ann.id, comment="clear")
    kb.vote(a.id, True)
    got = kb.vote(a.slug, False, comment="too short")
    assert (got.views, got.helpful_yes, got.helpful_no) == (7, 2, 1)
    exported = crm.customers.export(ann.id)["plugins"]["knowledgebase"]
    assert [(v["helpful"], v["comment"]) for v in exported["votes"]] == [(True, "clear")]
    crm.customers.erase(ann.id)
    assert counts(crm)["votes"] == 3 and kb.get(a.id).helpful_yes == 2  # counts kept
    assert crm.customers.export(ann.id)["plugins"].get("knowledgebase") is None


def test_bad_input_is_refused_and_changes_nothing(kb: Any) -> None:
    a = kb.add("Warranty", "Two years.", audience="public", status="published")
    before = counts(kb.crm)
    with pytest.raises(NotFound, match="article 'nope' not found; list articles with"):
        kb.edit("nope", title="x")
    with pytest.raises(NotFound, match="article 999 not found"):
        kb.vote(999, True)
    with pytest.raises(NotFound, match="has no revision 7; it has revisions 1 to 1"):
        kb.restore(a.id, 7)
    with pytest.raises(ValidationError, match="article status 'live' is not valid; use one of"):
        kb.edit(a.id, status="live")
    with pytest.raises(ValidationError, match="audience 'everyone' is not valid"):
        kb.add("Other", audience="everyone")
    with pytest.raises(ValidationError, match="title must not be empty"):
        kb.edit(a.id, title="  ")
    with pytest.raises(ValidationError, match=r"unknown article field\(s\) \['colour'\]"):
        kb.edit(a.id, colour="red")
    with pytest.raises(ValidationError, match="article 2 .*title must not be empty"):
        kb.add_many([{"title": "Fine"}, {"title": ""}])  # the valid one is not stored either
    with pytest.raises(NotFound):
        kb.vote(a.id, True, customer_id=12345)
    assert counts(kb.crm) == before
    assert kb.get(a.id).revision == 1 and kb.get(a.id).helpful_yes == 0
