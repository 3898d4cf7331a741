"""The plugin alone on the core, with the complaints plugin, its schema and its demo data."""

from __future__ import annotations

import random
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crmkit_knowledgebase import plugin, service

from crmkit.plugin import metadata


def test_works_alone_on_the_core(make_crm: Any) -> None:
    crm = make_crm(plugins=["knowledgebase"])
    assert crm.plugin_names == ["knowledgebase"]
    assert not crm.has_hook("crmkit_complaints_propose_replies")  # nobody declares it
    kb = service(crm)
    kb.add("退款政策", "收到商品后 30 天内可以申请退款。", audience="public", status="published")
    assert [h.article.title for h in kb.search("退款")] == ["退款政策"]


def test_proposes_replies_to_complaints_when_both_are_enabled(make_crm: Any) -> None:
    pytest.importorskip("crmkit_complaints")
    from crmkit_complaints.service import service as complaints

    crm = make_crm(plugins=["knowledgebase", "complaints"])
    kb = service(crm)
    from crmkit_knowledgebase.transfer import import_dir

    import_dir(kb, plugin.SAMPLES)
    ann = crm.customers.add(name="Ann <Lee>")
    c = complaints(crm).log(ann.id, channel="email", category="billing",
                            description="I was charged twice for one order, please fix it")  # fmt: skip
    proposals = complaints(crm).propose(c.id)
    assert 1 <= len(proposals) <= 3
    best = proposals[0]
    assert best["source"] == "knowledgebase:template:double-charge"
    assert best["body"].startswith("Dear Ann <Lee>,")  # rendered for the complaint's customer
    assert all(0 < p["score"] < 1 for p in proposals)
    assert [p["score"] for p in proposals] == sorted((p["score"] for p in proposals), reverse=True)
    # only public articles are proposed as replies to customers
    for p in proposals:
        kind, ref = p["source"].split(":")[1:]
        assert kind == "template" or kb.get(ref).audience == "public"
    # Chinese complaints get Chinese templates
    c2 = complaints(crm).log(ann.id, channel="web", category="delivery",
                             description="快递一个星期还没到，物流也不更新")  # fmt: skip
    assert complaints(crm).propose(c2.id)[0]["source"] == "knowledgebase:template:delivery-delay-zh"
    # complaints works without the knowledge base
    alone = make_crm(plugins=["complaints"])
    bob = alone.customers.add(name="Bob")
    c3 = complaints(alone).log(bob.id, channel="web", category="billing", description="twice")
    assert complaints(alone).propose(c3.id) is None


def test_migration_matches_tables(make_crm: Any) -> None:
    crm = make_crm(plugins=["knowledgebase"])
    ours = {t.name for t in metadata.sorted_tables if t.name.startswith("kb_")}

    def only_ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in ours

    with crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": only_ours, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


def test_demo_data(make_crm: Any) -> None:
    crm = make_crm(plugins=["knowledgebase"])
    for n in range(12):
        crm.customers.add(name=f"Customer {n}")
    line = plugin.crmkit_generate_demo_data(crm=crm, rng=random.Random(3))
    assert line.startswith("knowledgebase: 23 articles, 21 reply templates, ")
    sent = int(line.split(", ")[-1].split()[0])
    assert plugin.counts(crm)["sends"] == sent > 0
    assert sum(a.views for a in service(crm).list(limit=None)) > 0
