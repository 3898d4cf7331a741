"""Personal data in the knowledge base (issue 14): marked columns, export, erasure, no writes
for erased or merged customers, merge, timeline and catch-up; on both backends."""

from __future__ import annotations

import getpass
import json
from typing import Any

import pytest
from crmkit_knowledgebase import personal, service
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.plugin import counts
from sqlalchemy import select, update

import crmkit.plugin as ck
from crmkit.plugin import Conflict, metadata

KB_TABLES = [t.articles, t.article_tags, t.revisions, t.votes, t.templates, t.sends]


def populate(kb: Any, customer_id: int) -> None:
    """A reply and an article sent to the customer, and a vote with a comment."""
    kb.add_template("sorry", "Dear {{ customer.name }}, sorry about the parcel to "
                    "{{ customer.address }}.", title="Sorry")  # fmt: skip
    kb.add("Warranty", "Two years on every kettle.", slug="warranty", audience="public",
           status="published")  # fmt: skip
    kb.send(customer_id, template="sorry", channel="email", staff="ann")
    kb.send(customer_id, article="warranty", channel="chat")
    kb.vote("warranty", False, customer_id=customer_id, comment="Li Na: my flat at 12 Elm St")


def stored_personal_values(crm: Any) -> dict[str, list[Any]]:
    with crm.reading() as connection:
        return {
            f"{table.name}.{column.name}": [
                v for (v,) in connection.execute(select(column)) if v not in (None, "")
            ]
            for table in KB_TABLES
            for column in table.columns
            if column.info.get("personal")
        }


def test_the_personal_columns_are_marked() -> None:
    marked = {
        f"{table.name}.{column.name}"
        for table in metadata.tables.values()
        if table.name.startswith("kb_")
        for column in table.columns
        if column.info.get("personal")
    }
    assert marked == {"kb_sends.body", "kb_votes.comment"}


def test_the_export_holds_every_personal_value(kb: Any) -> None:
    crm = kb.crm
    li = crm.customers.add(name="Li Na", address="12 Elm St")
    populate(kb, li.id)
    exported = crm.customers.export(li.id)["plugins"]["knowledgebase"]
    text = json.dumps(exported, ensure_ascii=False)
    values = stored_personal_values(crm)
    assert values["kb_sends.body"] and values["kb_votes.comment"]
    for column, stored in values.items():
        for value in stored:
            assert json.dumps(value, ensure_ascii=False)[1:-1] in text, (column, value)
    assert [s["body"] for s in exported["sends"]] == [
        "Dear Li Na, sorry about the parcel to 12 Elm St.", "Two years on every kettle."]  # fmt: skip
    (vote,) = exported["votes"]
    assert (vote["article_slug"], vote["helpful"], vote["comment"]) == (
        "warranty", False, "Li Na: my flat at 12 Elm St")  # fmt: skip
    bob = crm.customers.add(name="Bob")
    assert "knowledgebase" not in crm.customers.export(bob.id)["plugins"]


def test_erasure_removes_the_personal_values_keeps_the_counts_and_can_be_rerun(kb: Any) -> None:
    crm = kb.crm
    li = crm.customers.add(name="Li Na", address="12 Elm St")
    populate(kb, li.id)
    before = counts(crm)
    crm.customers.erase(li.id)
    assert stored_personal_values(crm) == {"kb_sends.body": [], "kb_votes.comment": []}
    assert counts(crm) == before  # the sends and votes stay, for the statistics
    assert kb.get("warranty").helpful_no == 1
    assert [s.title for s in kb.sends(li.id)] == ["Warranty", "Sorry"]  # not personal
    assert "12 Elm" not in json.dumps(crm.customers.export(li.id))
    # an erasure left partial (as by an older version) is completed by running it again
    with crm.transaction() as ctx:
        ctx.connection.execute(update(t.sends).values(body="Dear Li Na, 12 Elm St"))
    crm.customers.erase(li.id)
    assert stored_personal_values(crm)["kb_sends.body"] == []
    # the hook itself is idempotent
    with crm.transaction() as ctx:
        assert personal.erase(ctx.connection, [li.id]) == {"sends": 0, "votes": 0}
        crm.call("crmkit_erase_personal_data", ctx=ctx, customer=crm.customers.get(li.id))
    assert counts(crm) == before


def test_no_send_or_vote_for_an_erased_or_merged_customer(kb: Any, cli_runner: Any) -> None:
    crm = kb.crm
    kb.add_template("hello", "Hello {{ customer.name }}")
    kb.add("Warranty", "Two years.", slug="warranty", audience="public", status="published")
    gone = crm.customers.add(name="Gone")
    crm.customers.erase(gone.id)
    kept = crm.customers.add(name="Li Na", email="li@example.cn")
    dup = crm.customers.add(name="Li Na", email="li@example.cn")
    crm.customers.merge(kept.id, dup.id)
    before = counts(crm)
    for customer, message in [(gone.id, f"customer {gone.id} was erased"),
                              (dup.id, f"write to customer {kept.id} instead")]:  # fmt: skip
        with pytest.raises(Conflict, match=message):
            kb.send(customer, template="hello")
        with pytest.raises(Conflict, match=message):
            kb.send(customer, article="warranty")
        with pytest.raises(Conflict, match=message):
            kb.vote("warranty", True, customer_id=customer, comment="hi")
        result = cli_runner(["kb", "send", "--customer", str(customer), "--template", "hello"],
                            plugins=["knowledgebase"])  # fmt: skip
        assert result.exit_code == 1 and message in result.output, result.output
    assert counts(crm) == before and kb.get("warranty").helpful_yes == 0
    kb.send(kept.id, template="hello")  # the kept customer takes writes
    kb.vote("warranty", True)  # an anonymous vote is not about anyone


def test_a_merge_moves_the_sends_and_votes(kb: Any) -> None:
    crm = kb.crm
    kept = crm.customers.add(name="Li Na", email="li@example.cn")
    dup = crm.customers.add(name="Li Na", email="li@example.cn")
    populate(kb, dup.id)
    kb.send(kept.id, article="warranty")
    merge = crm.customers.merge(kept.id, dup.id)
    assert merge.moved["knowledgebase"] == {"sends": 2, "votes": 1}
    assert kb.sends(dup.id) == []
    assert [s.title for s in kb.sends(kept.id)] == ["Warranty", "Warranty", "Sorry"]
    exported = crm.customers.export(kept.id)["plugins"]["knowledgebase"]
    assert exported["votes"][0]["comment"] == "Li Na: my flat at 12 Elm St"
    # nothing of the duplicate's left to move: the hook says so
    other = crm.customers.add(name="Other")
    with crm.transaction() as ctx:
        assert personal.merge(ctx.connection, kept.id, other.id) is None


def test_the_timeline_lists_what_was_sent_newest_first(kb: Any) -> None:
    crm = kb.crm
    li = crm.customers.add(name="Li Na", address="12 Elm St")
    populate(kb, li.id)
    crm.interactions.log(li.id, "phone", subject="Called about the parcel")
    (entries,) = crm.call("crmkit_customer_timeline", crm=crm, customer=li, limit=10)
    assert [(e.kind, e.title, e.source) for e in entries] == [
        ("kb_article", f"Article sent: Warranty (chat by python:{getpass.getuser()})", "knowledgebase"),
        ("kb_reply", "Reply sent: Sorry (email by ann)", "knowledgebase"),
    ]  # fmt: skip
    assert entries[1].body == "Dear Li Na, sorry about the parcel to 12 Elm St."
    assert all(isinstance(e, ck.TimelineEntry) and e.at.tzinfo for e in entries)
    assert entries[0].at >= entries[1].at
    (one,) = crm.call("crmkit_customer_timeline", crm=crm, customer=li, limit=1)
    assert [e.kind for e in one] == ["kb_article"]
    # the 360 view merges them with the interactions
    kinds = [getattr(item, "kind", "interaction") for item in crm.customers.view(li.id).timeline]
    assert kinds == ["interaction", "kb_article", "kb_reply"]


def test_catch_up_completes_merges_made_while_the_plugin_was_off(
    make_crm: Any, cli_runner: Any
) -> None:
    with_kb = make_crm(plugins=["knowledgebase"])
    kb = service(with_kb)
    kept = with_kb.customers.add(name="Li Na", email="li@example.cn")
    dup = with_kb.customers.add(name="Li Na", email="li@example.cn")
    populate(kb, dup.id)
    without = make_crm(plugins=[])  # installed but not enabled: it does not take part
    merge = without.customers.merge(kept.id, dup.id)
    assert "knowledgebase" not in merge.moved
    assert len(kb.sends(dup.id)) == 2
    # the next CRM with the plugin catches up before its first write
    again = make_crm(plugins=["knowledgebase"])
    again.customers.add(name="Someone")
    kb = service(again)
    assert kb.sends(dup.id) == [] and len(kb.sends(kept.id)) == 2
    exported = again.customers.export(kept.id)["plugins"]["knowledgebase"]
    assert exported["votes"][0]["comment"] == "Li Na: my flat at 12 Elm St"
    # on demand: safe to repeat, nothing left to do
    result = cli_runner(["plugins", "catch-up", "knowledgebase"], plugins=["knowledgebase"])
    assert result.exit_code == 0, result.output
    assert "nothing needed reconciling" in result.output
    # an erasure left partial is completed too
    with again.transaction() as ctx:
        ctx.connection.execute(update(t.sends).values(body="Dear Li Na"))
    gone = again.customers.add(name="Gone")
    with again.transaction() as ctx:
        ctx.connection.execute(update(t.sends).values(customer_id=gone.id))
    again.customers.erase(gone.id)
    with again.transaction() as ctx:
        ctx.connection.execute(update(t.sends).values(body="Dear Li Na"))
        said = personal.catch_up(ctx.connection)
    assert said == "erased 2 send text(s) and 0 vote(s) of erased customers"
    assert stored_personal_values(again)["kb_sends.body"] == []
