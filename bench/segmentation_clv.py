"""CLV (BG/NBD + Gamma-Gamma): fit time and chunked scoring with peak memory, side by side.

Data: customers drawn from known BG/NBD and Gamma-Gamma parameters (seeded numpy generator),
their orders written to a SQLite file. Compared with:

* ``lifetimes`` (the PyPI package a user would otherwise reach for) when importable: fit on
  the same arrays, and its usual pipeline (read every order with pandas,
  ``summary_data_from_transaction_data``, fit on all, predict);
* a naive unchunked run of the plugin's own code (all summaries loaded at once).

Peak memory is what ``tracemalloc`` traces (numpy and pandas buffers included), measured
in a second run of each step so that tracing does not slow the timed run.

    python bench/segmentation_clv.py                       # 300,000 customers
    pip install --target /tmp/lt --no-deps lifetimes autograd dill  # optional comparison
    PYTHONPATH=/tmp/lt python bench/segmentation_clv.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

import crmkit
from crmkit.core.tables import customers, orders

BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW, weeks
GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
AS_OF = dt.date(2024, 12, 31)
END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def timed(fn: Callable[[], Any]) -> tuple[Any, str]:
    """Result and "wall s (cpu s)": CPU time is the fairer figure on a shared machine."""
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, f"{time.perf_counter() - t0:6.2f} s (cpu {time.process_time() - c0:6.2f} s)"


def peak_mb(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def load(crm: Any, n: int, rng: np.random.Generator) -> int:
    from crmkit_segmentation import clv

    T_days = rng.integers(7 * 30, 7 * 39, n)  # acquired over ~9 weeks, like CDNOW's cohort
    x, t_x, m = clv.simulate(rng, T_days / 7, BG, GG)
    now = END
    total = 0
    with crm.transaction() as ctx:
        for lo in range(0, n, 50_000):
            ctx.connection.execute(
                customers.insert(),
                [
                    dict(id=i + 1, external_id=f"C{i}", type="person", kind="end",
                         status="active", name=f"C{i}", attributes={}, created_at=now,
                         updated_at=now)
                    for i in range(lo, min(n, lo + 50_000))
                ],
            )  # fmt: skip
        batch: list[dict[str, Any]] = []
        for i in range(n):
            first = END - dt.timedelta(days=int(T_days[i])) + dt.timedelta(hours=2)
            k = int(x[i])
            days = [0.0]
            if k:
                days += sorted(rng.uniform(0, t_x[i] * 7, k - 1).tolist()) + [t_x[i] * 7]
            amount = Decimal(f"{max(m[i], 1.0):.2f}") if k else Decimal("25.00")
            cost = (amount * Decimal("0.7")).quantize(Decimal("0.01"))
            for d in days:
                batch.append(
                    dict(
                        customer_id=i + 1,
                        occurred_at=first + dt.timedelta(days=d),
                        amount=amount,
                        cost=cost,
                        currency="EUR",
                        status="paid",
                    )
                )
            if len(batch) >= 50_000:
                ctx.connection.execute(orders.insert(), batch)
                total += len(batch)
                batch = []
        if batch:
            ctx.connection.execute(orders.insert(), batch)
            total += len(batch)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=300_000)
    ap.add_argument("--fit-customers", type=int, default=25_000)
    ap.add_argument("--chunk-size", type=int, default=10_000)
    args = ap.parse_args()
    from crmkit_segmentation import clv

    try:
        import lifetimes  # noqa: F401

        have_lifetimes = True
    except ImportError:
        have_lifetimes = False

    # 1. fitting on arrays of n customers
    rng = np.random.default_rng(7)
    T = rng.uniform(30, 39, args.fit_customers)
    x, t_x, m = clv.simulate(rng, T, BG, GG)
    (bg, gg), t_fit = timed(lambda: (clv.fit_bgnbd(x, t_x, T), clv.fit_gamma_gamma(x, m)))
    print(f"fit BG/NBD + Gamma-Gamma on {args.fit_customers:,} customers (arrays)")
    print(f"  crmkit-segmentation: {t_fit}  BG/NBD {fmt(bg.params)}  GG {fmt(gg.params)}")
    if have_lifetimes:
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        def lt_fit():
            f, g = BetaGeoFitter(), GammaGammaFitter()
            f.fit(x, t_x, T)
            g.fit(x[x > 0], m[x > 0])
            return f, g

        (lf, lg), t_lt = timed(lt_fit)
        diff = max(abs(bg.params[k] / lf.params_[k] - 1) for k in ("r", "alpha", "a", "b"))
        print(f"  lifetimes 0.11:      {t_lt}  BG/NBD {fmt(lf.params_.to_dict())} "
              f"(largest relative difference {diff:.1e})")  # fmt: skip
    else:
        print("  lifetimes: not importable here (see the module docstring)")

    # 2. a SQLite base, fit on a sample, score everyone in chunks
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'clv.db'}"
    crm = crmkit.open(url, plugins=["segmentation"], upgrade=True)
    n_orders, t_load = timed(lambda: load(crm, args.customers, np.random.default_rng(11)))
    print(f"\nloaded {args.customers:,} customers / {n_orders:,} orders in {t_load} ({url})")
    settings = clv.Settings("week", 52, 0.10)
    model, t_model = timed(
        lambda: clv.fit_model(crm, AS_OF, settings=settings, sample=args.fit_customers)
    )
    print(f"fit on a seeded sample of {model.fitted_on:,} of {model.customers_in_scope:,} "
          f"customers (SQL summaries streamed + both fits): {t_model}")  # fmt: skip

    def chunked() -> int:
        return sum(len(rows) for rows in clv.score(crm, model, args.chunk_size))

    def unchunked() -> int:
        ex = model.extractor(crm)
        everyone = clv.Summaries.concat(list(ex.chunks(10**9)))
        return len(model.score(everyone))

    rows = [(f"crmkit-segmentation, chunks of {args.chunk_size:,}", chunked)]
    rows.append(("naive: same code, every summary at once", unchunked))
    if have_lifetimes:
        rows.append(("lifetimes: pandas read + summary + fit all + CLV", lambda: lt_run(crm)))
    print(f"\nscore {args.customers:,} customers (expected purchases, P(alive), spend, CLV)")
    for name, fn in rows:
        count, seconds = timed(fn)
        peak = peak_mb(fn)
        print(f"  {name:<50} {seconds}  peak traced {peak:7.1f} MB  ({count:,} rows)")


def lt_run(crm: Any) -> int:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    with crm.engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT customer_id, occurred_at, amount FROM orders"), conn)
    df["occurred_at"] = pd.to_datetime(df["occurred_at"])
    df["amount"] = df["amount"].astype(float)
    s = summary_data_from_transaction_data(
        df, "customer_id", "occurred_at", monetary_value_col="amount",
        observation_period_end=pd.Timestamp(AS_OF), freq="W",
    )  # fmt: skip
    bgf = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    rep = s[s["frequency"] > 0]
    ggf = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    s["p_alive"] = bgf.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    clv = ggf.customer_lifetime_value(
        bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=12,
        discount_rate=0.008, freq="W",
    )  # fmt: skip
    return len(clv)


def fmt(params: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in params.items())


if __name__ == "__main__":
    main()
