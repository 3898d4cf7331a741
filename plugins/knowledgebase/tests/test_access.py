"""Permissions of the knowledge base per default role (through the Python API) and the
audit entries of its writes, on both backends."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from crmkit_knowledgebase import service
from crmkit_knowledgebase.plugin import SAMPLES
from crmkit_knowledgebase.transfer import import_dir

from crmkit.plugin import Forbidden, NotFound

ROLES = ("sales_rep", "sales_manager", "cost_accounting", "technical_support",
         "complaint_handler", "manager", "admin")  # fmt: skip
WRITERS = {"technical_support", "complaint_handler", "manager", "admin"}
PUBLISHERS = {"technical_support", "manager", "admin"}


@pytest.fixture
def team(make_crm: Any) -> Any:
    """A CRM with the knowledge base, one staff member per default role (``<role>_1``),
    a second sales rep, and a published public article."""
    crm = make_crm(plugins=["knowledgebase"])
    crm.staff.add("sales_manager_1", roles=["sales_manager"])
    for role in ROLES:
        if role != "sales_manager":
            crm.staff.add(f"{role}_1", roles=[role], manager="sales_manager_1")
    crm.staff.add("other_rep", roles=["sales_rep"])
    kb = service(crm)
    kb.add("Refund policy", "Refunds within 14 days.", slug="refund-policy",
           audience="public", status="published")  # fmt: skip
    kb.add("Internal escalation", "Call the duty manager.", slug="escalation")
    kb.add_template("thanks", "Thank you, {{ customer.name }}.", title="Thanks")
    return crm


def as_role(crm: Any, role: str) -> Any:
    return crm.acting_as(crm.staff.actor(f"{role}_1"))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_and_only_service_staff_write(team: Any, role: str) -> None:
    kb = service(team)
    with as_role(team, role):
        assert [h.article.slug for h in kb.search("refund")] == ["refund-policy"]
        assert kb.suggest("I want a refund")[0].ref == "refund-policy"
        assert kb.get("escalation").title == "Internal escalation"
        assert [r.number for r in kb.revisions("refund-policy")] == [1]
        if role in WRITERS:
            draft = kb.add(f"Draft by {role}", "text")
            assert draft.created_by == f"{role}_1"
            edited = kb.edit(draft.id, body="more text")
            assert (edited.revision, edited.updated_by) == (2, f"{role}_1")
        else:
            with pytest.raises(Forbidden) as refused:
                kb.add(f"Draft by {role}", "text")
            assert refused.value.permission == "knowledgebase.write"
            with pytest.raises(Forbidden):
                kb.edit("escalation", body="changed")
            with pytest.raises(Forbidden):
                kb.add_template("x", "x")
    assert service(team).get("escalation").revision == 1


@pytest.mark.parametrize("role", sorted(WRITERS))
def test_publishing_needs_the_publish_permission(team: Any, role: str) -> None:
    kb = service(team)
    with as_role(team, role):
        if role in PUBLISHERS:
            kb.edit("escalation", status="published")
            kb.edit("refund-policy", body="Refunds within 30 days.")
            kb.add("Public now", "x", status="published")
        else:
            for attempt in (
                lambda: kb.edit("escalation", status="published"),  # publish
                lambda: kb.edit("refund-policy", body="Refunds never."),  # change published
                lambda: kb.edit("refund-policy", status="archived"),  # withdraw
                lambda: kb.add("Public now", "x", status="published"),
            ):
                with pytest.raises(Forbidden) as refused:
                    attempt()
                assert refused.value.permission == "knowledgebase.publish"
            assert kb.get("refund-policy").revision == 1
            assert kb.get("escalation").status == "draft"


def test_sends_are_scoped_to_the_customers_a_role_may_see(team: Any) -> None:
    kb = service(team)
    mine = team.customers.add(name="Mine", owner="sales_rep_1")
    theirs = team.customers.add(name="Theirs", owner="other_rep")
    with as_role(team, "sales_rep"):
        sent = kb.send(mine.id, template="thanks", channel="email")
        assert (sent.body, sent.staff) == ("Thank you, Mine.", "sales_rep_1")
        with pytest.raises(NotFound):  # another rep's customer looks like no customer
            kb.send(theirs.id, template="thanks")
        with pytest.raises(NotFound):
            kb.render("thanks", customer_id=theirs.id)
        with pytest.raises(NotFound):
            kb.sends(theirs.id)
        with pytest.raises(Forbidden):  # the rep may not send as someone else
            kb.send(mine.id, template="thanks", staff="other_rep")
    with as_role(team, "cost_accounting"), pytest.raises(Forbidden):
        kb.send(mine.id, template="thanks")
    with as_role(team, "complaint_handler"):
        assert kb.send(theirs.id, article="refund-policy").staff == "complaint_handler_1"
    assert [s.customer_id for s in kb.sends(theirs.id)] == [theirs.id]


def test_reindex_is_for_managers(team: Any) -> None:
    kb = service(team)
    with as_role(team, "technical_support"), pytest.raises(Forbidden):
        kb.reindex()
    with as_role(team, "manager"):
        assert kb.reindex() == 2


def test_the_public_search_needs_no_permission_and_shows_only_public_published(
    team: Any,
) -> None:
    kb = service(team)
    kb.add("Refund form (draft)", "refund", audience="public")
    kb.add("Refund tricks", "refund", status="published")  # internal
    with team.acting_as(crmkit_anonymous()):
        with pytest.raises(Forbidden):
            kb.search("refund")
        assert [h.article.slug for h in kb.public_search("refund")] == ["refund-policy"]


def crmkit_anonymous() -> Any:
    from crmkit.plugin import Actor

    return Actor.anonymous()


def audit(crm: Any, action: str) -> list[Any]:
    """The entries of ``action`` (exact), newest first."""
    if hasattr(crm, "audit_log"):  # the core's reader (crmkit audit list)
        return [e for e in crm.audit_log.list(action=action) if e.action == action]
    table = sa.Table("audit_log", sa.MetaData(), autoload_with=crm.engine)
    with crm.reading() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.action == action).order_by(table.c.id.desc())
        )
        return [SimpleNamespace(**r._mapping) for r in rows]


def test_every_write_is_audited_with_its_actor(team: Any) -> None:
    kb = service(team)
    customer = team.customers.add(name="Li Na", owner="sales_rep_1")
    with as_role(team, "technical_support"):
        article = kb.add("Delivery times", "Two days.", tags=["delivery"])
        kb.edit(article.id, body="Three days.", title="Delivery")
        kb.edit(article.id, body="Three days.")  # no change: no revision, no entry
        kb.edit_template("thanks", body="Thanks, {{ customer.name }}!")
        kb.send(customer.id, template="thanks", channel="email")
        kb.vote(article.id, True, customer_id=customer.id, comment="clear")
    (created,) = audit(team, "kb_article.create")[:1]
    assert (created.actor, created.entity, created.entity_id) == (
        "technical_support_1", "kb_article", str(article.id))  # fmt: skip
    assert created.changes["title"] == [None, "Delivery times"]
    assert created.changes["revision"] == [None, 1]
    (updated,) = audit(team, "kb_article.update")
    assert updated.changes == {
        "title": ["Delivery times", "Delivery"],
        "body": ["revision 1", "revision 2"],
        "revision": [1, 2],
    }
    (template,) = audit(team, "kb_template.update")
    assert template.changes == {
        "body": ["Thank you, {{ customer.name }}.", "Thanks, {{ customer.name }}!"]
    }
    (send,) = audit(team, "kb_send.create")
    assert (send.customer_id, send.changes["kind"]) == (customer.id, [None, "template"])
    (vote,) = audit(team, "kb_article.vote")
    assert vote.changes["helpful_yes"] == [0, 1] and vote.customer_id == customer.id
    # nothing fell through to the safety net's anonymous "write" entries
    assert audit(team, "write") == []


def test_an_import_records_one_entry_with_its_counts(team: Any, tmp_path: Path) -> None:
    kb = service(team)
    with as_role(team, "manager"):
        counts = import_dir(kb, SAMPLES)
    entries = audit(team, "kb.import")
    assert len(entries) == 1
    assert entries[0].actor == "manager_1"
    assert entries[0].changes["articles_created"] == [None, counts["articles_created"]]
    assert counts["articles_created"] > 20
    assert len(audit(team, "kb_article.create")) == 2  # the fixture's two, none per file
    with as_role(team, "cost_accounting"), pytest.raises(Forbidden):
        import_dir(kb, SAMPLES)
