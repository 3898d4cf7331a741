"""The workflow engine: allowed moves, roles, required fields, vetoes, history, figures."""

import datetime as dt

import pytest

import crmkit
from crmkit import ConfigError, TransitionRefused, WorkflowDefinition

T0 = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC)


def hours(n):
    return T0 + dt.timedelta(hours=n)


class NoWinWithoutValue:
    CRMKIT_NAME = "guard"

    @crmkit.hookimpl
    def crmkit_allow_transition(self, ctx, instance, to_stage):
        if to_stage == "won" and not instance.value:
            return "a won deal needs a value"
        return None


@pytest.fixture
def sales(make_crm):
    crm = make_crm(plugins=[NoWinWithoutValue()])
    crm.staff.add("rep", "Rita Rep", roles=["sales_rep"])
    crm.staff.add("boss", "Ben Boss", roles=["sales_manager"])
    crm.staff.add("acct", "Ada Accounts", roles=["cost_accounting"])
    customer = crm.customers.add(name="Acme", type="organisation", kind="enterprise")
    return crm, customer


def test_a_deal_goes_from_need_to_won_with_an_audit_trail(sales):
    crm, customer = sales
    deal = crm.workflows.start(
        "sales", customer.id, "Acme fleet", value="50000", owner="rep", actor="rep", at=T0
    )
    assert crm.workflows.next_steps(deal.id)[0] == "Find the decision maker"
    crm.workflows.move(deal.id, "presentation", actor="rep", reason="need confirmed", at=hours(24))
    crm.workflows.move(
        deal.id, "tender", actor="rep", fields={"tender_reference": "T-9"}, at=hours(48)
    )
    crm.workflows.move(deal.id, "negotiation", actor="acct", at=hours(96))
    crm.workflows.move(deal.id, "contract", actor="rep", at=hours(100))
    won = crm.workflows.move(deal.id, "won", actor="boss", reason="signed", at=hours(120))
    assert won.stage == "won" and won.closed_at == hours(120)
    history = crm.workflows.history(deal.id)
    assert [(h.from_stage, h.to_stage, h.actor) for h in history] == [
        (None, "need_discovery", "rep"),
        ("need_discovery", "presentation", "rep"),
        ("presentation", "tender", "rep"),
        ("tender", "negotiation", "acct"),
        ("negotiation", "contract", "rep"),
        ("contract", "won", "boss"),
    ]
    assert history[-1].reason == "signed"


def test_refusals_store_nothing(sales):
    crm, customer = sales
    deal = crm.workflows.start("sales", customer.id, "Deal", at=T0)
    with pytest.raises(TransitionRefused, match="allowed next stages: presentation, lost"):
        crm.workflows.move(deal.id, "contract")
    with pytest.raises(
        TransitionRefused,
        match=r"'acct' \(roles: cost_accounting\) may not move .* needs one of: sales_rep",
    ):
        crm.workflows.move(deal.id, "presentation", actor="acct")
    crm.workflows.move(deal.id, "presentation", actor="rep")
    with pytest.raises(TransitionRefused, match="stage 'tender' needs tender_reference"):
        crm.workflows.move(deal.id, "tender", actor="rep")
    crm.workflows.move(deal.id, "negotiation", actor="rep")
    crm.workflows.move(deal.id, "contract", actor="rep")
    with pytest.raises(TransitionRefused, match="refused: a won deal needs a value"):
        crm.workflows.move(deal.id, "won", actor="boss")
    assert crm.workflows.get(deal.id).stage == "contract"
    assert len(crm.workflows.history(deal.id)) == 4
    lost = crm.workflows.move(deal.id, "lost", actor="boss", reason="price")
    with pytest.raises(TransitionRefused, match="none \\(terminal stage\\)"):
        crm.workflows.move(lost.id, "contract")


def test_time_in_stage_and_conversion(sales):
    crm, customer = sales
    a = crm.workflows.start("sales", customer.id, "A", value="10", at=T0)
    b = crm.workflows.start("sales", customer.id, "B", at=T0)
    crm.workflows.start("sales", customer.id, "C", at=T0)
    crm.workflows.move(a.id, "presentation", at=hours(10))
    crm.workflows.move(b.id, "presentation", at=hours(30))
    crm.workflows.move(a.id, "negotiation", at=hours(12))
    crm.workflows.move(a.id, "contract", at=hours(13))
    crm.workflows.move(a.id, "won", at=hours(14))
    crm.workflows.move(b.id, "lost", at=hours(40))
    figures = {f.stage: f for f in crm.workflows.figures("sales", as_of=hours(100))}
    need = figures["need_discovery"]
    assert (need.entered, need.left, need.current) == (3, 2, 1)
    assert need.mean_hours_in_stage == 20.0  # (10 + 30) / 2
    assert need.won == 1 and need.conversion == pytest.approx(1 / 3, abs=1e-4)
    assert figures["presentation"].mean_hours_in_stage == 6.0  # (2 + 10) / 2
    assert figures["won"].entered == 1 and figures["won"].conversion == 1.0
    # as-of reproduces the past
    early = {f.stage: f for f in crm.workflows.figures("sales", as_of=hours(11))}
    assert early["presentation"].entered == 1


def test_definitions_from_toml_and_config(tmp_path, make_crm):
    path = tmp_path / "flows.toml"
    path.write_text(
        """
[workflows.onboarding]
initial = "welcome"
[[workflows.onboarding.stages]]
name = "welcome"
next_steps = ["Call"]
to = ["done"]
[[workflows.onboarding.stages]]
name = "done"
terminal = true
outcome = "won"
"""
    )
    [flow] = WorkflowDefinition.from_toml(path)
    assert flow.stage_names == ["welcome", "done"] and flow.stage("welcome").next_steps == ("Call",)
    crm = make_crm()
    crm.workflow_definitions[flow.name] = flow
    c = crm.customers.add(name="A")
    done = crm.workflows.move(crm.workflows.start("onboarding", c.id, "On").id, "done")
    assert done.closed_at is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stages": []}, "needs a non-empty list"),
        ({"stages": [{"name": "a", "to": ["b"]}]}, "goes to unknown stage 'b'"),
        ({"stages": [{"name": "a"}]}, "has no 'to' stages and is not terminal"),
        (
            {"stages": [{"name": "a", "terminal": True, "colour": "red"}]},
            "unknown keys \\['colour'\\]",
        ),
        ({"initial": "x", "stages": [{"name": "a", "terminal": True}]}, "initial stage 'x'"),
    ],
)
def test_bad_definitions_name_the_problem(data, message):
    with pytest.raises(ConfigError, match=message):
        WorkflowDefinition.from_dict("flow", data, source="crmkit.toml")
