"""An import's batches earn together, in chunks of :data:`CHUNK_ORDERS` orders.

The set-based path (:mod:`crmkit_loyalty.setbased`) pays on every call for each member
the import touched so far, however few orders the call brings: the members and their
pending counters read and joined, the pending counters built again
(:mod:`crmkit_loyalty.pending`), ~100 ms a call with 50,000 members. The core calls
``crmkit_after_orders_created`` once per ``--batch-size`` orders (50,000 by default).
So an import's batches are kept here and earn together once they hold
:data:`CHUNK_ORDERS` orders: a 1,000,000-order import makes 5 calls instead of 20.

What earns later earns the same: the points do not depend on how an import is cut
into batches (``tests/test_batch_invariance.py``). Kept batches earn in the import's
transaction before anything could change what they read or see them missing
(``ctx.before_next_write``, crmkit API 1.8):

* before any other write joins the transaction (an order added, paid or refunded, a
  merge, an erasure: each a service method called inside it), so the kept orders earn
  as they were stored, before the orders stored after them;
* before any public method of the loyalty service runs (:func:`settled`): a read in the
  transaction sees them;
* before the transaction commits.

The core's importer stores its batches without joining its transaction again, so its
batches stay kept; ``crm.orders.add_rows`` called again and again inside one
transaction joins it each time, and each call's batch earns before the next.

The ids kept are also written, as ranges, to a scratch table of the transaction: a
savepoint or transaction rolled back takes the ranges of the batches it stored with
it, and only batches whose ranges are still there earn.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Column, Integer, MetaData, Table, delete, insert, select
from sqlalchemy.schema import CreateTable

import crmkit.plugin as ck
from crmkit.plugin import Order, StoredOrders
from crmkit_loyalty import pending
from crmkit_loyalty.per_transaction import PerTransaction
from crmkit_loyalty.setbased import batch_filter, id_runs

if TYPE_CHECKING:
    from crmkit.plugin import HookContext
    from crmkit_loyalty.context import LoyaltyContext

#: orders an import keeps before they earn. Measured on PostgreSQL: calls of 200,000
#: cost ~1.5 s of server CPU less than calls of 50,000 in a 1,000,000-order import; one
#: call with all 1,000,000 cost more than 20 calls of 50,000 (its sorts and scratch table
#: spill out of work_mem and temp_buffers). On SQLite the size made no difference.
CHUNK_ORDERS = 200_000

#: the ranges of ids kept (a per-connection scratch table; no migration)
ranges = Table(
    "loyalty_tmp_kept_batches",
    MetaData(),
    Column("first_id", Integer, nullable=False),
    Column("last_id", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)


class _Kept:
    """What one transaction keeps: the orders counted (the ids are in :data:`ranges`)."""

    def __init__(self) -> None:
        self.orders = 0


#: connection -> what its running transaction keeps
_kept: PerTransaction[_Kept] = PerTransaction()


def keep(lc: LoyaltyContext, ctx: HookContext, orders: StoredOrders) -> bool:
    """Keep an import's batch to earn later; False when the batch and those kept before
    it make a chunk: then they all earn now (:func:`run`)."""
    connection = ctx.connection
    kept = _kept.get(connection)
    if kept is None:
        kept = _Kept()
        _kept.set(connection, kept)
        ctx.before_next_write(lambda c: run(lc, c))
    connection.execute(CreateTable(ranges, if_not_exists=True))
    connection.execute(
        insert(ranges), [{"first_id": lo, "last_id": hi} for lo, hi in id_runs(orders.ids)]
    )
    kept.orders += len(orders.ids)
    return kept.orders < CHUNK_ORDERS


def run(lc: LoyaltyContext, ctx: HookContext) -> None:
    """Earn on every batch ``ctx``'s transaction keeps (those a rollback left), as one."""
    connection = ctx.connection
    if _kept.get(connection) is None:
        return
    _kept.drop(connection)  # (earning below keeps nothing more: it is no import's batch)
    connection.execute(CreateTable(ranges, if_not_exists=True))  # (a savepoint took it?)
    spans = connection.execute(select(ranges.c.first_id, ranges.c.last_id)).all()
    connection.execute(delete(ranges))
    ids = sorted({i for lo, hi in spans for i in range(lo, hi + 1)})
    if not ids:
        return

    def build() -> list[Order]:
        # the core's StoredOrders build from the batch's rows while its event runs; read
        # back here (an import's orders have no lines: every field is a column)
        query = select(ck.orders).where(batch_filter(ck.orders.c.id, ids)).order_by(ck.orders.c.id)
        return [Order(**row._mapping) for row in connection.execute(query)]

    from crmkit_loyalty import earning  # (earning keeps its batches through this module)

    earning.earn_orders(lc, ctx, StoredOrders(ids, build), chunked=True)


def settle(lc: LoyaltyContext) -> None:
    """Earn on the batches the running transaction of this thread keeps, if any, then
    write its pending counters (:func:`crmkit_loyalty.pending.settle`)."""
    if _kept:  # some transaction of this process keeps batches: is it this thread's?
        with lc.crm.reading() as connection:
            waiting = _kept.get(connection) is not None
        if waiting:
            with lc.crm.transaction() as ctx:  # (the running one)
                run(lc, ctx)
    pending.settle(lc.crm)


F = TypeVar("F", bound=Callable[..., Any])


def settled(method: F) -> F:
    """A :class:`~crmkit_loyalty.service.LoyaltyService` method that first earns on the
    running transaction's kept batches and writes its pending counters (:func:`settle`):
    it sees every order stored and whole counters."""

    @functools.wraps(method)
    def run_settled(self: Any, *args: Any, **kwargs: Any) -> Any:
        settle(self.context)
        return method(self, *args, **kwargs)

    return run_settled  # type: ignore[return-value]
