"""The server's hot reads (statements built once, run on the driver on PostgreSQL, joined
reads) give what the general queries give, on both backends."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from sqlalchemy import delete, func, select

from crmkit.core import auditlog, prebuilt
from crmkit.core import tables as t

T0 = dt.datetime(2024, 1, 1, 9, 30, tzinfo=dt.UTC)


def _general_customers(crm, offset, limit, **filters):
    """What ``customers.list`` gave before its plain path: the query, then the consents."""
    query = crm.customers.query(**filters).order_by(t.customers.c.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    with crm.engine.connect() as connection:
        rows = connection.execute(query).all()
        consents = crm.customers._consents(connection, [r.id for r in rows])
    return [crm.customers._entity(r, consents.get(r.id)) for r in rows]


def test_a_plain_customer_list_equals_the_general_query(crm):
    for n in range(12):
        crm.customers.add(
            {
                "name": f"C{n}",
                "region": "north" if n % 2 else "south",
                "status": "lead" if n % 3 else "active",
                "email": f"c{n}@example.com",
                "attributes": {"vip": n % 4 == 0},
                "consents": {"marketing": n % 2 == 0, "profiling": n % 5 != 0} if n % 3 else {},
            }
        )
    for filters in ({}, {"region": "north"}, {"region": "north", "status": "lead"}, {"region": ""}):
        for offset, limit in ((0, 50), (2, 3), (0, None), (11, 5)):
            found = crm.customers.list(offset=offset, limit=limit, **filters)
            assert found == _general_customers(crm, offset, limit, **filters)
    assert any(c.consents for c in crm.customers.list())


def test_one_customers_latest_orders_carry_their_lines_and_the_limit_counts_orders(crm):
    customer = crm.customers.add({"name": "A"})
    other = crm.customers.add({"name": "B"})
    for n in range(6):
        count = n % 3
        crm.orders.add(
            customer_id=customer.id,
            amount=Decimal("2.50") * count if count else Decimal("10.5"),
            occurred_at=T0 + dt.timedelta(days=n % 3),
            lines=[
                {"product": f"p{n}-{j}", "quantity": "2", "price": "1.25",
                 "category": None if j else "x"}
                for j in range(count)
            ],
        )  # fmt: skip
    crm.orders.add(customer_id=other.id, amount="1", occurred_at=T0, lines=[
        {"product": "q", "quantity": "1", "price": "1"}])  # fmt: skip
    orders = t.orders.c
    for limit in (100, 4, 1, None):
        found = crm.orders.list(customer_id=customer.id, limit=limit)
        query = (
            select(t.orders)
            .where(orders.customer_id == customer.id)
            .order_by(orders.occurred_at.desc(), orders.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with crm.engine.connect() as connection:
            expected = crm.orders._entities(connection, connection.execute(query).all())
        assert found == expected
        assert len(found) == min(6, limit or 6)
    view = crm.customers.view(customer.id)
    assert [len(o.lines) for o in view.orders] == [2, 2, 1, 1, 0, 0]
    assert [x.product for x in view.orders[0].lines] == ["p5-0", "p5-1"]


def test_driver_rows_equal_sqlalchemys_rows(crm):
    customer = crm.customers.add({"name": "A", "consents": {"marketing": True}})
    crm.orders.add(customer_id=customer.id, amount="12.5", cost="3", occurred_at=T0)
    statement = select(t.orders).where(t.orders.c.customer_id == customer.id)
    with crm.reading() as connection:
        ours = prebuilt.rows(connection, statement, {})
        theirs = connection.execute(statement).all()
    assert [tuple(r) for r in ours] == [tuple(r) for r in theirs]
    assert [type(v) for v in ours[0]] == [type(v) for v in theirs[0]]
    assert ours[0].amount == Decimal("12.50") and str(ours[0].amount) == "12.50"
    assert ours[0].occurred_at == T0 and ours[0].occurred_at.tzinfo is dt.UTC
    assert ours[0]._asdict() == theirs[0]._asdict()


def test_a_scope_reads_in_autocommit_and_its_writes_stay_atomic(crm):
    """A connection scope (a server request) reads in autocommit on PostgreSQL and writes in
    a transaction; the pool gets its connection back in transaction mode."""
    kept = crm.customers.add({"name": "Kept"})
    crm.engine.pool.dispose()  # one pooled connection from here: the scope's
    for _ in range(2):
        with crm.connection_scope():
            assert crm.customers.get(kept.id).name == "Kept"
            try:
                with crm.transaction():
                    crm.customers.add({"name": "Gone"})
                    assert [c.name for c in crm.customers.list()] == ["Kept", "Gone"]
                    raise RuntimeError("undo")
            except RuntimeError:
                pass
            crm.interactions.log(kept.id, "phone", subject="after the rollback")
            assert [c.name for c in crm.customers.list()] == ["Kept"]  # the last: a read
        with crm.engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            assert getattr(driver, "autocommit", False) is False
    assert len(crm.interactions.list(customer_id=kept.id)) == 2


def test_a_streamed_read_inside_a_scope_works(crm):
    """A plugin's streamed read (yield_per: a server-side cursor, which PostgreSQL opens only
    in a transaction) inside a connection scope, whose reads run in autocommit."""
    for n in range(5):
        crm.customers.add({"name": f"C{n}"})
    with crm.connection_scope():
        assert crm.customers.get(1).name == "C0"
        with crm.reading() as connection:
            result = connection.execute(
                select(t.customers.c.id).order_by(t.customers.c.id),
                execution_options={"yield_per": 2},
            )
            assert [len(p) for p in result.partitions()] == [2, 2, 1]
        assert len(crm.customers.list()) == 5
        crm.customers.add({"name": "C5"})
    assert len(crm.customers.list()) == 6


def test_a_plan_is_kept_with_its_statement_and_dropped_with_its_dialect():
    """Plans are cached by the statement's id: the cache holds the statement, so a new
    statement can never take a freed one's id and get its plan; a dialect (an engine's)
    that is gone takes its plans with it."""
    import gc
    import weakref

    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    dialect = PGDialect_psycopg()
    statement = select(t.customers.c.id).where(t.customers.c.id == 1)
    watch = weakref.ref(statement)
    plan = prebuilt._plan(statement, dialect)
    assert plan is not None and "customers" in plan.sql
    assert prebuilt._plan(statement, dialect) is plan  # compiled once
    del statement
    gc.collect()
    assert watch() is not None  # still held by the cache: its id stays its own
    other = select(t.customers.c.name)
    assert prebuilt._plan(other, dialect) is not plan
    dialect_watch = weakref.ref(dialect)
    del dialect, plan
    gc.collect()
    assert dialect_watch() is None and watch() is None  # the plans went with the dialect


def test_json_values_read_the_same_with_the_empty_object_shortcut(crm):
    """PostgreSQL connections read a JSON ``{}`` without the parser (db.py); every value,
    empty or not, reads as the parser gives it, on both backends."""
    plain = crm.customers.add({"name": "Plain"})
    rich = crm.customers.add({"name": "Rich", "attributes": {"vip": True, "tier": "gold"}})
    assert crm.customers.get(plain.id).attributes == {}
    assert crm.customers.get(rich.id).attributes == {"vip": True, "tier": "gold"}
    texts = ["{}", "{ }", "[]", '{"a": {}}', '{"n": 1.5, "s": "{}"}', "null"]
    with crm.reading() as connection:
        for text in texts:
            for kind in ("json", "jsonb") if crm.engine.dialect.name == "postgresql" else ():
                found = connection.exec_driver_sql(f"SELECT CAST('{text}' AS {kind})").scalar()
                assert found == json.loads(text), (kind, text)
        if crm.engine.dialect.name == "postgresql":  # the shortcut is in place
            driver = connection.connection.dbapi_connection
            loader = driver.adapters.get_loader(driver.adapters.types["json"].oid, 0)
            assert loader.__name__ == "EmptyFirstJsonLoader"
        first = connection.execute(select(t.customers.c.attributes)).scalar()
        assert (
            first == {}
            and first is not connection.execute(select(t.customers.c.attributes)).scalar()
        )  # a new dict each time: a caller may change the one it got


def _totals_by_query(crm, customer_id):
    o = t.orders.c
    query = select(func.count(), func.sum(o.amount), func.max(o.occurred_at)).where(
        o.customer_id == customer_id, o.status == "paid"
    )
    with crm.engine.connect() as connection:
        count, revenue, last = connection.execute(query).one()
    return {"paid_orders": count, "revenue": revenue or Decimal(0), "last_order": last}


def test_the_360_reads_totals_contacts_and_workflows_with_its_customer(crm):
    """The 360 reads its customer's paid-order totals and which of contacts and workflows
    it has in the customer's statement; what it shows equals the separate reads."""
    full = crm.customers.add({"name": "Full", "type": "organisation"})
    bare = crm.customers.add({"name": "Bare"})
    for n, status in enumerate(["paid", "paid", "refunded", "cancelled", "paid"]):
        crm.orders.add(
            customer_id=full.id, amount=Decimal("10.25") * (n + 1), status=status,
            occurred_at=T0 + dt.timedelta(days=n),
        )  # fmt: skip
    crm.orders.add(customer_id=bare.id, amount="3", status="refunded", occurred_at=T0)
    crm.customers.add_contact(full.id, "Wang Fang", email="wang@example.cn")
    crm.workflows.start("sales", full.id, "Kettles", value="1000")
    view = crm.customers.view(full.id)
    assert view.totals == _totals_by_query(crm, full.id)
    assert view.totals == {
        "paid_orders": 3, "revenue": Decimal("82.00"), "last_order": T0 + dt.timedelta(days=4)
    }  # fmt: skip
    assert str(view.totals["revenue"]) == "82.00"
    assert view.contacts == crm.customers.contacts(full.id) and len(view.contacts) == 1
    assert view.workflows == crm.workflows.list(customer_id=full.id) and len(view.workflows) == 1
    empty = crm.customers.view(bare.id)
    assert empty.totals == {"paid_orders": 0, "revenue": Decimal(0), "last_order": None}
    assert empty.totals == _totals_by_query(crm, bare.id)
    assert empty.contacts == [] and empty.workflows == [] and len(empty.orders) == 1
    assert crm.customers.view(full.id).customer == crm.customers.get(full.id)
    # the parts it may skip: each equals its own read, empty or not
    quiet = crm.customers.add({"name": "Quiet"})
    with crm.engine.begin() as connection:  # no audit entry, no consent history
        connection.execute(delete(t.audit_log).where(t.audit_log.c.customer_id == quiet.id))
        connection.execute(
            delete(t.consent_changes).where(t.consent_changes.c.customer_id == quiet.id)
        )
    crm.customers.set_consent(full.id, "marketing", True)
    crm.interactions.log(full.id, "phone", subject="hello", occurred_at=T0)
    for customer_id in (full.id, bare.id, quiet.id):
        view = crm.customers.view(customer_id)
        assert view.interactions == crm.interactions.list(customer_id=customer_id, limit=100)
        assert view.consent_history == crm.customers.consent_history(customer_id)
        assert view.activity == auditlog.of_customer(crm, customer_id, limit=20)
    view = crm.customers.view(full.id)
    assert len(view.interactions) == 1 and len(view.timeline) == 1
    assert len(view.consent_history) == 1 and view.activity
    quiet_view = crm.customers.view(quiet.id)
    assert quiet_view.activity == [] and quiet_view.consent_history == []
    assert quiet_view.interactions == [] and quiet_view.timeline == []
    # a record merged into another: its entries show on the one kept
    gone = crm.customers.add({"name": "Gone"})
    crm.interactions.log(gone.id, "email", subject="before the merge", occurred_at=T0)
    with crm.engine.begin() as connection:  # the kept one: no entry of its own
        connection.execute(delete(t.audit_log).where(t.audit_log.c.customer_id == quiet.id))
    crm.customers.merge(quiet.id, gone.id, prefer={"name": "kept"})
    with crm.engine.begin() as connection:
        connection.execute(delete(t.audit_log).where(t.audit_log.c.customer_id == quiet.id))
    kept = crm.customers.view(quiet.id)
    assert kept.activity == auditlog.of_customer(crm, quiet.id, limit=20)
    assert {e.customer_id for e in kept.activity} == {gone.id}


def test_the_public_driver_rows_read_equals_sqlalchemys_and_errors_stay_sqlalchemys(crm):
    import pytest
    from sqlalchemy import exc, text

    from crmkit.plugin import driver_rows

    for n in range(3):
        crm.customers.add({"name": f"D{n}", "region": "north" if n else "south"})
    postgresql = crm.engine.dialect.name == "postgresql"
    sql = "SELECT id, name FROM customers WHERE region = {} ORDER BY id"
    driver_sql = sql.format("%(region)s" if postgresql else ":region")
    with crm.engine.connect() as connection:
        expected = connection.execute(text(sql.format(":region")), {"region": "north"}).all()
        found = driver_rows(connection, driver_sql, {"region": "north"})
        assert [tuple(row) for row in found] == [tuple(row) for row in expected]
        assert [row[1] for row in found] == ["D1", "D2"]
        # a driver error is SQLAlchemy's (the statement and parameters named), not the driver's
        with pytest.raises(exc.DBAPIError) as raised:
            driver_rows(connection, "SELECT nothing FROM no_such_table", {})
        assert "no_such_table" in str(raised.value)
    with crm.engine.connect() as connection:
        connection.begin()
        with pytest.raises(exc.DBAPIError):
            connection.exec_driver_sql("SELECT * FROM no_such_table")
        if postgresql:  # a failed transaction refuses the read, with SQLAlchemy's error
            with pytest.raises(exc.InternalError, match="transaction is aborted"):
                driver_rows(connection, driver_sql, {"region": "north"})
        else:  # SQLite's transaction goes on after a failed statement
            assert len(driver_rows(connection, driver_sql, {"region": "north"})) == 2
