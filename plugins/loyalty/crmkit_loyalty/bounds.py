"""Each member's spend bound: at least their customer's paid spend of all time.

A batch earning set-based needs, for each order of a member below the top tier, the
spend of the customer's paid orders in the 12 months ending at the order (one index
range per order, the largest cost of the batch). No window holds more than all the
customer's paid orders, so when ``spend_bound`` plus the batch's orders up to this one
stays below the next tier's threshold the order cannot move the member up, and its
window is not read (:func:`crmkit_loyalty.setbased.fill`).

``loyalty_members.spend_bound`` (1/10,000 units) is only ever an upper bound; NULL
means unknown (every order's window is read). What raises a customer's paid spend
raises it in the same transaction:

* an imported or new batch earning set-based adds its orders (the balance update);
* order-by-order earning (new orders, orders paid later, replays) and catching up
  (orders stored while the plugin was off) raise the bounds below the spend
  (:func:`raise_to_spend`); a merge (the merged customer's orders move) and enabling a
  program (its members were not kept while it was off) raise them to the spend
  (:func:`refresh`); enrolment sets them (:func:`set_new_members`).

Refunds, cancellations and deleted orders lower the spend and leave the bound as it is:
still an upper bound, only looser until the next :func:`refresh`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, case, cast, func, select, update
from sqlalchemy.sql.elements import ColumnElement

import crmkit.plugin as ck
from crmkit_loyalty import tables as t

#: money is stored with at most 4 decimals: amounts become integers of 1/10,000
SCALE = 10_000


def units(amount: Any, dialect: str) -> ColumnElement[Any]:
    """An amount in 1/10,000 as an integer in SQL, negative amounts as 0."""
    positive = case((amount > 0, amount), else_=0)
    if dialect == "sqlite":  # NUMERIC affinity keeps a double: round it back to 4 decimals
        return cast(func.round(positive * SCALE), BigInteger)
    return cast(positive * SCALE, BigInteger)


def customer_spend(customer_id: Any, dialect: str) -> Any:
    """The customer's paid spend of all time in 1/10,000 (a scalar subquery)."""
    o = ck.orders.c
    if dialect == "sqlite":  # exact integers: SQLite sums NUMERIC as floating point
        total: Any = func.sum(units(o.amount, dialect))
    else:
        total = cast(func.sum(case((o.amount > 0, o.amount), else_=0)) * SCALE, BigInteger)
    return (
        select(func.coalesce(total, 0))
        .where(o.customer_id == customer_id, o.status == "paid")
        .scalar_subquery()
    )


def refresh(
    connection: Any, where: Iterable[ColumnElement[bool]] = (), *, new: bool = False
) -> None:
    """Raise the members' (those matching ``where``, else all) bounds to their customer's
    paid spend; ``new``: members inserted by this transaction, set from NULL.

    Only ever raised (NULL, unknown, stays NULL): on PostgreSQL a batch committed while
    this statement waited for a member's lock has added its orders to the bound, and
    this statement's sum, read before that commit, may not count them."""
    m = t.members
    dialect = connection.dialect.name
    spend = customer_spend(m.c.customer_id, dialect)
    if not new:
        larger = func.greatest if dialect == "postgresql" else func.max
        spend = case((m.c.spend_bound.is_(None), None), else_=larger(m.c.spend_bound, spend))
    connection.execute(update(m).where(*where).values(spend_bound=spend))


def raise_to_spend(connection: Any, where: Iterable[ColumnElement[bool]] = ()) -> None:
    """Raise the bounds (of the members matching ``where``, else all) that are below their
    customer's paid spend; writes nothing when every bound holds (a replay of orders
    already counted, a catch-up with nothing missed: no write, so no audit entry)."""
    m = t.members
    spend = customer_spend(m.c.customer_id, connection.dialect.name)
    low = list(connection.scalars(select(m.c.id).where(*where, m.c.spend_bound < spend)))
    for start in range(0, len(low), 5_000):
        refresh(connection, [m.c.id.in_(low[start : start + 5_000])])


def raise_members(connection: Any, member_ids: Iterable[int]) -> None:
    """:func:`raise_to_spend` for these members."""
    ids = sorted(set(member_ids))
    for start in range(0, len(ids), 5_000):
        raise_to_spend(connection, [t.members.c.id.in_(ids[start : start + 5_000])])


def set_new_members(connection: Any, member_ids: Iterable[int]) -> None:
    """The bounds of members this transaction inserted, from their customers' orders."""
    ids = sorted(set(member_ids))
    for start in range(0, len(ids), 5_000):
        refresh(connection, [t.members.c.id.in_(ids[start : start + 5_000])], new=True)


def refresh_customers(connection: Any, customer_ids: Iterable[int]) -> None:
    """:func:`refresh` for these customers' members (every program)."""
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), 5_000):
        refresh(connection, [t.members.c.customer_id.in_(ids[start : start + 5_000])])
