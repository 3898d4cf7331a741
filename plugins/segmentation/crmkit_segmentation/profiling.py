"""Profiling consent: a customer who withdrew it is left out of every analysis.

Withdrawn means the core's consent record for the purpose ``profiling`` says
``granted = false`` (the public ``crmkit.plugin.consents`` table); a customer who was never
asked is analysed. Every analysis filters such customers out in SQL with
:func:`allowed` (``NOT EXISTS`` a withdrawal), applied to the per-customer aggregate so the
cost is one index probe per customer, not per order; rows returned by a pack from another
plugin are filtered in Python with :func:`withdrawn_ids`. :func:`left_out` counts them for
the summaries (":func:`note`": ``3 customers left out: profiling consent withdrawn``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import consents, customers, orders

from .scope import as_of_end, check_scope, counted_orders, scope_clauses

PURPOSE = "profiling"
CHUNK = 5000


def _withdrawal(customer_id: Any) -> Any:
    return sa.exists().where(
        consents.c.customer_id == customer_id,
        consents.c.purpose == PURPOSE,
        consents.c.granted.is_(False),
    )


def allowed(customer_id: Any) -> sa.ColumnElement[bool]:
    """SQL: the customer (a column or expression) has not withdrawn profiling consent."""
    return ~_withdrawal(customer_id)


def withdrawn_ids(conn: sa.Connection, customer_ids: Iterable[int]) -> set[int]:
    """The ids among ``customer_ids`` whose profiling consent is withdrawn."""
    ids = sorted({int(c) for c in customer_ids})
    found: set[int] = set()
    query = sa.select(consents.c.customer_id).where(
        consents.c.purpose == PURPOSE, consents.c.granted.is_(False)
    )
    if len(ids) > CHUNK:  # a whole snapshot: one read of every withdrawal, not an IN per chunk
        return set(ids).intersection(conn.scalars(query))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        found |= set(conn.scalars(query.where(consents.c.customer_id.in_(chunk))))
    return found


def withdrawal(conn: sa.Connection, customer_id: int) -> dt.datetime | None:
    """When the customer withdrew profiling consent, or None when they have not."""
    return conn.scalar(
        sa.select(consents.c.changed_at).where(
            consents.c.customer_id == customer_id,
            consents.c.purpose == PURPOSE,
            consents.c.granted.is_(False),
        )
    )


def left_out(
    conn: sa.Connection,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    start: dt.datetime | None = None,
) -> int:
    """In-scope customers with a counted order in ``[start, end of as_of]`` who withdrew
    profiling consent: those an order-based analysis left out.

    Driven from the (few) withdrawals: each is checked for an order through the orders'
    customer index."""
    has_order = sa.exists().where(
        orders.c.customer_id == consents.c.customer_id, *counted_orders(as_of_end(as_of), start)
    )
    query = (
        sa.select(sa.func.count())
        .select_from(consents.join(customers, customers.c.id == consents.c.customer_id))
        .where(
            consents.c.purpose == PURPOSE,
            consents.c.granted.is_(False),
            has_order,
            *scope_clauses(check_scope(scope)),
        )
    )
    return int(conn.scalar(query) or 0)


def count_left_out(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    start: dt.datetime | None = None,
) -> int:
    """:func:`left_out` on a reading connection of ``crm``."""
    with crm.reading() as conn:
        return left_out(conn, as_of, scope, start)


def note(count: int) -> str:
    """The summary line: ``3 customers left out: profiling consent withdrawn``."""
    return f"{count} customer{'' if count == 1 else 's'} left out: profiling consent withdrawn"


def notes(count: int) -> list[str]:
    """``[note(count)]`` when anyone was left out, else ``[]``."""
    return [note(count)] if count else []
