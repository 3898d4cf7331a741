"""The four shipped plugins work in every combination: one scenario over all 16 subsets.

Each run opens a CRM with one subset enabled, adds records through the core, builds the demo
through the CLI, checks the customer 360 view, personal-data export and erasure, the plugin
list, one read command per enabled plugin, and that disabled plugins add no commands.
All 16 subsets run on SQLite; none and all four also on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli

PLUGINS = ("loyalty", "complaints", "knowledgebase", "segmentation")
COMMAND_GROUPS = {
    "loyalty": "loyalty",
    "complaints": "complaints",
    "knowledgebase": "kb",
    "segmentation": "segment",
}
SUBSETS = [s for n in range(len(PLUGINS) + 1) for s in itertools.combinations(PLUGINS, n)]
# every subset on SQLite; no plugin and all four on PostgreSQL too (all 32 take over a minute)
CASES = [
    pytest.param(subset, backend, id=f"{backend}-{'+'.join(subset) or 'none'}")
    for backend in ("sqlite", "postgresql")
    for subset in SUBSETS
    if backend == "sqlite" or len(subset) in (0, len(PLUGINS))
]
UTC = dt.UTC


def _plugin_hooks(name: str) -> set[str]:
    """Hook names a shipped plugin implements (read from its entry-point module)."""
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="crmkit") if e.name == name]
    module = ep.load()
    return {n for n in dir(module) if n.startswith("crmkit_")}


def _invoke(config: Path, subset: tuple[str, ...], *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["--config", str(config), *args], obj=CliState(plugins=list(subset))
    )
    assert result.exit_code == 0, f"crmkit {' '.join(args)}:\n{result.output}"
    return result.output


def _prepare_plugin_data(crm: crmkit.CRM, subset: tuple[str, ...], guest_id: int) -> None:
    """Give the guest something in every enabled plugin, through each plugin's service."""
    if "loyalty" in subset:
        from crmkit_loyalty.service import loyalty

        loyalty(crm).enrol(guest_id, program="retail-club")
    if "complaints" in subset:
        from crmkit_complaints.service import service as complaints

        complaints(crm).log(
            guest_id,
            channel="email",
            category="delivery",
            description="The parcel for Ada Guest arrived late",
            assignee="ann",
            at=dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        )
    if "knowledgebase" in subset:
        from crmkit_knowledgebase.service import service as kb

        kb(crm).send(guest_id, article="refund-policy", channel="email", staff="ann")


@pytest.mark.parametrize(("subset", "crmkit_backend"), CASES, indirect=["crmkit_backend"])
def test_plugins_work_in_every_combination(subset, database_url, tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    monkeypatch.delenv("CRMKIT_CONFIG", raising=False)
    monkeypatch.delenv("CRMKIT_DATABASE_URL", raising=False)
    config = tmp_path / "crmkit.toml"
    config.write_text(f"database = {json.dumps(database_url)}\nplugins = {json.dumps(subset)}\n")

    # open with the subset enabled and upgrade; staff through the core
    crm = crmkit.open(config, upgrade=True)
    assert set(crm.plugin_names) == set(subset)
    crm.staff.add("ann", "Ann Agent", roles=["complaint_handler", "sales_rep"])

    # the demo through the CLI (it needs a database without customers, so it runs first)
    demo = _invoke(config, subset, "demo", "--customers", "50")
    assert "customers: 50" in demo
    for name in PLUGINS:
        gives_demo = "crmkit_generate_demo_data" in _plugin_hooks(name)
        assert (f"  {name}: " in demo) == (name in subset and gives_demo), demo

    # customers, orders and interactions through the core
    guest = crm.customers.add(name="Ada Guest", email="ada@example.com", external_id="G-1")
    other = crm.customers.add(name="Bo Other", external_id="G-2")
    _prepare_plugin_data(crm, subset, guest.id)
    crm.orders.add_many(
        [
            {"customer_id": guest.id, "amount": "120.00", "external_id": "O-1",
             "occurred_at": dt.datetime(2026, 2, 10, 12, 0, tzinfo=UTC)},
            {"customer_id": guest.id, "amount": "80.50", "external_id": "O-2",
             "occurred_at": dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)},
            {"customer_id": other.id, "amount": "15.00", "external_id": "O-3",
             "occurred_at": dt.datetime(2026, 3, 1, 13, 0, tzinfo=UTC)},
        ]
    )  # fmt: skip
    crm.interactions.log(
        guest.id, "phone", occurred_at=dt.datetime(2026, 3, 3, 10, tzinfo=UTC), subject="Hello"
    )

    # the 360 view: core parts, and one section exactly for each enabled plugin with data
    view = crm.customers.view(guest.id)
    assert view.totals["paid_orders"] == 2
    assert view.totals["revenue"] == Decimal("200.50")
    interactions = {i.subject for i in view.interactions}
    assert "Hello" in interactions
    assert ("Complaint: delivery" in interactions) == ("complaints" in subset)
    with_sections = {n for n in subset if "crmkit_customer_360_section" in _plugin_hooks(n)}
    assert {s.name for s in view.sections} == with_sections
    sections = {s.name: s for s in view.sections}
    if "loyalty" in subset:
        (membership,) = sections["loyalty"].data["memberships"]
        # retail club: 50 sign-up points, 1 point per 1.00 rounded down on each order
        assert (membership["program"], membership["balance"]) == ("retail-club", 50 + 120 + 80)
    if "complaints" in subset:
        (complaint,) = sections["complaints"].data["complaints"]
        assert complaint["category"] == "delivery" and complaint["assignee"] == "ann"
    if "knowledgebase" in subset:
        (sent,) = sections["knowledgebase"].data["sends"]
        assert sent["kind"] == "article" and sent["channel"] == "email"
    for section in view.sections:
        assert section.template is None or crm.templates.get_template(section.template)
    # demo customers' views build too, with enabled plugins' sections only (a sample: the
    # segmentation section fits its CLV model on every view, ~0.2 s each)
    seen: set[str] = set()
    for customer in [*crm.customers.list(limit=4), other]:
        seen |= {s.name for s in crm.customers.view(customer.id, limit=5).sections}
    assert seen <= set(subset)

    # personal data: each enabled plugin contributes to the export, then erases its part
    if "loyalty" in subset:
        from crmkit_loyalty.service import loyalty

        loyalty(crm).adjust(guest.id, 5, reason="goodwill for Ada's birthday", staff="ann")
    exported = crm.customers.export(guest.id)
    assert exported["customer"]["name"] == "Ada Guest"
    assert {o["external_id"] for o in exported["orders"]} == {"O-1", "O-2"}
    given = {"loyalty", "complaints", "knowledgebase"} & set(subset)  # the guest has data there
    assert given <= set(exported["plugins"]) <= set(subset)
    json.dumps(exported)  # JSON-ready
    crm.customers.erase(guest.id, actor="ann")
    after = crm.customers.export(guest.id)
    assert after["customer"]["name"] == f"erased customer {guest.id}"
    assert after["customer"]["email"] is None and after["interactions"] == []
    text = json.dumps(after, ensure_ascii=False)
    assert "goodwill" not in text and "Ada" not in text and "arrived late" not in text
    if "loyalty" in subset:
        (membership,) = after["plugins"]["loyalty"]["memberships"]
        assert membership["balance"] == 255  # figures stay, the reason goes
    if "complaints" in subset:
        (complaint,) = after["plugins"]["complaints"]["complaints"]
        assert complaint["description"] == "(erased)"
    if "knowledgebase" in subset:
        (sent,) = after["plugins"]["knowledgebase"]["sends"]
        assert sent["body"] == "" and sent["customer_id"] == guest.id
    crm.close()

    # plugins list: every shipped plugin installed, exactly the subset enabled and ok
    rows = json.loads(_invoke(config, subset, "plugins", "list", "--format", "json"))
    listed = {r["name"]: r for r in rows if r["name"] in PLUGINS}
    assert set(listed) == set(PLUGINS)
    for name, row in listed.items():
        assert row["enabled"] == ("yes" if name in subset else "no")
        assert row["status"] == ("ok" if name in subset else "disabled")

    # one read command per enabled plugin
    if "loyalty" in subset:
        programs = json.loads(
            _invoke(config, subset, "loyalty", "programs", "list", "--format", "json")
        )
        assert [p["name"] for p in programs] == ["retail-club"]
    if "complaints" in subset:
        complaints = json.loads(_invoke(config, subset, "complaints", "list", "--format", "json"))
        assert len(complaints) == 7  # six from the demo and the guest's
    if "knowledgebase" in subset:
        hits = json.loads(_invoke(config, subset, "kb", "search", "refund", "--format", "json"))
        assert "refund-policy" in [h["slug"] for h in hits]
    if "segmentation" in subset:
        scores = json.loads(
            _invoke(config, subset, "segment", "rfm", "--as-of", "2026-12-31", "--format", "json")
        )
        scored = {r["customer_id"] for r in scores}
        assert other.id in scored and len(scored) >= 50

    # the command list has exactly the enabled plugins' command groups
    usage = _invoke(config, subset, "--help")
    commands = {line.split()[0] for line in usage.split("Commands:")[1].splitlines() if line}
    for name, group in COMMAND_GROUPS.items():
        assert (group in commands) == (name in subset), usage
    assert {"db", "demo", "plugins"} <= commands
