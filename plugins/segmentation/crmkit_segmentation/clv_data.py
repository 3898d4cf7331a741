"""Per-customer purchase summaries for the CLV models, aggregated in SQL and streamed in chunks.

Orders are collapsed to UTC days (several orders on one day are one transaction, as the
models count purchase occasions). For each customer, as of the end of ``as_of``:
``x`` = purchase days - 1, ``t_x`` = last - first purchase day, ``T`` = as_of - first
purchase day (both in the time unit), the mean spend per repeat purchase day (the first
day's spend excluded, as Gamma-Gamma models repeat spend), and the historical CLV: each
order's margin compounded to the end of the as-of day, ``margin * (1 + rate) ** years``
(the same definition as the ``clv`` measure of ABC and the pyramid). Orders without a cost
count at the margin share given to :meth:`Summaries.historical`. Customers who withdrew
profiling consent are left out in SQL (see :mod:`.profiling`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from crmkit.plugin import customers, orders

from .profiling import allowed
from .scope import (
    as_of_end,
    check_scope,
    counted_orders,
    orders_in_scope,
    require_orders_before,
    scope_clauses,
)

EPOCH = dt.date(1970, 1, 1)


@dataclass
class Summaries:
    """One chunk of customer summaries as numpy arrays (time in the chosen unit)."""

    customer_id: np.ndarray
    external_id: list[str | None]
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    m: np.ndarray  # mean spend per repeat purchase day, nan when x = 0
    revenue: np.ndarray
    margin_costed: np.ndarray  # compounded sum(amount - cost) over orders with a cost
    revenue_uncosted: np.ndarray  # compounded sum(amount) over orders without a cost

    def __len__(self) -> int:
        return len(self.customer_id)

    def historical(self, margin: float) -> np.ndarray:
        """Compounded margin to date; orders without a cost count at ``margin`` of revenue."""
        return self.margin_costed + margin * self.revenue_uncosted

    def take(self, index: np.ndarray) -> Summaries:
        ext = [self.external_id[i] for i in index.tolist()]
        arrays = {
            k: getattr(self, k)[index]
            for k in self.__dataclass_fields__
            if k not in ("external_id",)
        }
        return Summaries(external_id=ext, **arrays)

    @staticmethod
    def concat(parts: list[Summaries]) -> Summaries:
        fields = [k for k in Summaries.__dataclass_fields__ if k != "external_id"]
        if not parts:
            empty = {k: np.zeros(0, dtype=int if k == "customer_id" else float) for k in fields}
            return Summaries(external_id=[], **empty)
        ext = [e for p in parts for e in p.external_id]
        return Summaries(
            external_id=ext, **{k: np.concatenate([getattr(p, k) for p in parts]) for k in fields}
        )


def _epoch_day(column: Any, dialect: str) -> Any:
    """Whole UTC days since 1970-01-01 (SQLite stores naive UTC text, PostgreSQL timestamptz)."""
    if dialect == "sqlite":
        return sa.cast(sa.func.julianday(sa.func.date(column)) - 2440587.5, sa.Integer)
    return sa.cast(sa.func.floor(sa.extract("epoch", column) / 86400), sa.Integer)


class Extractor:
    """Builds and streams the summary query for one as-of date, scope and time unit."""

    def __init__(
        self,
        crm: Any,
        as_of: dt.date,
        scope: dict[str, str] | None = None,
        time_unit_days: float = 7.0,
        discount_rate: float = 0.0,
    ) -> None:
        self.crm = crm
        self.as_of = as_of
        self.scope = check_scope(scope)
        self.unit = time_unit_days
        self.discount_rate = discount_rate
        self.end = as_of_end(as_of)
        self.as_of_day = (as_of - EPOCH).days
        with crm.reading() as conn:
            require_orders_before(conn, as_of)

    def _orders(self, customer_id: int | None = None) -> sa.Select:
        """One row per customer and purchase day (not for customers who withdrew profiling
        consent: they are neither fitted on nor scored)."""
        dialect = self.crm.engine.dialect.name
        day = _epoch_day(orders.c.occurred_at, dialect).label("day")
        amount = sa.cast(orders.c.amount, sa.Float)
        margin = amount - sa.cast(orders.c.cost, sa.Float)
        costed = orders.c.cost.is_not(None)
        factor = self._compound(dialect)
        q = (
            sa.select(
                orders.c.customer_id.label("cid"),
                customers.c.external_id.label("ext"),
                day,
                sa.func.sum(amount).label("amt"),
                sa.func.sum(sa.case((costed, margin * factor), else_=0.0)).label("mg"),
                sa.func.sum(sa.case((costed, 0.0), else_=amount * factor)).label("unc"),
                sa.func.sum(sa.case((costed, margin), else_=0.0)).label("cm"),
                sa.func.sum(sa.case((costed, amount), else_=0.0)).label("cr"),
            )
            .select_from(orders_in_scope())
            .where(*counted_orders(self.end), *scope_clauses(self.scope))
            .group_by(orders.c.customer_id, customers.c.external_id, day)
            .having(allowed(orders.c.customer_id))
        )
        if customer_id is not None:
            q = q.where(orders.c.customer_id == customer_id)
        return q

    def _compound(self, dialect: str) -> Any:
        """(1 + rate) ** years from each order to the end of the as-of day (SQL)."""
        if self.discount_rate == 0:
            return sa.literal(1.0)
        if dialect == "sqlite":
            julian_end = self.end.timestamp() / 86400 + 2440587.5
            days = sa.literal(julian_end) - sa.func.julianday(orders.c.occurred_at)
        else:
            days = (
                sa.literal(self.end.timestamp()) - sa.extract("epoch", orders.c.occurred_at)
            ) / (86400.0)
        years = sa.cast(days, sa.Float) / 365.25
        return sa.func.power(sa.literal(1.0 + self.discount_rate), years)

    def query(self, customer_id: int | None = None) -> sa.Select:
        d = self._orders(customer_id).subquery("d")
        ranked = sa.select(
            d, sa.func.row_number().over(partition_by=d.c.cid, order_by=d.c.day).label("rn")
        ).subquery("ranked")
        return (
            sa.select(
                ranked.c.cid,
                ranked.c.ext,
                sa.func.min(ranked.c.day).label("first_day"),
                sa.func.max(ranked.c.day).label("last"),
                sa.func.count().label("days"),
                sa.func.sum(ranked.c.amt).label("revenue"),
                sa.func.sum(sa.case((ranked.c.rn == 1, ranked.c.amt), else_=0.0)).label("first"),
                sa.func.sum(ranked.c.mg).label("mg"),
                sa.func.sum(ranked.c.unc).label("unc"),
            )
            .group_by(ranked.c.cid, ranked.c.ext)
            .order_by(ranked.c.cid)
        )

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """``crm.reading()`` (joins a running transaction), with power() on any SQLite."""
        with self.crm.reading() as conn:
            if conn.dialect.name == "sqlite" and self.discount_rate:
                try:
                    conn.exec_driver_sql("SELECT power(2, 0.5)")
                except sa.exc.OperationalError:  # SQLite built without math functions
                    raw = conn.connection.driver_connection
                    raw.create_function("power", 2, math.pow, deterministic=True)
            yield conn

    def observed_margin(self) -> float | None:
        """Share of revenue kept as margin over the in-scope orders that record a cost."""
        sub = self._orders().subquery()
        with self.crm.reading() as conn:
            row = conn.execute(sa.select(sa.func.sum(sub.c.cm), sa.func.sum(sub.c.cr))).one()
        margin, revenue = (float(v or 0) for v in row)
        return margin / revenue if revenue > 0 else None

    def chunks(
        self, chunk_size: int = 10_000, customer_id: int | None = None
    ) -> Iterator[Summaries]:
        """Stream summaries ordered by customer id, ``chunk_size`` customers at a time."""
        with self._reading() as conn:
            # per statement: the connection may be a running transaction's
            options = {"yield_per": chunk_size}
            result = conn.execute(self.query(customer_id), execution_options=options)
            try:
                for rows in result.partitions():
                    yield self._arrays(rows)
            finally:
                result.close()  # also when the consumer stops early

    def _arrays(self, rows: list[Any]) -> Summaries:
        cols = list(zip(*rows, strict=True))
        first = np.asarray(cols[2], dtype=float)
        x = np.asarray(cols[4], dtype=float) - 1
        revenue = np.asarray(cols[5], dtype=float)
        repeat = revenue - np.asarray(cols[6], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(x > 0, repeat / np.where(x > 0, x, 1), np.nan)
        return Summaries(
            customer_id=np.asarray(cols[0], dtype=np.int64),
            external_id=list(cols[1]),
            x=x,
            t_x=(np.asarray(cols[3], dtype=float) - first) / self.unit,
            T=(self.as_of_day - first) / self.unit,
            m=m,
            revenue=revenue,
            margin_costed=np.asarray(cols[7], dtype=float),
            revenue_uncosted=np.asarray(cols[8], dtype=float),
        )

    def sample(self, size: int, seed: int, chunk_size: int = 10_000) -> tuple[Summaries, int]:
        """A seeded uniform sample of ``size`` customers (all when fewer), and the total.

        One pass: every customer draws a random key and the ``size`` smallest keys are kept
        (a uniform sample without replacement), so memory holds the sample and one chunk.
        """
        rng = np.random.default_rng(seed)
        kept, keys, total = Summaries.concat([]), np.zeros(0), 0
        for chunk in self.chunks(chunk_size):
            total += len(chunk)
            kept = Summaries.concat([kept, chunk])
            keys = np.concatenate([keys, rng.random(len(chunk))])
            if len(keys) > size:
                best = np.sort(np.argpartition(keys, size)[:size])  # stays in customer order
                kept, keys = kept.take(best), keys[best]
        return kept, total
