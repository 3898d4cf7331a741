"""Issue 15, point 3: list queries keep what the actor's scope lets them see.

Customers, orders, interactions and workflow instances, listed by a sales rep (own), a
sales manager (team, through a chain of managers) and a manager (all); counts, iteration,
filters combined with the scope, duplicates, workflow figures; and a property test: for
any assignment of owners, a rep's customer list is exactly the customers they own. Both
backends.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OWNERS = ("ann", "bea", "bob", "lead", None)


def setup(crm: crmkit.CRM) -> dict[str | None, int]:
    """Staff (boss > lead > ann, bea; bob alone; mona a manager) and one customer per owner
    with an order, an interaction and a deal; returns customer ids by owner."""
    crm.staff.add("boss", "Boss", roles=["sales_manager"])
    crm.staff.add("lead", "Lead", roles=["sales_manager"], manager="boss")
    crm.staff.add("ann", "Ann", roles=["sales_rep"], manager="lead")
    crm.staff.add("bea", "Bea", roles=["sales_rep"], manager="lead")
    crm.staff.add("bob", "Bob", roles=["sales_rep"])
    crm.staff.add("mona", "Mona", roles=["manager"])
    ids: dict[str | None, int] = {}
    for n, owner in enumerate(OWNERS):
        customer = crm.customers.add(name=f"Customer of {owner}", owner=owner, region="East")
        crm.orders.add(customer_id=customer.id, amount="10.00", occurred_at=T0 + dt.timedelta(n))
        crm.interactions.log(customer.id, "phone", subject=f"call {owner}", occurred_at=T0)
        crm.workflows.start("sales", customer.id, f"Deal of {owner}")
        ids[owner] = customer.id
    return ids


VISIBLE = {
    "ann": {"ann"},
    "bob": {"bob"},
    "lead": {"lead", "ann", "bea"},
    "boss": {"lead", "ann", "bea"},
    "mona": set(OWNERS),
}


def test_lists_keep_the_customers_in_scope(crm: crmkit.CRM) -> None:
    ids = setup(crm)
    for username, owners in VISIBLE.items():
        want = {ids[o] for o in owners}
        with crm.acting_as(crm.staff.actor(username)):
            assert {c.id for c in crm.customers.list(limit=None)} == want, username
            assert {c.id for c in crm.customers.iterate()} == want, username
            assert crm.customers.count() == len(want), username
            assert {o.customer_id for o in crm.orders.list(limit=None)} == want, username
            assert {i.customer_id for i in crm.interactions.list(limit=None)} == want, username
            assert {w.customer_id for w in crm.workflows.list()} == want, username
            entered = sum(f.entered for f in crm.workflows.figures("sales"))
            assert entered == len(want), username


def test_filters_combine_with_the_scope(crm: crmkit.CRM) -> None:
    ids = setup(crm)
    with crm.acting_as(crm.staff.actor("lead")):
        assert [c.id for c in crm.customers.list(owner="bob")] == []
        assert [c.id for c in crm.customers.list(owner="ann")] == [ids["ann"]]
        assert crm.orders.list(owner="bob") == []
        assert [o.customer_id for o in crm.orders.list(text="Customer of bea")] == [ids["bea"]]
        assert crm.interactions.list(text="call bob") == []
        assert crm.workflows.list(owner=None, customer_id=ids["bea"])[0].title == "Deal of bea"
    with crm.acting_as(crm.staff.actor("ann")):
        assert crm.orders.get_many([1, 2, 3, 4, 5]) == crm.orders.list(limit=None)


def test_duplicates_list_only_pairs_the_actor_sees(crm: crmkit.CRM) -> None:
    crm.staff.add("ann", "Ann", roles=["sales_rep"])
    crm.staff.add("bob", "Bob", roles=["sales_rep"])
    a1 = crm.customers.add(name="Wang Lei", email="wl@example.cn", owner="ann")
    a2 = crm.customers.add(name="Wang Lei", email="WL@example.cn", owner="ann")
    crm.customers.add(name="Wang Lei", email="wl@example.cn", owner="bob")
    assert len(crm.customers.duplicates().pairs) == 3
    with crm.acting_as(crm.staff.actor("ann")):
        pairs = crm.customers.duplicates().pairs
        assert [(p.first_id, p.second_id) for p in pairs] == [(a1.id, a2.id)]
        assert [c.customer_id for c in crm.customers.find_duplicates_of(a1.id)] == [a2.id]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(owners=st.lists(st.sampled_from(OWNERS), min_size=0, max_size=12))
def test_a_reps_list_is_exactly_the_customers_they_own(crm: crmkit.CRM, owners: list[Any]) -> None:
    if crm.staff.find("ann") is None:
        crm.staff.add("lead", "Lead", roles=["sales_manager"])
        for name in ("ann", "bea", "bob"):
            crm.staff.add(name, name.title(), roles=["sales_rep"], manager="lead")
    tag = f"run-{next(_runs)}"  # each example lists only its own customers
    made = [crm.customers.add(name=f"{tag} {i}", owner=o, region=tag) for i, o in enumerate(owners)]
    for rep in ("ann", "bea", "bob"):
        with crm.acting_as(crm.staff.actor(rep)):
            seen = {c.id for c in crm.customers.list(region=tag, limit=None)}
            assert seen == {c.id for c in made if c.owner == rep}
            assert crm.customers.count(region=tag) == len(seen)
    with crm.acting_as(crm.staff.actor("lead")):
        seen = {c.id for c in crm.customers.list(region=tag, limit=None)}
        assert seen == {c.id for c in made if c.owner in {"lead", "ann", "bea", "bob"}}


_runs = itertools.count()
