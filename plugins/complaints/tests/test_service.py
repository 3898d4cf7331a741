"""Complaints: logging, lifecycle through the core workflow, SLA, replies, status."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from crmkit_complaints import tables as t
from crmkit_complaints.hookspecs import ComplaintFacts
from crmkit_complaints.service import service
from sqlalchemy import func, select

import crmkit
from crmkit.plugin import NotFound, TransitionRefused, ValidationError


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def count(crm, table) -> int:
    with crm.reading() as c:
        return c.scalar(select(func.count()).select_from(table))


def test_log_creates_interaction_and_workflow(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    # Monday 2026-11-23 10:00 UTC, phone: default policy 8 business hours, warn at 75%
    c = svc.log(alice.id, channel="phone", category="delivery", description="late parcel",
                assignee="ann", actor="sam", at=at(2026, 11, 23, 10))  # fmt: skip
    assert c.department == "logistics"
    assert c.stage == "received" and c.priority == "normal"
    assert c.tracking_code.startswith("C-") and len(c.tracking_code) >= 18
    interaction = crm.interactions.get(c.interaction_id)
    assert interaction.customer_id == alice.id and interaction.channel == "phone"
    assert interaction.body == "late parcel"
    instance = crm.workflows.get(c.workflow_instance_id)
    assert instance.workflow == "complaint" and instance.owner == "ann"
    # 10-12 (2h), 13-18 (5h), next day 09:00 + 1h -> Tue 10:00; warn 6h -> Mon 17:00
    assert c.first_response_due_at == at(2026, 11, 24, 10)
    assert c.first_response_warn_at == at(2026, 11, 23, 17)
    # resolution 40 business hours = 5 working days -> the following Monday 10:00
    assert c.resolution_due_at == at(2026, 11, 30, 10)


def test_vip_gets_urgent_priority(setup) -> None:
    crm, _, vip = setup
    c = service(crm).log(vip.id, channel="chat", category="billing", description="double charge",
                         at=at(2026, 11, 23, 10))  # fmt: skip
    assert c.priority == "urgent"
    assert c.first_response_due_at == at(2026, 11, 23, 11)


def test_email_warns_after_twelve_wall_clock_hours(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="email", category="billing", description="wrong invoice",
                assignee="ann", at=at(2026, 11, 21, 20))  # Saturday evening  # fmt: skip
    assert c.first_response_warn_at == at(2026, 11, 22, 8)
    assert svc.check_sla(at(2026, 11, 22, 7, 59)) == []
    alerts = svc.check_sla(at(2026, 11, 22, 8))
    assert [(a.target, a.level, a.recipients) for a in alerts] == [
        ("first_response", "warning", ["ann"])
    ]
    # re-running sends nothing twice
    assert svc.check_sla(at(2026, 11, 22, 8, 30)) == []
    breach = svc.check_sla(at(2026, 11, 23, 0))
    assert [(a.level, a.recipients) for a in breach] == [("breach", ["ann", "boss"])]
    assert svc.check_sla(at(2026, 11, 24)) == []
    assert count(crm, t.sla_alerts) == 2
    assert count(crm, t.outbox) == 3


def test_sla_alert_hook_receives_alerts(make_crm) -> None:
    got = []

    class Notifier:
        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_after_sla_alerts_raised(ctx, alerts):  # noqa: N805
            got.extend(alerts)

    crm = make_crm(plugins=["complaints", Notifier])
    alice = crm.customers.add(name="Al")
    service(crm).log(alice.id, channel="web", category="process", description="forms",
                     at=at(2026, 11, 23, 9))  # fmt: skip
    service(crm).check_sla(at(2026, 12, 31))
    assert sorted((a.target, a.level) for a in got) == [
        ("first_response", "breach"), ("first_response", "warning"),
        ("resolution", "breach"), ("resolution", "warning"),
    ]  # fmt: skip


def test_lifecycle_pause_and_reopen(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="phone", category="product quality", description="broken",
                assignee="ann", at=at(2026, 11, 23, 9))  # fmt: skip
    c = svc.move(c.id, "acknowledged", actor="ann", at=at(2026, 11, 23, 10))
    assert c.first_response_at == at(2026, 11, 23, 10)
    assert c.first_response_due_at is None
    due_before = c.resolution_due_at
    assert due_before == at(2026, 11, 27, 18)
    # waiting on the customer for 1 business day (Mon 12:00 -> Tue 12:00 = 8 business h)
    c = svc.move(c.id, "waiting_on_customer", actor="ann", at=at(2026, 11, 23, 12))
    assert c.resolution_due_at is None and c.paused_since == at(2026, 11, 23, 12)
    c = svc.move(c.id, "investigating", actor="ann", at=at(2026, 11, 24, 12))
    assert c.paused_us == 8 * 3600 * 10**6
    assert c.resolution_due_at == at(2026, 11, 30, 18)
    # a sales person may not move it (core roles)
    with pytest.raises(TransitionRefused, match="complaint_handler"):
        svc.move(c.id, "resolved", actor="sam", resolution="x")
    with pytest.raises(TransitionRefused, match="resolution"):
        svc.move(c.id, "resolved", actor="ann")
    with pytest.raises(TransitionRefused, match="allowed next stages"):
        svc.move(c.id, "received", actor="ann")
    c = svc.move(c.id, "resolved", actor="ann", resolution="replaced", root_cause="bad batch",
                 at=at(2026, 11, 25, 9))  # fmt: skip
    assert c.resolved_at == at(2026, 11, 25, 9) and c.resolution_due_at is None
    d = svc.durations(c)
    # Mon 9-18 (8h) + Tue 9-18 (8h) + Wed 0h = 16 business hours, minus 8 paused
    assert d["resolution_business_h"] == 8.0
    assert d["resolution_wall_h"] == 48.0
    assert d["first_response_business_h"] == 1.0
    # reopen: resolved -> investigating; time in "resolved" does not count
    c = svc.move(c.id, "investigating", actor="ann", reason="reopen", at=at(2026, 11, 26, 9))
    assert c.resolved_at is None
    assert c.paused_us == 16 * 3600 * 10**6
    assert c.resolution_due_at == at(2026, 12, 1, 18)
    c = svc.move(c.id, "resolved", actor="ann", at=at(2026, 11, 26, 10))
    c = svc.move(c.id, "closed", actor="ann", at=at(2026, 11, 27, 10))
    assert c.closed_at == at(2026, 11, 27, 10) and c.resolution_due_at is None
    assert c.paused_since == at(2026, 11, 27, 10)  # the clock stays stopped while closed
    # reopen from closed: resolved Thu 10:00 -> closed Fri -> reopened Mon 10:00 is paused
    # (Thu 7h + Fri 8h + Mon 1h = 16h), so 32h paused in all; due = 40 + 32 = 72 business
    # hours after Mon 23 09:00 = Thu 3 Dec 18:00
    c = svc.move(c.id, "investigating", actor="ann", reason="reopen", at=at(2026, 11, 30, 10))
    assert (c.closed_at, c.resolved_at, c.paused_since) == (None, None, None)
    assert c.paused_us == 32 * 3600 * 10**6
    assert c.resolution_due_at == at(2026, 12, 3, 18)
    history = [tr.to_stage for tr in crm.workflows.history(c.workflow_instance_id)]
    assert history == ["received", "acknowledged", "waiting_on_customer", "investigating",
                       "resolved", "investigating", "resolved", "closed",
                       "investigating"]  # fmt: skip
    with crm.reading() as connection:
        log = connection.execute(
            select(t.pauses.c.stage, t.pauses.c.started_at, t.pauses.c.ended_at)
            .where(t.pauses.c.complaint_id == c.id)
            .order_by(t.pauses.c.id)
        ).all()
    assert [tuple(r) for r in log] == [
        ("waiting_on_customer", at(2026, 11, 23, 12), at(2026, 11, 24, 12)),
        ("resolved", at(2026, 11, 25, 9), at(2026, 11, 26, 9)),
        ("resolved", at(2026, 11, 26, 10), at(2026, 11, 27, 10)),
        ("closed", at(2026, 11, 27, 10), at(2026, 11, 30, 10)),
    ]


def test_policy_change_recomputes_open_complaints(setup, make_crm) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="phone", category="delivery", description="late",
                at=at(2026, 11, 23, 9))  # fmt: skip
    svc.move(c.id, "waiting_on_customer", at=at(2026, 11, 23, 10))
    svc.move(c.id, "investigating", at=at(2026, 11, 23, 12))  # 2h paused
    n = svc.set_policy("*", "phone", first_response_hours=2, resolution_hours=10)
    assert n == 1
    c = svc.get(c.id)
    assert c.resolution_target_s == 36000 and c.paused_us == 2 * 3600 * 10**6
    # 10 + 2 paused = 12 business hours from Mon 09:00 -> Tue 14:00 (lunch 12-13)
    assert c.resolution_due_at == at(2026, 11, 24, 14)
    # settings edited in crmkit.toml: a new CRM re-applies them with recompute()
    policies = [{"priority": "*", "channel": "*", "first_response_hours": 1, "resolution_hours": 4}]
    crm2 = make_crm(plugins=["complaints"], settings={"complaints": {"sla_policies": policies}})
    with crm2.transaction() as ctx:
        ctx.connection.execute(t.sla_policies.delete())
    assert service(crm2).recompute() == 1
    # 4 + 2 paused = 6 business hours from Mon 09:00 -> Mon 16:00
    assert service(crm2).get(c.id).resolution_due_at == at(2026, 11, 23, 16)
    with pytest.raises(ValidationError, match="warn_ratio"):
        svc.set_policy("*", "phone", first_response_hours=2, resolution_hours=10, warn_ratio=2)


def test_replies_status_and_transparency(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="letter", category="staff attitude", description="rude",
                at=at(2026, 11, 23, 9))  # fmt: skip
    svc.reply(c.id, "internal: agent X again", public=False, actor="ann")
    assert svc.get(c.id).first_response_at is None
    svc.reply(c.id, "We are sorry and will call you.", actor="ann", at=at(2026, 11, 23, 11))
    svc.reply(
        c.id,
        "Your case is with our manager.",
        actor="boss",
        show_author=True,
        at=at(2026, 11, 23, 12),
    )
    assert svc.get(c.id).first_response_at == at(2026, 11, 23, 11)
    s = svc.status(c.tracking_code)
    assert s["stage"] == "received"
    assert [r["body"] for r in s["replies"]] == [
        "We are sorry and will call you.", "Your case is with our manager."
    ]  # fmt: skip
    assert [r["author"] for r in s["replies"]] == [None, "Bea Boss"]
    page = svc.status_page(c.tracking_code)
    assert "Bea Boss" in page and "Ann Agent" not in page and "agent X" not in page
    with pytest.raises(NotFound, match="tracking code"):
        svc.status("C-nope")


def test_survey_and_reports(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    a = svc.log(alice.id, channel="phone", category="delivery", description="late",
                at=at(2026, 11, 23, 9))  # fmt: skip
    b = svc.log(alice.id, channel="web", category="product quality", description="broken",
                at=at(2026, 11, 23, 9))  # fmt: skip
    with pytest.raises(ValidationError, match="after resolution"):
        svc.survey(a.id, csat=5, nps=10)
    svc.move(a.id, "resolved", resolution="sent again", at=at(2026, 11, 23, 13))
    with pytest.raises(ValidationError, match="1 to 5"):
        svc.survey(a.id, csat=6, nps=10)
    with pytest.raises(ValidationError, match="0 to 10"):
        svc.survey(a.id, csat=5, nps=11)
    svc.survey(a.id, csat=4, nps=10, comment="ok")
    svc.check_sla(at(2026, 12, 31))  # b breaches
    rows = {r["category"]: r for r in svc.report("category", as_of=at(2027, 1, 1))}
    assert rows["delivery"]["csat"] == 4.0 and rows["delivery"]["nps"] == 100.0
    assert rows["delivery"]["sla_compliance"] == 1.0
    assert rows["delivery"]["mean_resolution_business_h"] == 3.0
    assert rows["delivery"]["mean_resolution_wall_h"] == 4.0
    assert rows["product quality"]["sla_compliance"] == 0.0
    assert rows["product quality"]["open"] == 1
    deps = svc.departments()
    assert [(d["department"], d["id"]) for d in deps] == [("R&D", b.id), ("logistics", a.id)]
    assert [d["id"] for d in svc.departments("logistics")] == [a.id]


def test_bad_input_changes_nothing(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    before = (count(crm, t.complaints), len(crm.interactions.list()), len(crm.workflows.list()))
    with pytest.raises(NotFound, match="customer 9999"):
        svc.log(9999, channel="phone", category="delivery", description="x")
    with pytest.raises(ValidationError, match="category 'weather'"):
        svc.log(alice.id, channel="phone", category="weather", description="x")
    with pytest.raises(NotFound, match="staff member 'ghost'"):
        svc.log(alice.id, channel="phone", category="delivery", description="x", assignee="ghost")
    after = (count(crm, t.complaints), len(crm.interactions.list()), len(crm.workflows.list()))
    assert before == after
    with pytest.raises(NotFound, match="complaint 42"):
        svc.move(42, "resolved")
    c = svc.log(alice.id, channel="phone", category="delivery", description="x")
    with pytest.raises(TransitionRefused):
        svc.move(c.id, "closed", root_cause="should not be stored")
    assert svc.get(c.id).root_cause == "" and svc.get(c.id).stage == "received"


def test_propose_replies(make_crm) -> None:
    got = []

    class KB:
        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_reply_proposals(crm, complaint, text):  # noqa: N805
            got.append(complaint)
            return [{"source": "kb", "title": f"About {complaint.category}",
                     "body": f"Re: {text}", "score": 0.9}]  # fmt: skip

    class Other:
        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_reply_proposals(crm, complaint, text):  # noqa: N805
            return [{"source": "other", "title": "t", "body": "b", "score": 0.95}]

    crm = make_crm(plugins=["complaints"])
    alice = crm.customers.add(name="Al")
    c = service(crm).log(alice.id, channel="web", category="billing", description="twice")
    assert service(crm).propose(c.id) is None
    crm2 = make_crm(plugins=["complaints", KB, Other])
    assert [p["source"] for p in service(crm2).propose(c.id)] == ["other", "kb"]  # best first
    assert service(crm2).propose(c.id)[1] == {
        "source": "kb", "title": "About billing", "body": "Re: twice", "score": 0.9
    }  # fmt: skip
    # other plugins get the published facts, not the service's record
    (facts, _) = got
    assert isinstance(facts, ComplaintFacts)
    assert attrs.asdict(facts) == {f.name: getattr(c, f.name) for f in attrs.fields(ComplaintFacts)}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        facts.description = "changed"


def test_old_hook_names_still_work_with_a_deprecation_warning(make_crm) -> None:
    alerted, asked = [], []

    class OldNames:
        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_sla_alerts(ctx, alerts):  # noqa: N805
            alerted.extend(alerts)

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_complaints_propose_replies(crm, complaint, text):  # noqa: N805
            asked.append(complaint.tracking_code)
            return [{"source": "old", "title": "t", "body": "b", "score": 0.5}]

    with pytest.warns(DeprecationWarning) as caught:
        crm = make_crm(plugins=["complaints", OldNames])
    said = " ".join(str(w.message) for w in caught)
    assert "crmkit_complaints_sla_alerts, which is now crmkit_complaints_after_sla_alerts_" in said
    assert "crmkit_complaints_propose_replies, which is now crmkit_complaints_reply_pro" in said
    alice = crm.customers.add(name="Al")
    c = service(crm).log(alice.id, channel="web", category="billing", description="x",
                         at=at(2026, 11, 23, 9))  # fmt: skip
    assert [p["source"] for p in service(crm).propose(c.id)] == ["old"]
    assert asked == [c.tracking_code]
    service(crm).check_sla(at(2026, 11, 23, 16))
    assert [(a.target, a.level) for a in alerted] == [("first_response", "warning")]


def test_complaint_facts_are_the_template_variables(make_crm) -> None:
    from crmkit_complaints import plugin

    names = [f.name for f in attrs.fields(ComplaintFacts)]
    assert len(names) == 17 and names[:6] == [
        "id", "customer_id", "category", "channel", "description", "tracking_code"
    ]  # fmt: skip
    variables = plugin.crmkit_knowledgebase_register_template_variables()
    assert list(variables) == ["complaint"]
    assert list(variables["complaint"]) == names
    assert all(isinstance(d, str) and len(d) > 10 for d in variables["complaint"].values())
    assert "follows the case" in variables["complaint"]["tracking_code"]
    # complaints loads without the knowledge base that declares that hook
    crm = make_crm(plugins=["complaints"])
    assert crm.plugin_names == ["complaints"]
    assert not crm.has_hook("crmkit_knowledgebase_register_template_variables")


def test_360_section_export_and_erase(setup) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="visit", category="process", description="queue too long")
    view = crm.customers.view(alice.id)
    section = next(s for s in view.sections if s.name == "complaints")
    assert [x["id"] for x in section.data["complaints"]] == [c.id]
    html = crm.templates.get_template(section.template).render(**section.data)
    assert "<td>process</td>" in html and "<td>visit</td>" in html
    assert svc.assign(c.id, "ann").assignee == "ann"
    assert crm.workflows.get(c.workflow_instance_id).owner == "ann"
    with pytest.raises(NotFound, match="ghost"):
        svc.assign(c.id, "ghost")
    assert svc.get(c.id).assignee == "ann"
    assert crm.customers.export(alice.id)["plugins"]["complaints"]["complaints"][0][
        "description"
    ] == ("queue too long")
    crm.customers.erase(alice.id)
    assert svc.get(c.id).description == "(erased)"


def test_demo_data_is_reproducible(setup) -> None:
    import random

    from crmkit_complaints import plugin

    crm, _, _ = setup
    line = plugin.crmkit_generate_demo_data(crm=crm, rng=random.Random(1))
    assert line == "complaints: 6 complaints across 6 channels"
    made = service(crm).list()
    assert sorted(c.channel for c in made) == ["chat", "email", "letter", "phone", "visit", "web"]
    assert sum(1 for c in made if c.stage == "resolved") == 2


class SegSpecs:
    """Test double of the segmentation plugin's published spec."""

    @staticmethod
    @crmkit.hookspec(firstresult=True)
    def crmkit_segmentation_vip_customers(crm, customer_ids):
        """test double of the segmentation plugin's hook"""


def segmentation(answer):
    """A segmentation test double answering ``answer(customer_ids)``."""

    class Segmentation:
        @crmkit.hookimpl
        def crmkit_register_hookspecs():
            return SegSpecs

        @crmkit.hookimpl
        def crmkit_segmentation_vip_customers(crm, customer_ids):  # noqa: N805
            return answer(customer_ids)

    return Segmentation


def test_segmentation_vip_veto_and_core_moves(make_crm) -> None:
    asked = []

    def top_is_vip(customer_ids):
        asked.append(list(customer_ids))
        return {cid for cid in customer_ids if cid == 1}

    Segmentation = segmentation(top_is_vip)  # noqa: N806

    class Veto:
        @crmkit.hookimpl
        def crmkit_allow_transition(ctx, instance, to_stage):  # noqa: N805
            if instance.workflow == "complaint" and to_stage == "closed":
                return "complaints are closed by the quality team only"

    crm = make_crm(plugins=["complaints", Segmentation, Veto])
    top = crm.customers.add(name="Top")
    small = crm.customers.add(name="Small")
    svc = service(crm)
    a = svc.log(top.id, channel="phone", category="billing", description="x")
    b = svc.log(small.id, channel="phone", category="billing", description="x")
    assert (a.priority, b.priority) == ("urgent", "normal")
    assert asked == [[top.id], [small.id]]
    # a move through the core engine updates the complaint and its SLA clock
    crm.workflows.move(b.workflow_instance_id, "waiting_on_customer", at=at(2026, 11, 23, 10))
    c = svc.get(b.id)
    assert c.stage == "waiting_on_customer" and c.paused_since == at(2026, 11, 23, 10)
    svc.move(b.id, "resolved", resolution="ok")
    with pytest.raises(TransitionRefused, match="quality team"):
        svc.move(b.id, "closed")
    assert svc.get(b.id).stage == "resolved"


def test_calendar_from_settings_with_time_zone(make_crm) -> None:
    from crmkit.plugin import ConfigError

    cal = {
        "timezone": "Europe/Berlin",
        "week": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]},
        "holidays": [],
    }
    crm = make_crm(plugins=["complaints"], settings={"complaints": {"calendar": cal}})
    alice = crm.customers.add(name="A")
    # Sunday 29 March 2026 (DST starts): received Sunday, due Monday 09:00 CEST + 8h
    c = service(crm).log(alice.id, channel="phone", category="billing", description="x",
                         at=at(2026, 3, 29, 12))  # fmt: skip
    assert c.first_response_due_at == at(2026, 3, 30, 15)  # 17:00 CEST
    bad = {**cal, "week": {"mon": [["17:00", "09:00"]]}}
    with pytest.raises(ConfigError, match="ends before it starts"):
        make_crm(plugins=["complaints"], settings={"complaints": {"calendar": bad}})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, ["urgent", "normal", "normal"]),  # no snapshot yet: the attribute decides
        (set(), ["urgent", "normal", "normal"]),
        ({2}, ["urgent", "urgent", "normal"]),
        ({2, 99}, ["urgent", "urgent", "normal"]),  # ids not asked about are ignored
        ([3], ["urgent", "normal", "urgent"]),  # any collection of ids
        ("2", ["urgent", "normal", "normal"]),  # not the contract's shape: ignored
    ],
)
def test_vip_is_whatever_segmentation_answers(make_crm, answer, expected) -> None:
    crm = make_crm(plugins=["complaints", segmentation(lambda customer_ids: answer)])
    people = [
        crm.customers.add(name="Attr VIP", attributes={"vip": True}),
        crm.customers.add(name="Two"),
        crm.customers.add(name="Three"),
    ]
    assert [p.id for p in people] == [1, 2, 3]
    got = [
        service(crm).log(p.id, channel="web", category="billing", description="x").priority
        for p in people
    ]
    assert got == expected


def test_vip_without_a_declared_segmentation_hook(make_crm) -> None:
    """An implementation nobody declares (segmentation absent) is not asked."""

    class Stray:
        @crmkit.hookimpl(optionalhook=True)
        def crmkit_segmentation_vip_customers(crm, customer_ids):  # noqa: N805
            raise AssertionError("not declared: must not be called")

    crm = make_crm(plugins=["complaints", Stray])
    assert not crm.has_hook("crmkit_segmentation_vip_customers")
    plain = crm.customers.add(name="Plain")
    assert service(crm).log(plain.id, channel="web", category="billing",
                            description="x").priority == "normal"  # fmt: skip
