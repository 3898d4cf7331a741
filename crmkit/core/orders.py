"""Order service: purchases with Decimal amounts, lines and a status.

Adding orders and changing their status need ``orders.write`` on the customer, reading
``orders.read`` (lists keep the orders of customers the actor may see). Audited as
``order.create`` (one entry per order), ``order.create_many`` (one per batch of
:meth:`OrderService.add_many` / :meth:`OrderService.add_rows`) and ``order.status``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, localcontext
from itertools import groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any, overload

import attrs
from sqlalchemy import Select, bindparam, insert, select, update

from crmkit.core import access, prebuilt
from crmkit.core import tables as t
from crmkit.core.bulk import (
    RowFormat,
    check_values,
    chunks,
    existing_values,
    insert_rows,
    lock_inserts,
)
from crmkit.core.customers import BulkResult
from crmkit.core.entities import ORDER_STATUSES, Order, OrderLine
from crmkit.core.personal import erased_or_merged, refusal, write_state
from crmkit.core.prebuilt import with_optional_limit
from crmkit.core.types import money_scale
from crmkit.errors import Conflict, NotFound, ValidationError

if TYPE_CHECKING:
    from crmkit.crm import CRM


def audited(order: Order) -> dict[str, Any]:
    """An order's values as its audit entry records them (lines: how many)."""
    values = {c: getattr(order, c) for c in ORDER_COLUMNS if c != "customer_id"}
    values["lines"] = len(order.lines) or None
    return values


#: the order table's columns in the order :meth:`OrderService.add_rows` takes them
ORDER_COLUMNS = (
    "external_id",
    "customer_id",
    "occurred_at",
    "amount",
    "cost",
    "currency",
    "status",
    "channel",
)


def _trusted_order(row: tuple[Any, ...], order_id: int) -> Order:
    """An Order from a validated row, without running attrs' converters and validators again.

    The bulk path builds one entity per imported order; the checks already
    ran on the row, and running them twice costs more than the insert.
    """
    external_id, customer_id, occurred_at, amount, cost, currency, status, channel = row
    order = _new(Order)
    _put(order, "external_id", external_id)
    _put(order, "customer_id", customer_id)
    _put(order, "occurred_at", occurred_at)
    _put(order, "amount", amount)
    _put(order, "cost", cost)
    _put(order, "currency", currency)
    _put(order, "status", status)
    _put(order, "channel", channel)
    _put(order, "lines", [])
    _put(order, "id", order_id)
    return order


_new = object.__new__
_put = object.__setattr__

#: the one status whose amount and cost may be negative (money given back)
REFUND_STATUS = "refunded"
_LINE_PLACES = Decimal("0.0001")


def check_order(order: Order) -> None:
    """Refuse an order the rules do not allow (ValidationError naming the field and the fix).

    * amount and cost may be negative only when the status is ``refunded``;
    * when an order has lines, their quantity × price, summed and rounded to
      4 decimal places, must equal the amount (quantity above 0; a negative
      price is a discount line);
    * every value must fit its column (lengths, NUL, NUMERIC(18, 4) ...).
    """
    check_signs(order.amount, order.cost, order.status)
    check_values(t.orders, {c: getattr(order, c) for c in ORDER_COLUMNS if c != "customer_id"})
    if order.lines:
        for line in order.lines:
            check_values(t.order_lines, attrs.asdict(line), label="order line")
        total = Decimal(0)
        with localcontext() as exact:
            exact.prec = 80  # products of NUMERIC(18, 4) values, summed: never rounded
            for line in order.lines:
                if line.quantity <= 0:
                    raise ValidationError(
                        f"order line {line.product!r} has quantity {line.quantity}; "
                        "give a quantity above 0",
                        field="quantity",
                    )
                total += line.quantity * line.price
            total = total.quantize(_LINE_PLACES)
        if total != order.amount:
            raise ValidationError(
                f"order lines add up to {money_scale(total)} (quantity x price) but the amount "
                f"is {order.amount}; make them agree, or leave the lines out",
                field="lines",
            )


def refuse_unwritable(connection: Any, customer_ids: Iterable[int]) -> None:
    """Conflict when one of ``customer_ids`` was erased or merged into another (the bulk form
    of ``crm.customers.require_writable``, one query per 5,000 customers)."""
    refused = erased_or_merged(connection, customer_ids)
    if refused:
        raise Conflict(refused[min(refused)])


def _check_customer(connection: Any, customer_id: int) -> None:
    """NotFound for no such customer, Conflict when it takes no new data: what the existence
    check and :func:`refuse_unwritable` say for one customer, in one query."""
    row = write_state(connection, customer_id)
    if row is None:
        raise NotFound(f"customer {customer_id} not found; orders need an existing customer")
    reason = refusal(customer_id, row.erased_at, row.merged_into)
    if reason:
        raise Conflict(reason)


def check_signs(amount: Decimal, cost: Decimal | None, status: str) -> None:
    """Negative amounts and costs are refused unless the order is refunded."""
    if status == REFUND_STATUS:
        return
    for field, value in (("amount", amount), ("cost", cost)):
        if value is not None and value < 0:
            raise ValidationError(
                f"{field} {value} is negative; only a refunded order (status refunded) may "
                "have a negative amount or cost",
                field=field,
            )


def _lines_of(connection: Any, order_ids: list[int]) -> tuple[Any, dict[str, Any]]:
    """The statement reading these orders' lines, ordered by id, and its parameters.

    PostgreSQL: one statement text whatever the number of orders (``= ANY`` of an array),
    so the driver keeps it prepared and SQLAlchemy expands no IN list; SQLite: ``IN``."""
    if connection.dialect.name == "postgresql":
        return _pg_lines_statement(), {"order_ids": order_ids}
    lines = t.order_lines
    return select(lines).where(lines.c.order_id.in_(order_ids)).order_by(lines.c.id), {}


def _lines(connection: Any, order_ids: list[int]) -> list[Any]:
    """The lines of these orders, ordered by id (PostgreSQL: on the driver's cursor)."""
    statement, parameters = _lines_of(connection, order_ids)
    if parameters:
        return prebuilt.rows(connection, statement, parameters)
    return connection.execute(statement).all()


_PG_LINES: list[Any] = []


def _pg_lines_statement() -> Any:
    if not _PG_LINES:
        # the dialect imported here: a SQLite run never loads it
        from sqlalchemy import Integer, any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY

        lines = t.order_lines
        ids = bindparam("order_ids", type_=ARRAY(Integer))
        _PG_LINES.append(select(lines).where(lines.c.order_id == any_(ids)).order_by(lines.c.id))
    return _PG_LINES[0]


class StoredOrders(Sequence[Order]):
    """The orders one import batch stored, as ``crmkit_after_orders_created`` gets them.

    A ``Sequence[Order]`` like any other (index, slice, iterate, ``len``). Its
    Order entities are built on first access, all at once: building a million
    of them costs seconds, and a listener that works in SQL may need only
    :attr:`ids`. Every order has its id and no lines; from the importer,
    ``occurred_at`` is in UTC and amounts have at most 4 decimal places
    (:meth:`OrderService.add_rows` callers must keep to the same).
    """

    __slots__ = ("_build", "_ids", "_orders")

    def __init__(self, ids: Sequence[int], build: Callable[[], list[Order]]) -> None:
        self._ids = tuple(ids)
        self._build: Callable[[], list[Order]] | None = build
        self._orders: list[Order] | None = None

    @property
    def ids(self) -> tuple[int, ...]:
        """The stored orders' ids, in batch order, without building any entity."""
        return self._ids

    def _all(self) -> list[Order]:
        if self._orders is None:
            assert self._build is not None
            self._orders, self._build = self._build(), None
        return self._orders

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> Order: ...
    @overload
    def __getitem__(self, index: slice) -> list[Order]: ...
    def __getitem__(self, index: int | slice) -> Order | list[Order]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Order]:
        return iter(self._all())

    def __repr__(self) -> str:
        return f"StoredOrders({len(self._ids)} orders)"


class OrderService:
    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def build(self, data: Order | Mapping[str, Any]) -> Order:
        """An :class:`Order` from a mapping (validated, money as Decimal), without storing it."""
        if isinstance(data, Order):
            # made again: a field set by assignment is converted and checked
            return attrs.evolve(data, lines=[attrs.evolve(line) for line in data.lines])
        values = dict(data)
        values.setdefault("currency", self.crm.config.currency)
        values["lines"] = [
            OrderLine(**line) if isinstance(line, Mapping) else line
            for line in values.get("lines", [])
        ]
        return Order(**values)

    def add(self, order: Order | Mapping[str, Any] | None = None, /, **fields: Any) -> Order:
        """Store one order (duplicate ``external_id``: Conflict); fires orders_created.
        Needs ``orders.write`` on the customer; audited as ``order.create``."""
        access.require(self.crm, "orders.write")
        entity = self.build(order if order is not None else fields)
        with self.crm.transaction() as ctx:
            self._authorise_customers(ctx, [entity.customer_id])
            stored = self._insert(ctx, [entity])
            if not stored:
                raise Conflict(f"an order with external_id {entity.external_id!r} already exists")
            done = stored[0]
            ctx.audit(
                "order.create",
                "order",
                done.id,
                customer_id=done.customer_id,
                after=audited(done),
            )
            return done

    def _authorise_customers(self, ctx: Any, customer_ids: Iterable[int]) -> None:
        """``orders.write`` on each of ``customer_ids`` (one query; out of scope: NotFound)."""
        scope = access.require(self.crm, "orders.write")
        ids = set(customer_ids)
        if len(ids) == 1 and scope != "all":
            access.authorise(self.crm, "orders.write", next(iter(ids)))
            return
        access.authorise(self.crm, "orders.write")
        if scope == "all" or not ids:
            return
        owners = access.visible_owners(self.crm, "orders.write") or frozenset()
        seen = existing_values(ctx.connection, t.customers.c.id, ids)
        inside = {
            row.id
            for chunk in chunks(iter(sorted(ids)), 5000)
            for row in ctx.connection.execute(
                select(t.customers.c.id).where(
                    t.customers.c.id.in_(chunk), t.customers.c.owner.in_(owners)
                )
            )
        }
        if outside := (ids & seen) - inside:
            raise NotFound(f"no customer {min(outside)}")

    @staticmethod
    def _audit_batch(ctx: Any, ids: Sequence[int]) -> None:
        if ids:
            ctx.audit(
                "order.create_many",
                "order",
                changes={"stored": [None, len(ids)], "ids": [None, [min(ids), max(ids)]]},
            )

    def add_many(
        self, orders: Iterable[Order | Mapping[str, Any]], *, batch_size: int = 5000
    ) -> BulkResult:
        """Store many orders: one transaction, one INSERT batch and one event per batch.

        Orders whose ``external_id`` is already stored are skipped (listed in
        the result), so importing the same file twice stores nothing new. Needs
        ``orders.write`` on every customer of a batch; one audit entry per batch.
        """
        result = BulkResult()
        for batch in chunks((self.build(o) for o in orders), batch_size):
            with self.crm.transaction() as ctx:
                self._authorise_customers(ctx, {o.customer_id for o in batch})
                stored = self._insert(ctx, batch, result)
                self._audit_batch(ctx, [o.id for o in stored])
            result.stored += len(stored)
        return result

    def add_rows(
        self,
        rows: Sequence[tuple[Any, ...]],
        *,
        driver_form: bool = False,
        customers_checked: bool = False,
    ) -> BulkResult:
        """Store already validated order rows in one transaction: the importer's fast path.

        Each row is a tuple in :data:`ORDER_COLUMNS` order holding what an
        :class:`Order` holds (a stored customer id, an aware datetime,
        Decimal amounts, a valid status) or, with ``driver_form``, those
        values converted by :meth:`row_format` ahead of time. The values are
        not validated again; amounts must have at most 4 decimal places and
        times should be in UTC, as the importer gives them; the orders have no
        lines. Rows whose ``external_id`` is already stored are skipped, as in
        :meth:`add_many`. Plugins get the usual ``crmkit_after_orders_created``
        event with a :class:`StoredOrders`, whose Order entities are built
        only if a listener reads them (or a ``crmkit_after_commit`` listener
        exists). Orders of an erased or merged customer are refused
        (:class:`Conflict`), unless ``customers_checked`` says the caller checked
        that already in this transaction (the importer does, once per import). Needs
        ``orders.write`` on every customer of the rows (checked once per call); one audit
        entry per call. The importer calls :meth:`_add_rows` in its own transaction
        (``import.run`` checked once, one entry for the file).
        """
        with self.crm.transaction() as ctx:
            if not access.is_trusted(self.crm):
                self._authorise_customers(ctx, {r[1] for r in rows})
            result, new_ids = self._add_rows(
                ctx, rows, driver_form=driver_form, customers_checked=customers_checked
            )
            self._audit_batch(ctx, new_ids)
        return result

    def _add_rows(
        self,
        ctx: Any,
        rows: Sequence[tuple[Any, ...]],
        *,
        driver_form: bool = False,
        customers_checked: bool = False,
    ) -> tuple[BulkResult, Sequence[int]]:
        """:meth:`add_rows` without a check or an audit entry, in ``ctx``'s transaction."""
        result = BulkResult()
        connection = ctx.connection
        lock_inserts(connection, t.orders)
        existing = existing_values(connection, t.orders.c.external_id, (r[0] for r in rows))
        fresh = [r for r in rows if r[0] not in existing] if existing else rows
        if fresh and not customers_checked:
            refuse_unwritable(connection, {r[1] for r in fresh})
        result.skipped.extend(sorted(existing))
        form = self.row_format()
        if not driver_form:
            fresh = form.to_driver(fresh)
        new_ids = insert_rows(connection, t.orders, ORDER_COLUMNS, fresh, driver_form=True)
        result.stored = len(new_ids)
        if new_ids and self._observed():

            def build() -> list[Order]:
                values = form.to_python(fresh)
                return [_trusted_order(r, i) for r, i in zip(values, new_ids, strict=True)]

            stored = StoredOrders(new_ids, build)
            self.crm.fire(ctx, "crmkit_after_orders_created", orders=stored)
            if self.crm.has_hook("crmkit_after_commit"):  # its only reader
                ctx.changes.orders_created.extend(stored)
        return result, new_ids

    def row_format(self) -> RowFormat:
        """How :meth:`add_rows` rows travel to the database driver (see RowFormat)."""
        return RowFormat(self.crm.engine.dialect, t.orders, ORDER_COLUMNS)

    def _observed(self) -> bool:
        return self.crm.has_hook("crmkit_after_orders_created") or self.crm.has_hook(
            "crmkit_after_commit"
        )

    def _announce(self, ctx: Any, stored: list[Order]) -> None:
        self.crm.fire(ctx, "crmkit_after_orders_created", orders=stored)
        ctx.changes.orders_created.extend(stored)

    def _insert(
        self, ctx: Any, batch: list[Order], result: BulkResult | None = None
    ) -> list[Order]:
        connection = ctx.connection
        ids = [o.external_id for o in batch if o.external_id]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dupes = sorted({i for i in ids if i in seen or seen.add(i)})
            raise Conflict(f"order external_id {dupes[0]!r} appears twice in the same batch")
        for order in batch:
            check_order(order)
        existing: set[Any] = set()
        if ids:  # only external ids can be stored twice: lock and look them up only then
            lock_inserts(connection, t.orders)
            existing = existing_values(connection, t.orders.c.external_id, ids)
        fresh = [o for o in batch if not o.external_id or o.external_id not in existing]
        if result is not None:
            result.skipped.extend(sorted(existing))
        if not fresh:
            return []
        customer_ids = {o.customer_id for o in fresh}
        if len(customer_ids) == 1:  # one customer (an order from the API): one query
            _check_customer(connection, next(iter(customer_ids)))
        else:
            known = existing_values(connection, t.customers.c.id, customer_ids)
            if missing := customer_ids - known:
                raise NotFound(
                    f"customer {sorted(missing)[0]} not found; orders need an existing customer"
                )
            refuse_unwritable(connection, customer_ids)
        rows = [tuple(getattr(o, c) for c in ORDER_COLUMNS) for o in fresh]
        new_ids = insert_rows(connection, t.orders, ORDER_COLUMNS, rows)
        line_rows = [
            {"order_id": new_id, **attrs.asdict(line)}
            for order, new_id in zip(fresh, new_ids, strict=True)
            for line in order.lines
        ]
        if line_rows:
            connection.execute(insert(t.order_lines), line_rows)
        for order, new_id in zip(fresh, new_ids, strict=True):
            order.id = new_id  # the stored entities carry their ids (no copy on bulk paths)
        self._announce(ctx, fresh)
        return fresh

    def set_status(self, order_id: int, status: str, *, actor: str | None = None) -> Order:
        """Change an order's status (paid, refunded, cancelled); fires orders_updated.
        Needs ``orders.write`` on the order's customer; audited as ``order.status``."""
        access.require(self.crm, "orders.write")
        if status not in ORDER_STATUSES:
            raise ValidationError(
                f"status {status!r} is not valid; use one of: {', '.join(ORDER_STATUSES)}",
                field="status",
            )
        with self.crm.transaction(actor=actor) as ctx:
            before = self._get(order_id)
            access.authorise(
                self.crm, "orders.write", before.customer_id, kind="order", id=order_id
            )
            if before.status == status:
                return before
            check_signs(before.amount, before.cost, status)
            ctx.connection.execute(
                update(t.orders).where(t.orders.c.id == order_id).values(status=status)
            )
            after = attrs.evolve(before, status=status)
            ctx.audit(
                "order.status",
                "order",
                order_id,
                customer_id=before.customer_id,
                changes={"status": [before.status, status]},
            )
            self.crm.fire(ctx, "crmkit_after_orders_updated", orders=[after], previous=[before])
            ctx.changes.orders_updated.append(after)
            return after

    def _entities(self, connection: Any, rows: list[Any]) -> list[Order]:
        lines: dict[int, list[OrderLine]] = {}
        ids = [r.id for r in rows]
        for chunk in chunks(iter(ids), 5000):
            for line in _lines(connection, chunk):
                lines.setdefault(line.order_id, []).append(
                    OrderLine(
                        product=line.product,
                        category=line.category,
                        quantity=line.quantity,
                        price=line.price,
                    )
                )
        return [
            Order(**{c: getattr(r, c) for c in ORDER_COLUMNS}, id=r.id, lines=lines.get(r.id, []))
            for r in rows
        ]

    def get(self, order_id: int) -> Order:
        """The order with this id, lines included; :class:`NotFound` when there is none or
        it is outside the actor's ``orders.read`` scope."""
        access.require(self.crm, "orders.read")
        order = self._get(order_id)
        access.authorise(self.crm, "orders.read", order.customer_id, kind="order", id=order_id)
        return order

    def _get(self, order_id: int) -> Order:
        with self.crm.reading() as connection:
            row = connection.execute(select(t.orders).where(t.orders.c.id == order_id)).first()
            if row is None:
                raise NotFound(f"order {order_id} not found")
            return self._entities(connection, [row])[0]

    def get_many(self, order_ids: Sequence[int]) -> list[Order]:
        """Orders with their lines, in the order of ``order_ids``; ids not stored are left out.

        Reads through the running transaction when there is one. Orders of customers
        outside the actor's ``orders.read`` scope are left out too.
        """
        found: dict[int, Any] = {}
        scoped = access.owners_filter(self.crm, "orders.read", t.orders.c.customer_id)
        with self.crm.reading() as connection:
            for chunk in chunks(iter(order_ids), 5000):
                query = select(t.orders).where(t.orders.c.id.in_(chunk))
                if scoped is not None:
                    query = query.where(scoped)
                rows = connection.execute(query).all()
                found.update((o.id, o) for o in self._entities(connection, rows))
        return [found[i] for i in order_ids if i in found]

    def get_by_external_id(self, external_id: str) -> Order:
        """The order with this external id; :class:`NotFound` when there is none (or it is
        outside the actor's ``orders.read`` scope)."""
        access.require(self.crm, "orders.read")
        with self.crm.reading() as connection:
            row = connection.execute(
                select(t.orders).where(t.orders.c.external_id == external_id)
            ).first()
            if row is None:
                raise NotFound(f"no order has external_id {external_id!r}")
            order = self._entities(connection, [row])[0]
        access.authorise(self.crm, "orders.read", order.customer_id, kind="order", id=external_id)
        return order

    def _visible(self, customer_id: int | None) -> Any:
        """A SELECT of the orders the actor may read (of ``customer_id``: NotFound when that
        customer is outside the scope)."""
        if customer_id is not None:
            access.authorise(self.crm, "orders.read", customer_id)
        query = select(t.orders)
        scoped = access.owners_filter(self.crm, "orders.read", t.orders.c.customer_id)
        return query if scoped is None else query.where(scoped)

    def list(
        self,
        *,
        customer_id: int | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        text: str | None = None,
        owner: str | None = None,
        region: str | None = None,
        channel: str | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[Order]:
        """Orders, newest first; ``since`` is inclusive, ``until`` exclusive.

        ``text`` matches (case-insensitively, as a substring) the order's
        external id or the customer's name or external id; ``owner`` and
        ``region`` select the orders of customers with that owner or region. Only orders
        of customers the actor may see (``orders.read``); with ``customer_id``, a customer
        outside the scope is :class:`NotFound`.
        """
        query = self._visible(customer_id)
        filtered = status or channel or since or until or text or owner or region or offset
        if customer_id is not None and query.whereclause is None and not filtered:
            # one customer's latest (the 360's read): the statement built once
            with self.crm.reading() as connection:
                parameters = {"customer_id": customer_id, "limit": limit}
                rows = prebuilt.rows(connection, _OF_CUSTOMER[limit is not None], parameters)
            return _with_lines(rows)
        if customer_id is not None:
            query = query.where(t.orders.c.customer_id == customer_id)
        if status:
            query = query.where(t.orders.c.status == status)
        if channel:
            query = query.where(t.orders.c.channel == channel)
        if since is not None:
            query = query.where(t.orders.c.occurred_at >= since)
        if until is not None:
            query = query.where(t.orders.c.occurred_at < until)
        if text or owner or region:
            customer = t.customers.c
            query = query.join(t.customers, customer.id == t.orders.c.customer_id)
            if owner:
                query = query.where(customer.owner == owner)
            if region:
                query = query.where(customer.region == region)
            if text:
                query = query.where(
                    t.orders.c.external_id.icontains(text, autoescape=True)
                    | customer.name.icontains(text, autoescape=True)
                    | customer.external_id.icontains(text, autoescape=True)
                )
        query = query.order_by(t.orders.c.occurred_at.desc(), t.orders.c.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.crm.reading() as connection:
            return self._entities(connection, connection.execute(query).all())


def _with_lines(rows: list[Any]) -> list[Order]:
    """Orders from rows of orders joined to their lines (``line_*`` columns; an order's
    rows are adjacent, its lines in id order)."""
    found: list[Order] = []
    for _, group in groupby(rows, key=attrgetter("id")):
        order = list(group)
        lines = [
            OrderLine(
                product=row.line_product,
                category=row.line_category,
                quantity=row.line_quantity,
                price=row.line_price,
            )
            for row in order
            if row.line_id is not None
        ]
        found.append(_order_of(order[0], lines))
    return found


def _order_of(row: Any, lines: list[OrderLine]) -> Order:
    # the row's values in Order's field order, picked by position (the 360 builds a
    # hundred orders at most: by name, the picking cost a third of building them)
    return Order(*prebuilt.picker(row._fields, _ORDER_FIELDS)(row), lines, row.id)


#: Order's fields a row of ``orders`` holds, in the entity's order (``lines`` and ``id``
#: follow them)
_ORDER_FIELDS = tuple(f.name for f in attrs.fields(Order) if f.name not in ("lines", "id"))
assert tuple(f.name for f in attrs.fields(Order))[-2:] == ("lines", "id")


def _latest_with_lines(page: Select[Any]) -> Select[Any]:
    """``page`` (orders, newest first) joined to their lines, in the same order (the
    lines of an order by id): the orders and their lines in one statement."""
    orders = page.subquery("page")
    lines = t.order_lines.c
    return (
        select(
            orders,
            lines.id.label("line_id"),
            lines.product.label("line_product"),
            lines.category.label("line_category"),
            lines.quantity.label("line_quantity"),
            lines.price.label("line_price"),
        )
        .outerjoin(t.order_lines, lines.order_id == orders.c.id)
        .order_by(orders.c.occurred_at.desc(), orders.c.id.desc(), lines.id)
    )


# one customer's latest orders with their lines, with and without a limit: what list()
# reads for them, built once (crmkit.core.prebuilt)
_OF_CUSTOMER = {
    limited: _latest_with_lines(page)
    for limited, page in with_optional_limit(
        select(t.orders)
        .where(t.orders.c.customer_id == bindparam("customer_id"))
        .order_by(t.orders.c.occurred_at.desc(), t.orders.c.id.desc())
    ).items()
}
