"""The CLI: a complaint's life, errors as one line, check-sla once only."""

from __future__ import annotations

from typing import Any

from crmkit.testing import run_cli


def run(url: str, *args: str) -> Any:
    return run_cli(["complaints", *args], database=url, plugins=["complaints"])


def test_cli_walkthrough(make_crm: Any, database_url: str) -> None:
    crm = make_crm(plugins=["complaints"])
    crm.staff.add("boss", roles=["manager"])
    crm.staff.add("ann", roles=["complaint_handler"], manager="boss")
    alice = crm.customers.add(name="Alice Li")
    r = run(database_url, "log", "--customer", str(alice.id), "--channel", "email",
            "--category", "delivery", "--description", "Parcel late", "--assignee", "ann",
            "--at", "2026-11-23T09:00+00:00", "--format", "json")  # fmt: skip
    assert r.exit_code == 0, r.output
    import json

    logged = json.loads(r.output)[0]
    code = logged["tracking_code"]
    assert logged["first_response_due_at"].startswith("2026-11-24T09:00")
    r = run(database_url, "check-sla", "--as-of", "2026-11-23T21:00+00:00")
    assert r.exit_code == 0, r.output
    assert "to ann: SLA warning: complaint #1 first response is due at 2026-11-24T09:00" in r.output
    assert "1 new alert(s)" in r.output
    r = run(database_url, "check-sla", "--as-of", "2026-11-23T21:00+00:00")
    assert "0 new alert(s)" in r.output
    r = run(database_url, "reply", "1", "Sorry, we are on it.", "--staff", "ann",
            "--at", "2026-11-23T22:00+00:00")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert run(database_url, "reply", "1", "courier X again", "--internal").exit_code == 0
    r = run(database_url, "move", "1", "investigating", "--staff", "ann",
            "--at", "2026-11-24T10:00+00:00")  # fmt: skip
    assert "is now investigating" in r.output
    r = run(database_url, "move", "1", "resolved", "--staff", "ann", "--resolution", "resent",
            "--root-cause", "courier lost it", "--at", "2026-11-25T10:00+00:00")  # fmt: skip
    assert "is now resolved" in r.output, r.output
    assert run(database_url, "survey", "1", "--csat", "5", "--recommend", "9").exit_code == 0
    r = run(database_url, "status", code)
    assert r.exit_code == 0
    assert "Resolved" in r.output and "Sorry, we are on it." in r.output
    assert "courier X" not in r.output
    r = run(database_url, "report", "--by", "channel", "--format", "json")
    row = json.loads(r.output)[0]
    assert row["channel"] == "email" and row["csat"] == 5.0 and row["nps"] == 100.0
    r = run(database_url, "departments")
    assert "logistics" in r.output and "courier lost it" in r.output
    r = run(database_url, "propose", "1")
    assert "no plugin offers reply proposals" in r.output
    r = run(database_url, "show", "1")
    assert "[internal]" in r.output and "resolution_wall_h" in r.output


def test_cli_errors_are_one_line(make_crm: Any, database_url: str) -> None:
    make_crm(plugins=["complaints"])
    r = run(database_url, "show", "7")
    assert r.exit_code == 1 and "no complaint 7" in r.output
    r = run(database_url, "status", "C-unknown")
    assert r.exit_code == 1 and "no complaint has tracking code" in r.output
    r = run(database_url, "log", "--customer", "99", "--channel", "phone",
            "--category", "delivery", "--description", "x")  # fmt: skip
    assert r.exit_code == 1 and "99" in r.output
    r = run(database_url, "check-sla", "--as-of", "tomorrow")
    assert r.exit_code == 1 and "not a date-time" in r.output
