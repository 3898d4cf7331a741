"""The plugin alone on the core, its hook, with the complaints plugin, its schema, its demo data."""

from __future__ import annotations

import datetime as dt
import json
import random
from importlib.metadata import entry_points
from typing import Any

import attrs
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crmkit_knowledgebase import hookspecs, plugin, service
from crmkit_knowledgebase.transfer import import_dir

from crmkit.plugin import metadata


def test_works_alone_on_the_core(make_crm: Any) -> None:
    crm = make_crm(plugins=["knowledgebase"])
    assert crm.plugin_names == ["knowledgebase"]
    assert not crm.has_hook("crmkit_complaints_reply_proposals")  # nobody declares it
    kb = service(crm)
    kb.add("退款政策", "收到商品后 30 天内可以申请退款。", audience="public", status="published")
    assert [h.article.title for h in kb.search("退款")] == ["退款政策"]


def test_publishes_the_template_variables_hook(make_crm: Any, complaint_variables: type) -> None:
    assert plugin.crmkit_register_hookspecs() is hookspecs
    spec = hookspecs.crmkit_knowledgebase_register_template_variables
    for section in ("When:", "Transaction:", "Returns:", "Example::"):
        assert section in (spec.__doc__ or ""), section
    alone = make_crm(plugins=["knowledgebase"])
    assert alone.hook.crmkit_knowledgebase_register_template_variables.spec is not None
    assert not alone.has_hook("crmkit_knowledgebase_register_template_variables")
    both = make_crm(plugins=["knowledgebase", complaint_variables])
    assert both.has_hook("crmkit_knowledgebase_register_template_variables")
    assert set(service(both).template_variables()) == {"complaint"}


@attrs.frozen
class Facts:
    """A complaint as a complaints plugin passes it (attrs, frozen)."""

    id: int
    customer_id: int
    category: str
    channel: str
    description: str
    tracking_code: str
    received_at: dt.datetime


def test_reply_proposals_read_the_complaint_generically(
    make_crm: Any, complaint_variables: type
) -> None:
    """The proposals hook, called as the complaints plugin calls it, without that plugin."""
    crm = make_crm(plugins=["knowledgebase", complaint_variables])
    kb = service(crm)
    import_dir(kb, plugin.SAMPLES)
    import_dir(kb, plugin.COMPLAINT_SAMPLES)
    kb.add_template("case-code", "Dear {{ customer.name }}, case {{ complaint.tracking_code }} "
                    "({{ complaint.category }}) is with our billing team.",
                    triggers=["charged twice"])  # fmt: skip
    ann = crm.customers.add(name="Ann <Lee>")
    at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    facts = Facts(3, ann.id, "billing", "email", "charged twice", "C-3", at)
    text = "I was charged twice for one order, please fix it"
    proposals = plugin.crmkit_complaints_reply_proposals(crm=crm, complaint=facts, text=text)
    assert 1 <= len(proposals) <= 3
    by_source = {p["source"]: p["body"] for p in proposals}
    assert by_source["knowledgebase:template:case-code"] == (
        "Dear Ann <Lee>, case C-3 (billing) is with our billing team.")  # fmt: skip
    assert by_source["knowledgebase:template:double-charge"].startswith("Dear Ann <Lee>,")
    # a message without words proposes nothing (instead of failing the complaint's page)
    assert plugin.crmkit_complaints_reply_proposals(crm=crm, complaint=facts, text="?!") == []
    # a template that cannot render for this complaint is left out, the others stay
    kb.add_template("needs-code", "{{ complaint.tracking_code }}", triggers=["charged twice"])
    partial = {"id": 4, "customer_id": ann.id, "category": "billing"}
    sources = [p["source"] for p in plugin.crmkit_complaints_reply_proposals(
        crm=crm, complaint=partial, text=text)]  # fmt: skip
    assert "knowledgebase:template:needs-code" not in sources and sources


def _installed(name: str) -> bool:
    return name in {ep.name for ep in entry_points(group="crmkit")}


def test_proposes_replies_to_complaints_when_both_are_enabled(
    make_crm: Any, cli_runner: Any
) -> None:
    if not _installed("complaints"):
        pytest.skip("the complaints plugin is not installed")
    both = ["knowledgebase", "complaints"]
    crm = make_crm(plugins=both)
    kb = service(crm)
    import_dir(kb, plugin.SAMPLES)
    assert import_dir(kb, plugin.COMPLAINT_SAMPLES)["templates_created"] == 1
    kb.add_template("case-code", "Case {{ complaint.tracking_code }} ({{ complaint.category }}, "
                    "{{ complaint.stage }})", triggers=["charged twice"])  # fmt: skip
    ann = crm.customers.add(name="Ann <Lee>")

    def run(*args: str) -> Any:
        result = cli_runner(["complaints", *args, "--format", "json"], plugins=both)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    (c,) = run("log", "--customer", str(ann.id), "--channel", "email", "--category", "billing",
               "--description", "I was charged twice for one order, please fix it")  # fmt: skip
    proposals = run("propose", str(c["id"]))
    assert 1 <= len(proposals) <= 3
    by_source = {p["source"]: p["body"] for p in proposals}
    assert by_source["knowledgebase:template:case-code"] == (
        f"Case {c['tracking_code']} (billing, received)")  # fmt: skip
    double = by_source["knowledgebase:template:double-charge"]
    assert double.startswith("Dear Ann <Lee>,")  # rendered for the complaint's customer
    assert all(0 < p["score"] < 1 for p in proposals)
    assert [p["score"] for p in proposals] == sorted((p["score"] for p in proposals), reverse=True)
    # only public articles are proposed as replies to customers
    for p in proposals:
        kind, ref = p["source"].split(":")[1:]
        assert kind == "template" or kb.get(ref).audience == "public"
    # Chinese complaints get Chinese templates
    (c2,) = run("log", "--customer", str(ann.id), "--channel", "web", "--category", "delivery",
                "--description", "快递一个星期还没到，物流也不更新")  # fmt: skip
    assert run("propose", str(c2["id"]))[0]["source"] == "knowledgebase:template:delivery-delay-zh"
    # the complaint-ack sample renders the complaints plugin's fields
    assert "complaint" in kb.template_variables()
    assert c["tracking_code"] in kb.render("complaint-ack", complaint={
        "customer_id": ann.id, "category": "billing", "tracking_code": c["tracking_code"]})  # fmt: skip


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


@pytest.mark.parametrize(("with_complaint", "templates"), [(False, 20), (True, 21)])
def test_demo_data(
    make_crm: Any, complaint_variables: type, with_complaint: bool, templates: int
) -> None:
    """The complaint-ack sample is added only when a plugin contributes ``complaint``."""
    crm = make_crm(plugins=["knowledgebase", *([complaint_variables] if with_complaint else [])])
    for n in range(12):
        crm.customers.add(name=f"Customer {n}")
    line = plugin.crmkit_generate_demo_data(crm=crm, rng=random.Random(3))
    assert line.startswith(f"knowledgebase: 23 articles, {templates} reply templates, ")
    sent = int(line.split(", ")[-1].split()[0])
    assert plugin.counts(crm)["sends"] == sent > 0
    assert sum(a.views for a in service(crm).list(limit=None)) > 0
