"""Permissions and the audit log of loyalty, through the Python API.

Every default role x every loyalty operation on a customer of rep_a's (rep_a reports to
the sales manager ``sm``): allowed, Forbidden (no permission: 403) or NotFound (a
customer outside the actor's own/team scope: 404, as if there were none). Every write
leaves its audit entry, with who, what and the figures before and after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from crmkit_loyalty import loyalty
from crmkit_loyalty.plugin import EXAMPLES
from crmkit_loyalty.testing import at, pay
from sqlalchemy import text

from crmkit.plugin import Forbidden, NotFound
from crmkit.testing import run_cli

STAFF = [  # username, roles, manager
    ("sm", ["sales_manager"], None),
    ("rep_a", ["sales_rep"], "sm"),
    ("rep_b", ["sales_rep"], None),
    ("ca", ["cost_accounting"], None),
    ("ts", ["technical_support"], None),
    ("ch", ["complaint_handler"], None),
    ("mg", ["manager"], None),
    ("ad", ["admin"], None),
]
ROLES = [username for username, _, _ in STAFF]

OK, NO, HIDDEN = "ok", "403", "404"


def _expect(allowed: set[str], hidden: set[str] = frozenset()) -> dict[str, str]:  # type: ignore[assignment]
    return {u: OK if u in allowed else HIDDEN if u in hidden else NO for u in ROLES}


READERS = _expect({"sm", "rep_a", "ts", "ch", "mg", "ad"}, {"rep_b"})
SELLERS = _expect({"sm", "rep_a", "mg", "ad"}, {"rep_b"})
#: the expected outcome of each operation on rep_a's customer, per acting staff member
MATRIX: dict[str, dict[str, str]] = {
    "member": READERS,
    "balance": READERS,
    "statement": READERS,
    "memberships": READERS,
    "enrol": SELLERS,
    "earn": SELLERS,
    "redeem": SELLERS,
    "adjust": _expect({"mg", "ad"}),
    "set_enabled": _expect({"mg", "ad"}),
    "expire": _expect({"mg", "ad"}),
    "review_tiers": _expect({"mg", "ad"}),
    "liability": _expect({"ca", "mg", "ad"}),
    "rewards": _expect({"sm", "rep_a", "rep_b", "ts", "ch", "mg", "ad"}),
}


@pytest.fixture
def world(make_crm: Any) -> Any:
    crm = make_crm(plugins=["loyalty"])
    for username, roles, manager in STAFF:
        crm.staff.add(username, username.upper(), roles=roles, manager=manager)
    service = loyalty(crm)
    service.load_program_file(EXAMPLES / "retail_club.toml")
    a = crm.customers.add(name="Acme Ann", owner="rep_a")
    b = crm.customers.add(name="Bolt Bob", owner="rep_b")
    service.enrol(a.id)
    service.enrol(b.id)
    pay(crm, a.id, "9000.00", at(2026, 3, 1))  # plenty of points to redeem
    return crm, service, a.id, b.id


def operations(service: Any, crm: Any, customer_id: int) -> dict[str, Callable[[], Any]]:
    def enrol() -> Any:
        with crm.acting_as(crm.default_actor):  # the operator adds rep_a's customer
            fresh = crm.customers.add(name="Fresh", owner="rep_a")
        with crm.acting_as(actor):
            return service.enrol(fresh.id)

    actor = crm.actor  # rebound by run() before each call
    return {
        "member": lambda: service.member(customer_id),
        "balance": lambda: service.balance(customer_id),
        "statement": lambda: service.statement(customer_id),
        "memberships": lambda: service.memberships(customer_id),
        "enrol": enrol,
        "earn": lambda: service.earn(customer_id),
        "redeem": lambda: service.redeem(customer_id, "voucher-5"),
        "adjust": lambda: service.adjust(customer_id, 10, reason="goodwill"),
        "set_enabled": lambda: service.set_enabled("retail-club", True),
        "expire": lambda: service.expire("2026-03-02"),
        "review_tiers": lambda: service.review_tiers("2026-03-02"),
        "liability": lambda: service.liability(),
        "rewards": lambda: service.rewards(),
    }


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except Forbidden:
        return NO
    except NotFound:
        return HIDDEN
    return OK


def test_every_role_on_every_operation(world: Any) -> None:
    crm, service, a, _ = world
    wrong = []
    for username in ROLES:
        actor = crm.staff.actor(username)
        for name, expected in MATRIX.items():
            with crm.acting_as(actor):
                ops = operations(service, crm, a)
                got = outcome(ops[name])
            if got != expected[username]:
                wrong.append(f"{username} {name}: expected {expected[username]}, got {got}")
    assert not wrong, "\n".join(wrong)


def test_another_reps_customer_is_not_found_and_nothing_is_written(world: Any) -> None:
    crm, service, a, b = world
    before = service.balance(b)
    with crm.acting_as(crm.staff.actor("rep_a")):
        for call in (
            lambda: service.member(b),
            lambda: service.statement(b),
            lambda: service.earn(b),
            lambda: service.redeem(b, "voucher-5"),
        ):
            with pytest.raises(NotFound, match=f"no customer {b}$"):
                call()
        # a customer that does not exist reads the same
        with pytest.raises(NotFound, match="no customer 999999$"):
            service.member(999999)
        with pytest.raises(Forbidden, match=r"loyalty\.adjust"):
            service.adjust(b, 100000, reason="test")
        # members lists only rep_a's customers
        assert [m["customer_id"] for m in service.members()] == [a]
        assert [m["customer_id"] for m in service.members_page()] == [a]
    with crm.acting_as(crm.staff.actor("sm")):
        assert [m["customer_id"] for m in service.members()] == [a]
    assert service.balance(b) == before
    assert {m["customer_id"] for m in service.members()} == {a, b}  # the operator sees all


def audit_rows(crm: Any, action: str | None = None) -> list[dict[str, Any]]:
    with crm.reading() as connection:
        rows = connection.execute(
            text(
                "SELECT actor, actor_kind, on_behalf_of, action, entity, entity_id, "
                "customer_id, changes FROM audit_log ORDER BY id"
            )
        ).all()
    found = []
    for row in rows:
        entry = dict(row._mapping)
        if isinstance(entry["changes"], str):
            entry["changes"] = json.loads(entry["changes"])
        if action is None or entry["action"] == action:
            found.append(entry)
    return found


def test_every_write_is_audited(world: Any) -> None:
    crm, service, a, b = world
    # the order paid above earned as part of the core's write: one entry with counts
    (earned,) = [e for e in audit_rows(crm, "loyalty.earn") if e["entity"] == "orders"]
    assert earned["customer_id"] == a and earned["changes"]["entries"][1] >= 1
    assert earned["changes"]["points"][1] == service.balance(a) - 50  # after sign-up
    balance = service.balance(a)
    with crm.acting_as(crm.staff.actor("mg")):
        service.adjust(a, 250, reason="damaged parcel")
        service.redeem(a, "voucher-5")
        service.set_enabled("retail-club", False)
        service.set_enabled("retail-club", True)
    (adjusted,) = audit_rows(crm, "loyalty.adjust")
    assert (adjusted["actor"], adjusted["actor_kind"], adjusted["customer_id"]) == (
        "mg",
        "staff",
        a,
    )
    assert adjusted["entity"] == "member"
    assert adjusted["changes"]["balance"] == [balance, balance + 250]
    assert adjusted["changes"]["reason"] == [None, "damaged parcel"]
    (redeemed,) = audit_rows(crm, "loyalty.redeem")
    assert redeemed["changes"]["balance"] == [balance + 250, balance - 250]
    assert redeemed["changes"]["reward"] == [None, "voucher-5"]
    assert [e["action"] for e in audit_rows(crm) if e["action"].startswith("loyalty.program")] == [
        "loyalty.program.load", "loyalty.program.disable", "loyalty.program.enable",
    ]  # fmt: skip
    enrolled = audit_rows(crm, "loyalty.enrol")
    assert [e["customer_id"] for e in enrolled] == [a, b]
    # the ledger names the staff member from the actor
    statement = service.statement(a)
    assert "by mg; damaged parcel" in statement["entries"][-2]["cause"]
    # nothing loyalty wrote fell to the safety net ("write" with table names)
    assert not [e for e in audit_rows(crm, "write") if "loyalty" in json.dumps(e["changes"])]


def test_bulk_paths_record_one_entry_per_batch(world: Any) -> None:
    crm, service, a, b = world
    others = [crm.customers.add(name=f"C{i}", owner="rep_b").id for i in range(30)]
    service.enrol_many(others)
    for customer_id in others:
        pay(crm, customer_id, "10.00", at(2026, 3, 2))
    rows = audit_rows(crm)
    assert len([e for e in rows if e["action"] == "loyalty.enrol"]) == 3  # a, b, one batch
    bulk = [e for e in rows if e["action"] == "loyalty.enrol" and e["entity"] == "program"]
    assert bulk[0]["changes"]["members"] == [None, 30]
    before = len(audit_rows(crm))
    assert service.earn_existing() >= 1
    assert len(audit_rows(crm)) - before <= 1  # one chunk: at most one entry


def test_staff_may_not_record_work_as_someone_else(world: Any) -> None:
    crm, service, a, _ = world
    with crm.acting_as(crm.staff.actor("mg")):
        with pytest.raises(Forbidden, match="may not record work as 'sm'"):
            service.adjust(a, 5, reason="x", staff="sm")
        entry = service.adjust(a, 5, reason="x", staff="mg")  # naming themselves is fine
    assert entry.staff == "mg"
    # the operator records work for a staff member: on behalf of them
    entry = service.adjust(a, 5, reason="phoned in", staff="sm")
    assert entry.staff == "sm"
    last = audit_rows(crm, "loyalty.adjust")[-1]
    assert last["on_behalf_of"] == "sm" and last["actor_kind"] == "python"


def test_cli_as_a_sales_rep_cannot_grant_points(world: Any) -> None:
    crm, service, a, _ = world
    url = crm.config.database
    before = service.balance(a)
    r = run_cli(
        ["--as", "rep_a", "loyalty", "adjust", str(a), "100000", "--reason", "test"],
        database=url,
        plugins=["loyalty"],
    )
    assert r.exit_code == 1 and "loyalty.adjust" in r.output, r.output
    r = run_cli(["--as", "rep_a", "loyalty", "balance", str(a), "--format", "json"],
                database=url, plugins=["loyalty"])  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.output)[0]["balance"] == before
    assert service.balance(a) == before
    assert Decimal(before) > 0
