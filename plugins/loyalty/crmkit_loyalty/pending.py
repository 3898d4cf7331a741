"""The members' counters an import's batches moved, written to the members once per import.

A batch earning set-based adds to its members' balance, earning order count and spend
bound. Written to ``loyalty_members`` at once, every batch of an import writes a new
version of tens of thousands of member rows in the import's one transaction (on
PostgreSQL none can be pruned before the commit, so no update after the first is HOT and
each writes every member index). Instead each batch adds its sums to a scratch table
(:data:`counts`, one row per member) and one ``UPDATE ... FROM`` writes them just before
the import commits (``ctx.before_commit``, crmkit API 1.5).

Until then a member's counters are the row's plus its pending row. The batch path reads
them so (:func:`crmkit_loyalty.setbased.fill`); every other path writes them first:
order-by-order earning its members' (:func:`flush`), every public method of the service
all of them (:func:`settle`, through :func:`crmkit_loyalty.deferred.settled`). A
savepoint or transaction rolled back takes the pending rows it added with it (the table
is transactional like any other).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    delete,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable, DropTable

from crmkit_loyalty import tables as t
from crmkit_loyalty.per_transaction import PerTransaction

if TYPE_CHECKING:
    from crmkit.plugin import CRM, HookContext

NAME = "loyalty_tmp_pending_counts"


def _counts(name: str, *, keyed: bool) -> Table:
    return Table(
        name,
        MetaData(),
        Column("member_id", Integer, primary_key=keyed, autoincrement=False, nullable=False),
        # the member's customer: a batch's new members are its customers without a row
        # (crmkit_loyalty.setbased._lock_members)
        Column("customer_id", Integer, nullable=False),
        Column("orders", Integer, nullable=False),
        Column("points", BigInteger, nullable=False),
        Column("spend", BigInteger, nullable=False),  # 1/10,000 units
        prefixes=["TEMPORARY"],
    )


#: a per-connection scratch table (no migration): the deltas not yet in loyalty_members,
#: one row per member. SQLite adds each batch's sums in place (looked up by the key);
#: PostgreSQL builds it again without a key (:func:`_rebuild`)
counts = _counts(NAME, keyed=True)
_heap = _counts(NAME, keyed=False)
_next = _counts(f"{NAME}_next", keyed=False)


#: connection -> True while its running transaction has pending rows (written out, the
#: entry goes, so a process with none has an empty map)
_open: PerTransaction[bool] = PerTransaction()


def _pending(connection: Any) -> bool:
    """Whether ``connection``'s running transaction has pending rows (the entry of an
    earlier transaction, rolled back, is dropped: its rows went with it)."""
    return _open.get(connection) is not None


def table(connection: Any) -> Table | None:
    """:data:`counts` when ``connection``'s transaction may have pending rows, else None."""
    if not _pending(connection):
        return None
    # a savepoint rolled back since may have taken the table with its rows (created in it)
    _create(connection)
    return counts


def _create(connection: Any) -> None:
    keyed = connection.dialect.name != "postgresql"
    connection.execute(CreateTable(counts if keyed else _heap, if_not_exists=True))


def add(ctx: HookContext, sums: Any) -> None:
    """Add ``sums`` (a subquery: ``member_id``, ``customer_id``, ``orders``, ``points``,
    ``spend``, one row per member) to the pending rows of ``ctx``'s transaction, written
    before it commits."""
    connection = ctx.connection
    _create(connection)  # (a savepoint rolled back may have taken it: see table())
    if not _pending(connection):
        _open.set(connection, True)
        ctx.before_commit(lambda c: flush(c.connection))
    if connection.dialect.name == "postgresql":
        _rebuild(connection, sums)
        return
    names = ["member_id", "customer_id", "orders", "points", "spend"]
    # (the WHERE: SQLite would read ON CONFLICT as a join's ON without one)
    source = select(*(sums.c[n] for n in names)).where(true())
    statement = sqlite.insert(counts).from_select(names, source)
    added = statement.excluded
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[counts.c.member_id],
            set_={
                "orders": counts.c.orders + added.orders,
                "points": counts.c.points + added.points,
                "spend": counts.c.spend + added.spend,
            },
        )
    )


def _rebuild(connection: Any, sums: Any) -> None:
    """PostgreSQL: the pending rows and ``sums`` joined into a new table that takes the
    old one's name. Updated in place, every row would get a new version each batch that no
    one can prune before the commit (an index entry too): the cost this module saves on
    the members. Writing ~50,000 short rows anew, with no index, is cheaper; the readers
    join them by hash. Like any DDL here, it rolls back with the transaction or savepoint."""
    old = _heap.c
    merged = select(
        func.coalesce(old.member_id, sums.c.member_id),
        func.coalesce(old.customer_id, sums.c.customer_id),
        func.coalesce(old.orders, 0) + func.coalesce(sums.c.orders, 0),
        func.coalesce(old.points, 0) + func.coalesce(sums.c.points, 0),
        func.coalesce(old.spend, 0) + func.coalesce(sums.c.spend, 0),
    ).select_from(_heap.join(sums, old.member_id == sums.c.member_id, full=True))
    connection.execute(CreateTable(_next))
    connection.execute(insert(_next).from_select(list(_next.c.keys()), merged))
    connection.execute(DropTable(_heap))
    connection.execute(text(f"ALTER TABLE {_next.name} RENAME TO {NAME}"))


def flush(connection: Any, customer_ids: Iterable[int] | None = None) -> None:
    """Write the pending rows (of these customers' members, else all) to ``loyalty_members``."""
    pending = table(connection)
    if pending is None:
        return
    if customer_ids is None:
        _write(connection, pending, [])
        _open.drop(connection)  # nothing pending: settle() has nothing to look at
        return
    ids = sorted(set(customer_ids))
    m = t.members.c
    for start in range(0, len(ids), 5_000):
        theirs = select(m.id).where(m.customer_id.in_(ids[start : start + 5_000]))
        _write(connection, pending, [pending.c.member_id.in_(theirs)])


def _write(connection: Any, p: Table, where: list[Any]) -> None:
    m = t.members
    connection.execute(
        update(m)
        .where(m.c.id == p.c.member_id, *where)
        .values(
            balance=m.c.balance + p.c.points,
            orders_count=m.c.orders_count + p.c.orders,
            spend_bound=m.c.spend_bound + p.c.spend,  # NULL (unknown) stays NULL
        )
    )
    connection.execute(delete(p).where(*where))


def settle(crm: CRM) -> None:
    """Write every pending row of the running transaction of this thread, if any."""
    if not _open:  # no transaction of this process has any: no connection to look at
        return
    with crm.reading() as connection:
        flush(connection)
