"""SLA: the default notifier, the department fallback, recompute, compliance as of a date."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from crmkit_complaints import tables as t
from crmkit_complaints.businesshours import Calendar
from crmkit_complaints.service import service
from crmkit_complaints.sla import pause_log
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from crmkit.plugin import ConfigError

H = dt.timedelta(hours=1)


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def outbox(crm: Any, created_at: dt.datetime | None = None) -> list[tuple[str, str]]:
    query = select(t.outbox.c.recipient, t.outbox.c.message).order_by(t.outbox.c.id)
    if created_at is not None:
        query = query.where(t.outbox.c.created_at == created_at)
    with crm.reading() as connection:
        return [tuple(r) for r in connection.execute(query)]


def test_default_notifier_writes_the_outbox_and_the_cli_prints_it(
    setup: Any, cli_runner: Any, capsys: Any
) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    svc.log(alice.id, channel="email", category="billing", description="wrong invoice",
            assignee="ann", at=at(2026, 11, 23, 9))  # fmt: skip
    # e-mail: warning after 12 wall-clock hours, breach after 24
    alerts = svc.check_sla(at(2026, 11, 24, 12))
    assert capsys.readouterr().out == ""  # from Python: the outbox only
    warning = "SLA warning: complaint #1 first response is due at 2026-11-24T09:00+00:00"
    breach = "SLA breach: complaint #1 first response was due at 2026-11-24T09:00+00:00"
    assert [(a.level, a.recipients) for a in alerts] == [
        ("warning", ["ann"]),
        ("breach", ["ann", "boss"]),
    ]
    assert outbox(crm) == [("ann", warning), ("ann", breach), ("boss", breach)]
    # from the CLI: the same rows are stored, and printed one line per recipient
    svc.log(alice.id, channel="phone", category="delivery", description="late",
            assignee="ann", at=at(2026, 11, 23, 9))  # fmt: skip
    r = cli_runner(["complaints", "check-sla", "--as-of", "2026-11-24T12:00Z"],
                   plugins=["complaints"])  # fmt: skip
    assert r.exit_code == 0, r.output
    sent = outbox(crm, at(2026, 11, 24, 12))[3:]
    assert [f"to {who}: {msg}" for who, msg in sent] == r.output.splitlines()[:-1]
    assert len(sent) == 3 and r.output.splitlines()[-1] == "2 new alert(s)"


def test_unassigned_alerts_go_to_the_departments_responsible(make_crm: Any) -> None:
    responsible = {"R&D": "rita", "*": "molly"}
    crm = make_crm(plugins=["complaints"], settings={"complaints": {"responsible": responsible}})
    crm.staff.add("boss", roles=["manager"])
    crm.staff.add("rita", roles=["complaint_handler"], manager="boss")
    crm.staff.add("molly", roles=["complaint_handler"])
    crm.staff.add("ann", roles=["complaint_handler"], manager="boss")
    alice = crm.customers.add(name="Alice")
    svc = service(crm)
    made = {}
    for name, category, assignee in [
        ("rd", "product quality", None),  # R&D -> rita
        ("logistics", "delivery", None),  # no entry -> "*" -> molly
        ("assigned", "product quality", "ann"),  # the assignee wins
    ]:
        made[name] = svc.log(alice.id, channel="phone", category=category, description="x",
                             assignee=assignee, at=at(2026, 11, 23, 9)).id  # fmt: skip
    alerts = svc.check_sla(at(2026, 11, 24, 9))  # first response due Mon 18:00
    got = {(a.complaint_id, a.level): (a.recipients, a.responsible) for a in alerts}
    assert got == {
        (made["rd"], "warning"): (["rita"], "rita"),
        (made["rd"], "breach"): (["rita", "boss"], "rita"),  # escalated to rita's manager
        (made["logistics"], "warning"): (["molly"], "molly"),
        (made["logistics"], "breach"): (["molly"], "molly"),  # molly has no manager
        (made["assigned"], "warning"): (["ann"], None),
        (made["assigned"], "breach"): (["ann", "boss"], None),
    }
    assert sorted(who for who, _ in outbox(crm)) == sorted(
        ["rita", "rita", "boss", "molly", "molly", "ann", "ann", "boss"]
    )
    # no responsible configured: the outbox row is addressed to "(unassigned)"
    plain = make_crm(plugins=["complaints"])
    bob = plain.customers.add(name="Bob")
    service(plain).log(bob.id, channel="phone", category="process", description="x",
                       at=at(2026, 11, 23, 9))  # fmt: skip
    assert {a.recipients[0] for a in service(plain).check_sla(at(2026, 11, 24, 9))} == {
        "(unassigned)"
    }
    with pytest.raises(ConfigError, match="unknown departments \\['Sales'\\]"):
        make_crm(plugins=["complaints"], settings={"complaints": {"responsible": {"Sales": "x"}}})


def test_clock_change_re_measures_paused_time(setup: Any) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    # e-mail runs on the wall clock: received Fri 20 Nov 09:00, answered at 10:00,
    # waiting on the customer Fri 12:00 -> Mon 23 12:00 (72 wall hours, 8 business hours)
    c = svc.log(alice.id, channel="email", category="billing", description="x",
                at=at(2026, 11, 20, 9))  # fmt: skip
    svc.reply(c.id, "Looking into it", at=at(2026, 11, 20, 10))
    svc.move(c.id, "waiting_on_customer", at=at(2026, 11, 20, 12))
    before = svc.move(c.id, "investigating", at=at(2026, 11, 23, 12))
    assert before.paused_us == 72 * 3600 * 10**6
    assert before.resolution_due_at == at(2026, 11, 20, 9) + (120 + 72) * H
    n = svc.set_policy("*", "email", first_response_hours=24, resolution_hours=40)
    assert n == 1
    c = svc.get(c.id)
    assert (c.clock, c.paused_us) == ("business", 8 * 3600 * 10**6)
    # 40 + 8 business hours from Fri 09:00: Fri 8 h, then Mon-Fri 40 h -> Fri 27 Nov 18:00
    assert c.resolution_due_at == at(2026, 11, 27, 18)
    # back to the e-mail policy: exactly the complaint as it was
    svc.set_policy("*", "email", first_response_hours=24, resolution_hours=120,
                   warn_ratio=0.5, clock="wall")  # fmt: skip
    assert svc.get(c.id) == before


def test_recompute_after_a_calendar_edit_and_targeted_policy_changes(
    setup: Any, make_crm: Any
) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    # phone, business hours: waiting Mon 10:00 -> Wed 10:00 = 7 + 8 + 1 = 16 h paused
    c = svc.log(alice.id, channel="phone", category="delivery", description="x",
                at=at(2026, 11, 23, 9))  # fmt: skip
    web = svc.log(alice.id, channel="web", category="delivery", description="y",
                  at=at(2026, 11, 23, 9))  # fmt: skip
    svc.move(c.id, "waiting_on_customer", at=at(2026, 11, 23, 10))
    c = svc.move(c.id, "investigating", at=at(2026, 11, 25, 10))
    assert c.paused_us == 16 * 3600 * 10**6
    assert c.resolution_due_at == at(2026, 12, 1, 18)  # 56 business hours: 7 working days
    # the integrator adds two holidays in crmkit.toml, one inside the pause: only 8 h of it
    # count now, and the due moment (48 business hours) skips both holidays
    calendar = {
        "timezone": "UTC",
        "week": {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in
                 ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-11-24", "2026-11-27"],
    }  # fmt: skip
    crm2 = make_crm(plugins=["complaints"], settings={"complaints": {"calendar": calendar}})
    svc2 = service(crm2)
    assert svc2.recompute(page=1) == 2  # one complaint per page: the paging loop runs twice
    c2 = svc2.get(c.id)
    assert c2.paused_us == 8 * 3600 * 10**6
    assert c2.resolution_due_at == at(2026, 12, 2, 18)
    assert svc2.recompute() == 0  # nothing left to change
    # a policy for phone only touches phone complaints; hours are rounded, not truncated
    assert svc2.set_policy("*", "phone", first_response_hours=0.29, resolution_hours=10) == 1
    assert svc2.get(c.id).first_response_target_s == 1044
    assert svc2.get(web.id).resolution_target_s == 40 * 3600
    # the same policy again changes nothing
    assert svc2.set_policy("*", "phone", first_response_hours=0.29, resolution_hours=10) == 0


gaps = st.integers(min_value=1, max_value=4 * 24 * 60)  # minutes between events
steps = st.lists(
    st.tuples(st.sampled_from(["pause", "resume", "resolve", "reopen"]), gaps), max_size=6
)
NEXT = {  # step -> (stages it may start from, stage it moves to)
    "pause": (("received", "investigating"), "waiting_on_customer"),
    "resume": (("waiting_on_customer",), "investigating"),
    "resolve": (("received", "investigating", "waiting_on_customer"), "resolved"),
    "reopen": (("resolved",), "investigating"),
}


# Berlin: split shifts, a Saturday shift, holidays, and the DST change of 25 Oct 2026
BERLIN = {
    "timezone": "Europe/Berlin",
    "week": {d: [["08:00", "12:00"], ["13:00", "17:30"]] for d in ("mon", "tue", "wed", "thu")}
    | {"fri": [["08:00", "14:00"]], "sat": [["10:00", "13:00"]]},
    "holidays": ["2026-10-26", "2026-11-11"],
}


@pytest.fixture
def berlin(make_crm: Any) -> tuple[Any, Any]:
    crm = make_crm(plugins=["complaints"], settings={"complaints": {"calendar": BERLIN}})
    return crm, crm.customers.add(name="Alice")


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(min_value=0, max_value=28 * 24 * 60),
    channel=st.sampled_from(["phone", "email"]),
    moves=steps,
    hours=st.tuples(st.integers(1, 30), st.integers(1, 90)),
    clock=st.sampled_from(["business", "wall"]),
    probes=st.lists(st.integers(min_value=0, max_value=30 * 24 * 60), min_size=1, max_size=4),
)
def test_policy_change_keeps_accrued_and_paused_time(
    berlin: Any, start: int, channel: str, moves: list, hours: tuple, clock: str, probes: list
) -> None:
    """Whatever the history of pauses, after a policy change a target is overdue at any later
    moment exactly when its accrued (unpaused) time on the new clock has reached it; and
    changing the policy back restores the complaint exactly. Across weekends, holidays and
    the end of summer time in Berlin."""
    crm, alice = berlin
    svc = service(crm)
    now = at(2026, 10, 19) + dt.timedelta(minutes=start)
    c = svc.log(alice.id, channel=channel, category="billing", description="x", at=now)
    received, stage, stays = now, "received", []  # stays: the oracle's own pause record
    for step, gap in moves:
        sources, target = NEXT[step]
        if stage not in sources:
            continue
        now += dt.timedelta(minutes=gap)
        svc.move(c.id, target, resolution="fixed", at=now)
        if stays and stays[-1][1] is None:
            stays[-1][1] = now
        if target in ("waiting_on_customer", "resolved"):
            stays.append([now, None])
        stage = target
    before = svc.get(c.id)
    svc.set_policy("normal", channel, first_response_hours=hours[0], resolution_hours=hours[1],
                   clock=clock)  # fmt: skip
    after = svc.get(c.id)
    cal = Calendar.always() if clock == "wall" else svc.calendar
    closed = sum((cal.duration(a, b) for a, b in stays if b is not None), dt.timedelta(0))
    assert after.paused_us == closed // dt.timedelta(microseconds=1)

    def accrued(until: dt.datetime) -> dt.timedelta:
        total = cal.duration(received, until)
        for a, b in stays:
            total -= cal.duration(a, until if b is None else min(b, until))
        return total

    with crm.reading() as connection:
        log = pause_log(connection, c.id, c.id)[c.id]
    for minutes in probes:
        probe = now + dt.timedelta(minutes=minutes)
        measured = svc.measure(after, log, probe)
        for name, target_h in (("first_response", hours[0]), ("resolution", hours[1])):
            due = getattr(after, f"{name}_due_at")
            met_at = after.first_response_at if name == "first_response" else after.resolved_at
            if met_at is None and stage != "waiting_on_customer":
                assert (due <= probe) == (accrued(probe) >= target_h * H)
            overdue = accrued(met_at or probe) >= target_h * H
            late = accrued(met_at) > target_h * H if met_at else overdue
            assert measured[f"{name}_breached"] == late
    # back to the policy it had: nothing was lost on the way
    svc.set_policy("normal", channel, first_response_hours=before.first_response_target_s / 3600,
                   resolution_hours=before.resolution_target_s / 3600,
                   warn_ratio=before.warn_ratio, clock=before.clock)  # fmt: skip
    assert svc.get(c.id) == before
    with crm.transaction() as ctx:  # leave the next example the default policies
        ctx.connection.execute(t.sla_policies.delete())
    svc.recompute()


def test_compliance_from_stored_timestamps_as_of_any_date(setup: Any) -> None:
    crm, alice, _ = setup
    svc = service(crm)

    def log(channel: str = "phone") -> int:
        return svc.log(alice.id, channel=channel, category="delivery", description="x",
                       assignee="ann", at=at(2026, 11, 23, 9)).id  # fmt: skip

    # phone: 8 business hours to answer (due Mon 18:00), 40 to resolve (due Fri 18:00)
    a, b, c, d = log(), log(), log(), log()
    svc.reply(a, "on it", at=at(2026, 11, 23, 16))  # 6 h (lunch 12-13): in time
    svc.reply(b, "sorry", at=at(2026, 11, 24, 11))  # 10 h: late
    svc.move(c, "waiting_on_customer", at=at(2026, 11, 23, 10))  # answered, clock stopped
    svc.move(d, "investigating", at=at(2026, 11, 23, 9, 30))  # never resolved
    svc.move(a, "resolved", resolution="resent", at=at(2026, 11, 25, 10))  # 17 business h
    svc.survey(a, csat=4, nps=9, at=at(2026, 11, 25, 11))
    svc.move(a, "investigating", reason="reopened", at=at(2026, 11, 26, 9))

    def row(*moment: int) -> dict:
        (found,) = svc.report("channel", as_of=at(*moment))
        return found

    assert svc.report("channel", as_of=at(2026, 11, 22)) == []
    monday = row(2026, 11, 23, 17)
    assert (monday["complaints"], monday["open"], monday["sla_compliance"]) == (4, 4, 1.0)
    assert monday["mean_first_response_business_h"] == (6 + 1 + 0.5) / 3
    assert row(2026, 11, 23, 18)["sla_compliance"] == 0.75  # b is overdue from 18:00
    wednesday = row(2026, 11, 25, 12)
    assert (wednesday["open"], wednesday["surveys"], wednesday["csat"]) == (3, 1, 4.0)
    assert wednesday["mean_resolution_business_h"] == 17.0
    assert wednesday["mean_resolution_wall_h"] == 49.0
    assert row(2026, 11, 25, 10, 30)["surveys"] == 0
    assert row(2026, 11, 26, 10)["open"] == 4  # a was reopened
    # Fri 17:00: d has 39.5 business hours; at 18:00 it reaches 40 (a has 33: not late)
    assert row(2026, 11, 27, 17)["sla_compliance"] == 0.75
    assert row(2026, 11, 27, 18)["sla_compliance"] == 0.5
    # all of it without check-sla. Run now, it alerts what is overdue now (b and d are
    # unresolved); b's late first response was given before any check, so no alert ever
    # recorded it, and a report counting alerts would have shown b as compliant
    with crm.reading() as connection:
        assert connection.scalar(select(func.count()).select_from(t.sla_alerts)) == 0
    alerts = svc.check_sla(at(2026, 11, 27, 18))
    assert {(x.complaint_id, x.target) for x in alerts if x.level == "breach"} == {
        (b, "resolution"),
        (d, "resolution"),
    }
    html_rows = json.loads(json.dumps(svc.report("month", as_of=at(2026, 11, 27, 18))))
    assert html_rows[0]["sla_compliance"] == 0.5


def test_after_commit_sees_the_alerts_for_side_effects(make_crm: Any) -> None:
    """A notifier that must never send for a rolled-back check uses crmkit_after_commit."""
    import crmkit

    sent: list[tuple[str, str]] = []

    class Sms:
        @crmkit.hookimpl
        def crmkit_after_commit(crm, changes):  # noqa: N805
            for alert in changes.other.get("complaints_sla_alerts", []):
                sent.extend((who, alert.message) for who in alert.recipients)

    crm = make_crm(plugins=["complaints", Sms])
    crm.staff.add("ann", roles=["complaint_handler"])
    alice = crm.customers.add(name="Alice")
    service(crm).log(alice.id, channel="web", category="billing", description="x",
                     assignee="ann", at=at(2026, 11, 23, 9))  # fmt: skip
    service(crm).check_sla(at(2026, 11, 23, 16))  # 6 business hours: the 75% warning
    assert (
        sent
        == outbox(crm)
        == [("ann", "SLA warning: complaint #1 first response is due at 2026-11-23T18:00+00:00")]
    )
    service(crm).check_sla(at(2026, 11, 23, 16, 30))
    assert len(sent) == 1
