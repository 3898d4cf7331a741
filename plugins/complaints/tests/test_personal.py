"""Issue 14: a customer's complaints as personal data (export, erasure), writes refused for
erased or merged customers, merging duplicates, the timeline, catching up after the plugin
was off, and ``vip`` values stored before the attribute was declared."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest
from crmkit_complaints import personal
from crmkit_complaints import tables as t
from crmkit_complaints.service import service
from sqlalchemy import func, select, update

from crmkit.plugin import Conflict, NotFound, TimelineEntry, customers, metadata


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


#: the columns of complaints' tables that hold personal data (README "Personal data")
PERSONAL = {
    "complaints": {"description", "root_cause", "resolution", "tracking_code"},
    "complaints_replies": {"body"},
    "complaints_surveys": {"csat", "nps", "comment"},
}


def marked() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table in metadata.sorted_tables:
        if table.name.startswith("complaints"):
            columns = {c.name for c in table.columns if c.info.get("personal")}
            if columns:
                found[table.name] = columns
    return found


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


def stored_personal(crm: Any, complaint_id: int) -> list[tuple[str, Any]]:
    """(table.column, value) of every personal value stored for one complaint."""
    found = []
    with crm.reading() as connection:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if c.info.get("personal")]
            if not table.name.startswith("complaints") or not columns:
                continue
            key = table.c.id if table is t.complaints else table.c.complaint_id
            for row in connection.execute(select(*columns).where(key == complaint_id)):
                found += [(f"{table.name}.{c.name}", v) for c, v in zip(columns, row, strict=True)]
    return found


def count(crm: Any, table: Any) -> int:
    with crm.reading() as connection:
        return connection.scalar(select(func.count()).select_from(table))


def full_case(crm: Any, customer_id: int, words: str, hour: int = 9) -> Any:
    """A complaint with every kind of personal value: description, a public reply, an
    internal note, root cause, resolution and a survey with a comment."""
    svc = service(crm)
    c = svc.log(customer_id, channel="email", category="delivery", assignee="ann",
                description=f"{words}: parcel arrived late", at=at(2026, 11, 23, hour))  # fmt: skip
    svc.reply(c.id, f"Dear {words}, a replacement is on its way", actor="ann", show_author=True,
              at=at(2026, 11, 23, hour + 1))  # fmt: skip
    svc.reply(c.id, f"{words} sounded upset, call back", public=False, actor="ann",
              at=at(2026, 11, 23, hour + 2))  # fmt: skip
    svc.move(c.id, "resolved", root_cause=f"courier lost {words}'s label",
             resolution=f"sent {words} a new kettle", at=at(2026, 11, 24, hour))  # fmt: skip
    svc.survey(c.id, csat=2, nps=7, comment=f"{words} says: too slow", at=at(2026, 11, 25, hour))
    return svc.get(c.id)


# -- point 13: the export holds every personal value --------------------------------


def test_personal_columns_are_marked() -> None:
    assert marked() == PERSONAL


def test_export_gives_every_personal_value(setup: Any) -> None:
    crm, alice, _ = setup
    first = full_case(crm, alice.id, "Alice")
    second = service(crm).log(alice.id, channel="phone", category="billing",
                              description="charged twice")  # fmt: skip
    exported = crm.customers.export(alice.id)["plugins"]["complaints"]["complaints"]
    json.dumps(exported)
    by_id = {c["id"]: c for c in exported}
    assert set(by_id) == {first.id, second.id}
    for complaint_id in by_id:
        values = leaves(by_id[complaint_id])
        stored = stored_personal(crm, complaint_id)
        assert stored, "every complaint has personal values"
        for column, value in stored:
            assert value in values, f"{column} value {value!r} is missing from the export"
    entry = by_id[first.id]
    assert entry["survey"] == {"at": "2026-11-25T09:00:00+00:00", "csat": 2, "nps": 7,
                               "comment": "Alice says: too slow"}  # fmt: skip
    assert entry["root_cause"] == "courier lost Alice's label"
    assert entry["resolution"] == "sent Alice a new kettle"
    assert [(r["kind"], r["author"], r["body"]) for r in entry["replies"]] == [
        ("reply", "ann", "Dear Alice, a replacement is on its way"),
        ("internal note", None, "Alice sounded upset, call back"),
    ]
    assert by_id[second.id]["survey"] is None


# -- point 11: erasure blanks all of them, and may be re-run -------------------------


def test_erasure_blanks_every_personal_value_and_a_rerun_changes_nothing(setup: Any) -> None:
    crm, alice, vip = setup
    svc = service(crm)
    c = full_case(crm, alice.id, "Alice")
    other = full_case(crm, vip.id, "Victor", hour=10)
    crm.customers.erase(alice.id)
    for column, value in stored_personal(crm, c.id):
        if column.endswith((".csat", ".nps")):
            continue  # anonymous figures for the reports
        assert (
            "Alice" not in str(value)
            and value in ("", personal.ERASED)
            or (column.endswith("tracking_code") and value.startswith(personal.ERASED_CODE_PREFIX))
        ), (column, value)
    with pytest.raises(NotFound, match="no complaint has tracking code"):
        svc.status(c.tracking_code)  # the code the person held shows nothing any more
    text = json.dumps(crm.customers.export(alice.id), ensure_ascii=False)
    assert "Alice" not in text and c.tracking_code not in text
    (row,) = svc.report("channel", as_of=at(2026, 12, 1))
    assert (row["surveys"], row["csat"]) == (2, 2.0)  # scores stay, anonymous
    # the other customer keeps everything
    assert svc.status(other.tracking_code)["replies"][0]["body"].startswith("Dear Victor")
    # a re-run (a partial erasure completed later) finds nothing left to change
    erased = stored_personal(crm, c.id)
    with crm.transaction() as ctx:
        crm.call("crmkit_erase_personal_data", ctx=ctx, customer=crm.customers.get(alice.id))
        assert personal.erase(ctx.connection, [alice.id]) == 0
    assert stored_personal(crm, c.id) == erased


def test_erasure_without_complaints_enabled_still_erases_its_data(
    setup: Any, make_crm: Any
) -> None:
    crm, alice, _ = setup
    c = full_case(crm, alice.id, "Alice")
    without = make_crm()  # complaints installed, its tables here, but not enabled
    assert "complaints" not in without.plugin_names
    without.customers.erase(alice.id)
    assert "Alice" not in str(stored_personal(crm, c.id))
    exported = without.customers.export(alice.id)["plugins"]["complaints"]["complaints"]
    assert exported[0]["description"] == personal.ERASED


# -- point 12: no writes about an erased or merged customer --------------------------


def test_writes_about_an_erased_customer_are_refused(setup: Any, cli_runner: Any) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    c = svc.log(alice.id, channel="phone", category="delivery", description="late",
                at=at(2026, 11, 23, 9))  # fmt: skip
    svc.move(c.id, "resolved", resolution="refunded", at=at(2026, 11, 23, 10))
    crm.customers.erase(alice.id)
    before = (count(crm, t.complaints), count(crm, t.replies), count(crm, t.surveys))
    interactions = len(crm.interactions.list(customer_id=alice.id, limit=None))
    with pytest.raises(Conflict, match=f"customer {alice.id} was erased"):
        svc.log(alice.id, channel="phone", category="delivery", description="again")
    for write in (
        lambda: svc.reply(c.id, "hello"),
        lambda: svc.reply(c.id, "note", public=False),
        lambda: svc.survey(c.id, csat=5, nps=10, comment="great"),
        lambda: svc.move(c.id, "closed"),
        lambda: svc.assign(c.id, "ann"),
    ):
        with pytest.raises(Conflict, match=f"complaint #{c.id} takes no writes: customer "):
            write()
    r = cli_runner(["complaints", "log", "--customer", str(alice.id), "--channel", "email",
                    "--category", "delivery", "--description", "x"], plugins=["complaints"])  # fmt: skip
    assert r.exit_code == 1
    assert f"customer {alice.id} was erased" in r.output + r.stderr
    assert (count(crm, t.complaints), count(crm, t.replies), count(crm, t.surveys)) == before
    assert len(crm.interactions.list(customer_id=alice.id, limit=None)) == interactions
    assert svc.get(c.id).stage == "resolved"


def test_a_complaint_about_a_merged_customer_is_refused(setup: Any) -> None:
    crm, alice, vip = setup
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(customers).where(customers.c.id == vip.id).values(merged_into=alice.id)
        )
    with pytest.raises(Conflict, match=f"write to customer {alice.id} instead"):
        service(crm).log(vip.id, channel="phone", category="delivery", description="x")
    assert count(crm, t.complaints) == 0


# -- point 18: merging duplicates re-links their complaints --------------------------


def test_merge_relinks_complaints_and_tracking_codes_keep_working(setup: Any) -> None:
    crm, alice, _ = setup
    svc = service(crm)
    duplicate = crm.customers.add(name="Alice Li (dup)")
    mine = svc.log(alice.id, channel="web", category="process", description="forms")
    theirs = [full_case(crm, duplicate.id, "Ali"),
              svc.log(duplicate.id, channel="chat", category="billing", description="twice")]  # fmt: skip
    with crm.transaction() as ctx:
        answers = crm.call("crmkit_merge_customers", ctx=ctx, kept=alice, merged=duplicate)
        assert {"complaints": 2} in answers
        ctx.connection.execute(  # what the core's merge does after the hooks
            update(customers).where(customers.c.id == duplicate.id).values(merged_into=alice.id)
        )
    assert [c.id for c in svc.list(customer_id=alice.id)] == [mine.id, *(c.id for c in theirs)]
    assert svc.list(customer_id=duplicate.id) == []
    for c in theirs:
        assert svc.status(c.tracking_code)["tracking_code"] == c.tracking_code
        assert crm.workflows.get(c.workflow_instance_id).customer_id == alice.id
    exported = crm.customers.export(alice.id)["plugins"]["complaints"]["complaints"]
    assert exported[1]["survey"]["comment"] == "Ali says: too slow"
    assert "complaints" not in crm.customers.export(duplicate.id)["plugins"]
    # the moved complaints take writes again, as the kept customer's
    svc.reply(theirs[1].id, "refund sent")
    with crm.transaction() as ctx:  # nothing left to move
        assert crm.call("crmkit_merge_customers", ctx=ctx, kept=alice, merged=duplicate) == []


def test_the_core_merge_moves_complaints_and_records_it(setup: Any) -> None:
    crm, alice, _ = setup
    if not hasattr(crm.customers, "merge"):
        pytest.skip("the core has no crm.customers.merge yet")
    svc = service(crm)
    duplicate = crm.customers.add(name="Alice Li")
    c = full_case(crm, duplicate.id, "Ali")
    result = crm.customers.merge(alice.id, duplicate.id)
    assert result.moved["complaints"] == {"complaints": 1}
    assert svc.get(c.id).customer_id == alice.id
    assert svc.status(c.tracking_code)["stage"] == "resolved"
    svc.move(c.id, "closed")  # its workflow instance moved too: it takes writes
    with pytest.raises(Conflict, match=f"write to customer {alice.id} instead"):
        svc.log(duplicate.id, channel="phone", category="delivery", description="x")


# -- point 19: complaints and replies on the customer's timeline ---------------------


def test_timeline_has_complaints_opened_and_replies_sent(setup: Any) -> None:
    crm, alice, vip = setup
    svc = service(crm)
    first = svc.log(alice.id, channel="phone", category="delivery", description="late",
                    at=at(2026, 11, 23, 9))  # fmt: skip
    svc.reply(first.id, "on its way", at=at(2026, 11, 23, 10))
    svc.reply(first.id, "internal: courier again", public=False, at=at(2026, 11, 23, 11))
    second = svc.log(alice.id, channel="chat", category="billing", description="twice",
                     at=at(2026, 11, 24, 9))  # fmt: skip
    svc.log(vip.id, channel="chat", category="billing", description="not Alice's")
    (entries,) = crm.call("crmkit_customer_timeline", crm=crm, customer=alice, limit=10)
    assert all(isinstance(e, TimelineEntry) and e.source == "complaints" for e in entries)
    assert [(e.at, e.kind, e.body) for e in entries] == [
        (at(2026, 11, 24, 9), "complaint", "twice"),
        (at(2026, 11, 23, 10), "complaint_reply", "on its way"),
        (at(2026, 11, 23, 9), "complaint", "late"),
    ]
    assert f"#{second.id}" in entries[0].title and "billing" in entries[0].title
    assert f"#{first.id}" in entries[1].title
    (two,) = crm.call("crmkit_customer_timeline", crm=crm, customer=alice, limit=2)
    assert two == entries[:2]
    # the 360 view merges them with the interactions (the complaints logged two)
    shown = crm.customers.view(alice.id).timeline
    assert [e for e in shown if isinstance(e, TimelineEntry)] == entries
    assert len(shown) == len(entries) + 2


# -- point 7 (and 11, 18): catching up after complaints was off ----------------------


def test_catch_up_completes_erasures_and_merges_made_without_complaints(setup: Any) -> None:
    crm, alice, vip = setup
    svc = service(crm)
    erased = full_case(crm, alice.id, "Alice")
    moved = full_case(crm, vip.id, "Victor", hour=10)
    kept = crm.customers.add(name="Victor Wang")
    # what the core did while complaints was not loaded: the customer rows only
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(customers)
            .where(customers.c.id == alice.id)
            .values(name=f"erased customer {alice.id}", erased_at=at(2026, 12, 1))
        )
        ctx.connection.execute(
            update(customers).where(customers.c.id == vip.id).values(merged_into=kept.id)
        )
    with crm.transaction() as ctx:
        (line,) = crm.call("crmkit_catch_up", ctx=ctx, since=at(2026, 11, 30))
    assert line == (
        "completed the erasure of 1 customer(s); re-linked 1 complaint(s) of merged customers"
    )
    assert "Alice" not in str(stored_personal(crm, erased.id))
    assert svc.get(moved.id).customer_id == kept.id
    assert svc.status(moved.tracking_code)["replies"][0]["body"].startswith("Dear Victor")
    with crm.transaction() as ctx:  # idempotent: nothing left
        assert crm.call("crmkit_catch_up", ctx=ctx, since=None) == []


# -- point 20: vip values stored before complaints declared the attribute ------------


@pytest.fixture
def maybe(make_crm: Any) -> Any:
    """Customers added without complaints (vip undeclared), then complaints enabled."""
    before = make_crm()
    ids = [
        before.customers.add(name=name, attributes={"vip": value}).id
        for name, value in [("Mia Maybe", "maybe"), ("Val Vip", "yes"), ("Sid Sometimes", "2")]
    ]
    before.customers.add(name="Nora None")
    return make_crm(plugins=["complaints"]), ids


def test_enabling_complaints_reports_invalid_vip_values(maybe: Any, caplog: Any) -> None:
    pytest.importorskip("crmkit.core.catchup", reason="the core runs catch-ups on enabling")
    crm, (mia, _, sid) = maybe
    with caplog.at_level(logging.WARNING, logger="crmkit_complaints"):
        crm.staff.add("ann")  # the first write with complaints enabled: it catches up
    assert (
        f"2 customer(s) have a vip value that is not true or false ({mia}, {sid}); they are "
        "not treated as VIP: see 'crmkit complaints check'"
    ) in caplog.text


def test_check_reports_vip_values_that_are_not_booleans(maybe: Any, cli_runner: Any) -> None:
    crm, (mia, val, sid) = maybe
    r = cli_runner(["complaints", "check"], plugins=["complaints"])
    assert r.exit_code == 1, r.output
    assert r.output.splitlines() == [
        f"customer {mia} (Mia Maybe): attribute vip is 'maybe', not true or false; fix it "
        f"with 'crmkit customer edit {mia} --attr vip=true' (or false), or remove it with "
        "'--unset-attr vip'",
        f"customer {sid} (Sid Sometimes): attribute vip is '2', not true or false; fix it "
        f"with 'crmkit customer edit {sid} --attr vip=true' (or false), or remove it with "
        "'--unset-attr vip'",
        "2 customer(s) with a vip value that is not true or false",
    ]
    rows = json.loads(cli_runner(["complaints", "check", "--format", "json"],
                                 plugins=["complaints"]).output)  # fmt: skip
    assert [(row["customer_id"], row["value"]) for row in rows] == [(mia, "maybe"), (sid, "2")]
    with crm.transaction() as ctx:
        (line,) = crm.call("crmkit_catch_up", ctx=ctx, since=None)
    assert line.startswith(
        f"2 customer(s) have a vip value that is not true or false ({mia}, {sid})"
    )
    # fixing them: vip is the edit, so it must be a boolean
    crm.customers.update(mia, attributes={"vip": False})
    crm.customers.update(sid, attributes={"vip": None})
    r = cli_runner(["complaints", "check"], plugins=["complaints"])
    assert (r.exit_code, r.output) == (0, "every vip value is true or false\n")
    assert crm.customers.get(val).attributes["vip"] is True


def test_a_complaint_of_an_invalid_vip_customer_is_not_vip_and_warns(
    maybe: Any, caplog: Any
) -> None:
    crm, (mia, val, _) = maybe
    with caplog.at_level(logging.WARNING, logger="crmkit_complaints"):
        c = service(crm).log(mia, channel="chat", category="billing", description="x")
    assert c.priority == "normal"
    assert f"customer {mia}: attribute vip is 'maybe', not true or false" in caplog.text
    assert service(crm).log(val, channel="chat", category="billing", description="x").priority == (
        "urgent"
    )


def test_an_edit_that_does_not_touch_vip_succeeds(maybe: Any) -> None:
    crm, (mia, _, _) = maybe
    assert crm.customers.update(mia, city="Paris").city == "Paris"
    assert crm.customers.get(mia).attributes["vip"] == "maybe"  # kept as stored


def test_a_deactivated_staff_member_takes_no_complaints(make_crm: Any) -> None:
    crm = make_crm(plugins=["complaints"])
    crm.staff.add("ana", "Ana Agent", roles=["complaint_handler"])
    crm.staff.add("old", "Old Agent", roles=["complaint_handler"])
    customer = crm.customers.add(name="Li Na")
    case = service(crm).log(customer.id, channel="phone", category="billing", description="x")
    crm.staff.deactivate("old")
    with pytest.raises(Conflict, match="old"):
        service(crm).assign(case.id, "old")
    with pytest.raises(Conflict, match="old"):
        service(crm).log(
            customer.id, channel="phone", category="billing", description="y", assignee="old"
        )
    assert service(crm).assign(case.id, "ana").assignee == "ana"
