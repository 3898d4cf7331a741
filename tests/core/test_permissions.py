"""Issue 15, point 3: every core service authorises the current actor, through the Python API.

A matrix: each default role x each core service operation x a customer of the actor's own
(or team's) and another rep's customer. The expected outcome is computed from the role
table (CORE_PERMISSIONS): no grant -> Forbidden; a grant at ``all`` -> allowed; ``own`` ->
allowed for the member's own customer, NotFound for another's; ``team`` -> allowed for
customers owned by anyone reporting to them, directly or not. Then: team scope through a
chain of managers, a token's scopes narrowing a staff member, and a plugin rule refusing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import crmkit
from crmkit.core.actors import Actor
from crmkit.core.auditlog import AuditService
from crmkit.core.permissions import CORE_PERMISSIONS
from crmkit.errors import Forbidden, NotFound, TransitionRefused
from crmkit.transfer import export_file, import_file

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

#: the default roles and who holds them; "ann" and "bob" are sales reps of different
#: managers, "boss" manages "lead" who manages "ann" (a chain: team scope reaches ann)
MEMBERS = {
    "sales_rep": "ann",
    "sales_manager": "boss",
    "cost_accounting": "carl",
    "technical_support": "tess",
    "complaint_handler": "cora",
    "manager": "mona",
    "admin": "root",
}
GRANTS = {spec.name: dict(spec.default_grants) for spec in CORE_PERMISSIONS}
UNSCOPED = {spec.name for spec in CORE_PERMISSIONS if not spec.scoped}


def setup_staff(crm: crmkit.CRM) -> None:
    crm.staff.add("boss", "Boss", roles=["sales_manager"])
    crm.staff.add("lead", "Team lead", roles=["sales_manager"], manager="boss")
    crm.staff.add("ann", "Ann", roles=["sales_rep"], manager="lead")
    crm.staff.add("bob", "Bob", roles=["sales_rep"])
    for role, username in MEMBERS.items():
        if crm.staff.find(username) is None:
            crm.staff.add(username, username.title(), roles=[role])


def expected(role: str, action: str, owner: str | None) -> str:
    """'ok', 'forbidden' or 'notfound' for ``role`` doing ``action`` on a customer of
    ``owner`` (None: an action about no customer)."""
    if role == "admin":
        return "ok"
    scope = GRANTS[action].get(role)
    if scope is None:
        return "forbidden"
    if scope == "all" or owner is None or action in UNSCOPED:
        return "ok"
    member = MEMBERS[role]
    team = {"boss": {"boss", "lead", "ann"}}.get(member, {member})
    visible = {member} if scope == "own" else team
    return "ok" if owner in visible else "notfound"


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except Forbidden:
        return "forbidden"
    except NotFound:
        return "notfound"
    except TransitionRefused:  # past the permission check: the stage's own roles refused
        return "ok"
    return "ok"


# -- the operations: (name, permission, about a customer?, call(crm, fixture)) ------------


class Fixture:
    """Fresh records for one case, made by the operator: an organisation customer of
    ``owner`` with a contact, an order and a deal, plus a second customer to merge."""

    def __init__(self, crm: crmkit.CRM, owner: str, n: int, tmp: Path) -> None:
        self.customer = crm.customers.add(
            name=f"Org {n}", type="organisation", owner=owner, external_id=f"C-{n}"
        )
        self.other = crm.customers.add(name=f"Org {n} dup", type="organisation", owner=owner)
        self.contact = crm.customers.add_contact(self.customer.id, "Wang Fang")
        self.order = crm.orders.add(
            customer_id=self.customer.id, amount="10.00", occurred_at=T0, external_id=f"O-{n}"
        )
        self.deal = crm.workflows.start("sales", self.customer.id, f"Deal {n}")
        self.n = n
        self.tmp = tmp

    def import_file(self, crm: crmkit.CRM) -> Any:
        path = self.tmp / f"i{self.n}.csv"
        path.write_text(f"external_id,name\nI-{self.n},Imported {self.n}\n", encoding="utf-8")
        return import_file(crm, "customers", path)


OPERATIONS: list[tuple[str, str, bool, Callable[[crmkit.CRM, Fixture], Any]]] = [
    ("customers.get", "customers.read", True, lambda c, f: c.customers.get(f.customer.id)),
    ("customers.resolve", "customers.read", True, lambda c, f: c.customers.resolve(f"C-{f.n}")),
    ("customers.view", "customers.read", True, lambda c, f: c.customers.view(f.customer.id)),
    ("customers.contacts", "customers.read", True,
     lambda c, f: c.customers.contacts(f.customer.id)),
    ("customers.consent_history", "customers.read", True,
     lambda c, f: c.customers.consent_history(f.customer.id)),
    ("customers.update", "customers.write", True,
     lambda c, f: c.customers.update(f.customer.id, city="Hangzhou")),
    ("customers.set_consent", "customers.write", True,
     lambda c, f: c.customers.set_consent(f.customer.id, "marketing", True)),
    ("customers.add_contact", "customers.write", True,
     lambda c, f: c.customers.add_contact(f.customer.id, "Li Lei")),
    ("customers.update_contact", "customers.write", True,
     lambda c, f: c.customers.update_contact(f.contact.id, role="buyer")),
    ("customers.remove_contact", "customers.write", True,
     lambda c, f: c.customers.remove_contact(f.contact.id)),
    ("customers.export", "customers.export", True, lambda c, f: c.customers.export(f.customer.id)),
    ("customers.merge", "customers.merge", True,
     lambda c, f: c.customers.merge(f.customer.id, f.other.id, prefer={"name": "kept"})),
    ("customers.erase", "customers.erase", True, lambda c, f: c.customers.erase(f.customer.id)),
    ("interactions.log", "interactions.write", True,
     lambda c, f: c.interactions.log(f.customer.id, "phone", subject="call")),
    ("interactions.list", "interactions.read", True,
     lambda c, f: c.interactions.list(customer_id=f.customer.id)),
    ("orders.add", "orders.write", True,
     lambda c, f: c.orders.add(customer_id=f.customer.id, amount="5.00", occurred_at=T0)),
    ("orders.set_status", "orders.write", True,
     lambda c, f: c.orders.set_status(f.order.id, "refunded")),
    ("orders.get", "orders.read", True, lambda c, f: c.orders.get(f.order.id)),
    ("orders.list", "orders.read", True, lambda c, f: c.orders.list(customer_id=f.customer.id)),
    ("workflows.start", "workflows.move", True,
     lambda c, f: c.workflows.start("sales", f.customer.id, "Another deal")),
    ("workflows.move", "workflows.move", True,
     lambda c, f: c.workflows.move(f.deal.id, "lost", reason="no budget")),
    ("workflows.get", "workflows.read", True, lambda c, f: c.workflows.get(f.deal.id)),
    ("workflows.history", "workflows.read", True, lambda c, f: c.workflows.history(f.deal.id)),
    ("workflows.list", "workflows.read", True,
     lambda c, f: c.workflows.list(customer_id=f.customer.id)),
    ("staff.list", "staff.read", False, lambda c, f: c.staff.list()),
    ("staff.get", "staff.read", False, lambda c, f: c.staff.get("bob")),
    ("staff.add", "staff.admin", False, lambda c, f: c.staff.add(f"new{f.n}", "New")),
    ("staff.update", "staff.admin", False, lambda c, f: c.staff.update("bob", department="x")),
    ("staff.deactivate", "staff.admin", False, lambda c, f: c.staff.deactivate("bob")),
    ("staff.activate", "staff.admin", False, lambda c, f: c.staff.activate("bob")),
    ("audit.list", "audit.read", False, lambda c, f: AuditService(c).list(limit=5)),
    ("import", "import.run", False, lambda c, f: f.import_file(c)),
    ("export_file", "import.run", False,
     lambda c, f: export_file(c, "orders", f.tmp / f"e{f.n}.csv")),
]  # fmt: skip


def test_the_role_matrix_through_the_python_api(crm: crmkit.CRM, tmp_path: Path) -> None:
    setup_staff(crm)
    mismatches = []
    n = 0
    for role, username in MEMBERS.items():
        actor = crm.staff.actor(username)
        for name, action, about_customer, call in OPERATIONS:
            owners = ("ann", "bob") if about_customer else (None,)
            for owner in owners:
                n += 1
                fixture = Fixture(crm, owner or "ann", n, tmp_path)
                want = expected(role, action, owner)
                with crm.acting_as(actor):
                    got = outcome(lambda: call(crm, fixture))  # noqa: B023
                if got != want:
                    mismatches.append(f"{role} {name} on {owner}'s customer: {got}, want {want}")
    assert not mismatches, "\n".join(mismatches)
    assert n > 300


def test_a_refused_write_changes_nothing(crm: crmkit.CRM) -> None:
    setup_staff(crm)
    theirs = crm.customers.add(name="Bob's", owner="bob")
    with crm.acting_as(crm.staff.actor("ann")):
        with pytest.raises(NotFound):
            crm.customers.update(theirs.id, city="Nowhere")
        with pytest.raises(NotFound):
            crm.interactions.log(theirs.id, "phone", subject="sneaky")
        with pytest.raises(Forbidden):
            crm.customers.erase(theirs.id)
    assert crm.customers.get(theirs.id).city is None
    assert crm.interactions.list(customer_id=theirs.id) == []
    assert crm.customers.get(theirs.id).erased_at is None


def test_team_scope_follows_the_chain_of_managers(crm: crmkit.CRM) -> None:
    setup_staff(crm)
    anns = crm.customers.add(name="Ann's", owner="ann")
    leads = crm.customers.add(name="Lead's", owner="lead")
    bobs = crm.customers.add(name="Bob's", owner="bob")
    with crm.acting_as(crm.staff.actor("boss")):  # boss > lead > ann
        assert {c.id for c in crm.customers.list()} == {anns.id, leads.id}
        crm.customers.update(anns.id, city="Suzhou")  # two levels down
        with pytest.raises(NotFound):
            crm.customers.get(bobs.id)
    with crm.acting_as(crm.staff.actor("lead")):
        assert {c.id for c in crm.customers.list()} == {anns.id, leads.id}
    crm.staff.update("ann", manager="bob")  # ann moves to another team
    with crm.acting_as(crm.staff.actor("boss")):
        assert {c.id for c in crm.customers.list()} == {leads.id}
        with pytest.raises(NotFound):
            crm.customers.get(anns.id)


def test_owners_of_new_customers_stay_inside_the_scope(crm: crmkit.CRM) -> None:
    setup_staff(crm)
    with crm.acting_as(crm.staff.actor("ann")):
        mine = crm.customers.add(name="No owner given")
        assert mine.owner == "ann"  # a rep's customer without owner becomes theirs
        with pytest.raises(Forbidden):
            crm.customers.add(name="For Bob", owner="bob")
        with pytest.raises(Forbidden):
            crm.customers.update(mine.id, owner="bob")  # nor give one away
        assert crm.customers.get(mine.id).owner == "ann"
    with crm.acting_as(crm.staff.actor("boss")):
        assert crm.customers.add(name="For Ann", owner="ann").owner == "ann"
        with pytest.raises(Forbidden):
            crm.customers.add(name="For Bob", owner="bob")
    assert crm.customers.add(name="Operator's").owner is None  # operators: all


def test_a_tokens_scopes_narrow_the_staff_member(crm: crmkit.CRM) -> None:
    setup_staff(crm)
    anns = crm.customers.add(name="Ann's", owner="ann")
    token = crm.staff.actor("ann").through_token(7, {"customers.read", "orders.*"})
    with crm.acting_as(token):
        assert crm.customers.get(anns.id).name == "Ann's"
        crm.orders.add(customer_id=anns.id, amount="1.00", occurred_at=T0)
        with pytest.raises(Forbidden, match="token"):
            crm.customers.update(anns.id, city="Wuxi")
        with pytest.raises(Forbidden):
            crm.interactions.log(anns.id, "phone")
    # the token never widens: a manager's token for customers.read still cannot erase
    wide = crm.staff.actor("mona").through_token(8, {"customers.*"})
    with crm.acting_as(wide), pytest.raises(Forbidden):
        crm.orders.list()
    entries = AuditService(crm).list(action="order.create")
    assert entries[0].actor == "token:7:ann" and entries[0].actor_kind == "token"


class NoEditsOfVips:
    CRMKIT_NAME = "vip_rule"

    @crmkit.hookimpl
    def crmkit_permission_allowed(self, crm, actor, action, resource):
        about = resource.customer_id if resource is not None else None
        if (
            action == "customers.write"
            and about
            and crm.customers._get(about).attributes.get("vip")
        ):
            return "VIP customers are edited by key account managers only"
        return None


def test_a_plugin_rule_refuses_even_a_manager(make_crm: Any) -> None:
    crm = make_crm(plugins=[NoEditsOfVips()])
    setup_staff(crm)
    vip = crm.customers.add(name="VIP", owner="ann", attributes={"vip": True})
    plain = crm.customers.add(name="Plain", owner="ann")
    with crm.acting_as(crm.staff.actor("mona")):
        with pytest.raises(Forbidden, match="key account managers"):
            crm.customers.update(vip.id, city="Beijing")
        crm.customers.update(plain.id, city="Beijing")
        assert crm.customers.get(vip.id).city is None
    with pytest.raises(Forbidden):  # the rule binds the operator too
        crm.customers.update(vip.id, city="Beijing")


def test_lookups_need_no_permission_and_deactivated_staff_cannot_act(crm: crmkit.CRM) -> None:
    setup_staff(crm)
    nobody = Actor.for_staff("ghost", [])  # no roles at all
    with crm.acting_as(nobody):
        assert crm.staff.actor("ann").username == "ann"  # sign-in, --as: no staff.read
        assert crm.staff.find("bob") is not None
        with pytest.raises(Forbidden):
            crm.staff.list()
        with pytest.raises(Forbidden):
            crm.customers.list()
    crm.staff.deactivate("bob")
    with pytest.raises(Exception, match="deactivated"):
        crm.staff.actor("bob")


def test_a_staff_actor_may_not_record_work_as_someone_else(crm: crmkit.CRM) -> None:
    setup_staff(crm)
    anns = crm.customers.add(name="Ann's", owner="ann")
    with crm.acting_as(crm.staff.actor("ann")):
        with pytest.raises(Forbidden):
            crm.customers.set_consent(anns.id, "marketing", True, actor="bob")
        # staff on an interaction is data: who handled the call, not who records it
        logged = crm.interactions.log(anns.id, "phone", staff="bob")
        assert logged.staff == "bob"
        assert crm.interactions.log(anns.id, "email").staff == "ann"
    entries = AuditService(crm).list(action="interaction.log")
    assert [(e.actor, e.on_behalf_of) for e in entries] == [("ann", None), ("ann", None)]
