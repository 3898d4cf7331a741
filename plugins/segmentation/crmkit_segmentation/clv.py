"""Lifetime value models: BG/NBD and Gamma-Gamma (Fader, Hardie & Lee 2005), fitted by ML.

Pure numpy/scipy on per-customer summaries (see :mod:`clv_data` for the SQL side):
``x`` repeat purchases, ``t_x`` time of the last purchase and ``T`` age, both measured
from the first purchase in the chosen time unit, and ``m`` the mean spend per repeat
purchase. Every fit is checked (gradient, remaining Newton step in standard errors,
information matrix, parameters away from the search bounds) and refused with the reason
when it fails.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1

from crmkit.plugin import ValidationError

from .clv_data import Extractor, Summaries
from .profiling import count_left_out

TIME_UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 365.25 / 12}
DAYS_PER_YEAR = 365.25
MONTH_DAYS = 365.25 / 12

# Fewest customers we fit on: 10 per parameter in all, and 3 per parameter with a repeat
# purchase (those are the only ones that inform dropout and spend).
PER_PARAMETER = 10
REPEATERS_PER_PARAMETER = 3
# Log-parameters are searched in [-LOG_BOUND, LOG_BOUND] (1e-6 .. 1e6); a solution within
# EDGE of a bound means the likelihood keeps improving towards 0 or infinity: degenerate.
LOG_BOUND = math.log(1e6)
EDGE = 0.5
# Largest gradient (of the mean log-likelihood w.r.t. log-parameters) accepted as converged.
GRADIENT_TOLERANCE = 1e-4
# Converged when one more Newton step would move every parameter by at most this many
# standard errors (the optimum is known far more precisely than the data pin it down).
MAX_STEP_SE = 0.01

BGNBD_PARAMS = ("r", "alpha", "a", "b")
GG_PARAMS = ("p", "q", "gamma")


@dataclass(frozen=True)
class Fit:
    """A converged maximum-likelihood fit and its diagnostics."""

    model: str
    params: dict[str, float]
    log_likelihood: float
    customers: int
    iterations: int
    evaluations: int
    gradient_norm: float
    step_se: float
    std_errors: dict[str, float]
    message: str
    converged: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: float(f"{v:.10g}") for k, v in self.params.items()},
            "log_likelihood": round(self.log_likelihood, 6),
            "converged": self.converged,
            "customers": self.customers,
            "iterations": self.iterations,
            "evaluations": self.evaluations,
            "gradient_norm": float(f"{self.gradient_norm:.3e}"),
            "remaining_step_se": float(f"{self.step_se:.3e}"),
            "std_errors": {k: float(f"{v:.6g}") for k, v in self.std_errors.items()},
            "message": self.message,
        }


# -- BG/NBD ---------------------------------------------------------------------------------


def _per_x(x, groups):
    """Apply f to x, or once per distinct x (``groups = np.unique(x, return_inverse=True)``):
    special functions of x dominate the cost and x takes few distinct values."""
    if groups is None:
        return lambda f: f(x)
    distinct, inverse = groups
    return lambda f: f(distinct)[inverse]


def bgnbd_loglik(
    params: ArrayLike,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    grad: bool = False,
    groups: Any = None,
) -> Any:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6), combined by log-sum-exp.

    With ``grad`` also returns the gradient w.r.t. (r, alpha, a, b), shape (4, n).
    """
    r, alpha, a, b = params
    by_x = _per_x(x, groups)
    rx = r + x
    rep = x > 0
    bx1 = np.where(rep, b + x - 1, 1.0)
    ln_a1 = by_x(lambda u: gammaln(r + u)) - gammaln(r) + r * np.log(alpha)
    ln_a2 = gammaln(a + b) - gammaln(b) + by_x(lambda u: gammaln(b + u) - gammaln(a + b + u))
    ln_a3 = -rx * np.log(alpha + T)
    ln_a4 = np.where(rep, np.log(a) - np.log(bx1) - rx * np.log(alpha + t_x), -np.inf)
    lse = np.logaddexp(ln_a3, ln_a4)
    ll = ln_a1 + ln_a2 + lse
    if not grad:
        return ll
    w3 = np.exp(ln_a3 - lse)
    w4 = 1.0 - w3
    g = np.empty((4, len(x)))
    g[0] = by_x(lambda u: digamma(r + u)) - digamma(r) + np.log(alpha)
    g[0] -= w3 * np.log(alpha + T) + w4 * np.log(alpha + t_x)
    g[1] = r / alpha - w3 * rx / (alpha + T) - w4 * rx / (alpha + t_x)
    dab = digamma(a + b) - by_x(lambda u: digamma(a + b + u))
    g[2] = dab + w4 / a
    g[3] = dab + by_x(lambda u: digamma(b + u)) - digamma(b) - w4 / bx1
    return ll, g


def p_alive(params: ArrayLike, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(still alive | x, t_x, T) (FHL 2005, eq. 13); 1 for customers with no repeat."""
    r, alpha, a, b = params
    rep = x > 0
    log_odds = np.where(
        rep,
        np.log(a)
        - np.log(np.where(rep, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
        -np.inf,
    )
    return expit(-log_odds)


def expected_purchases(
    params: ArrayLike, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10).

    The Gauss term ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) is rewritten by
    Euler's transformation as (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), which stays finite
    for heavy buyers where the original 2F1 overflows.
    """
    r, alpha, a, b = params
    z = t / (alpha + T + t)
    gauss = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * (1 - gauss) * p_alive(params, x, t_x, T)


# -- Gamma-Gamma ----------------------------------------------------------------------------


def gg_loglik(
    params: ArrayLike, x: np.ndarray, m: np.ndarray, grad: bool = False, groups: Any = None
) -> Any:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` purchases."""
    p, q, g = params
    by_x = _per_x(x, groups)
    px = p * x
    lmx = np.log(g + m * x)
    ll = (
        by_x(lambda u: gammaln(p * u + q) - gammaln(p * u))
        - gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * lmx
    )
    if not grad:
        return ll
    dpq = by_x(lambda u: digamma(p * u + q))
    out = np.empty((3, len(x)))
    out[0] = x * (dpq - by_x(lambda u: digamma(p * u)) + np.log(m) + np.log(x) - lmx)
    out[1] = dpq - digamma(q) + np.log(g) - lmx
    out[2] = q / g - (px + q) / (g + m * x)
    return ll, out


def conditional_spend(params: ArrayLike, x: np.ndarray, m: ArrayLike) -> np.ndarray:
    """E[spend per purchase | x, m] (FHL 2005 'RFM and CLV', eq. 5); prior mean when x = 0."""
    p, q, g = params
    m = np.where(x > 0, np.maximum(np.nan_to_num(m), 0.0), 0.0)
    return (g + m * x) * p / (p * x + q - 1)


# -- fitting --------------------------------------------------------------------------------


_UNDEFINED = 1e10  # the objective where the likelihood is not finite (the optimizer needs a number)


@dataclass
class _Objective:
    """Mean negative log-likelihood on log-parameters (scale-free tolerances).

    Customers with identical summaries are evaluated once and weighted by their count
    (on day-resolution data most one-time buyers share a handful of ages).
    """

    loglik: Any
    data: tuple[np.ndarray, ...]
    weights: np.ndarray = field(init=False)
    n: int = field(init=False)
    groups: tuple[np.ndarray, np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        rows, counts = np.unique(np.column_stack(self.data), axis=0, return_counts=True)
        self.data = tuple(rows.T.copy())
        self.weights = counts.astype(float)
        self.n = int(counts.sum())
        self.groups = np.unique(self.data[0], return_inverse=True)

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(theta)
        ll, g = self.loglik(params, *self.data, grad=True, groups=self.groups)
        # multiply-and-sum, not `@`: a threaded BLAS call per evaluation costs more than
        # the whole likelihood (OpenBLAS threads spin, badly so on a busy machine)
        value = -float((ll * self.weights).sum()) / self.n
        gradient = -(g * self.weights).sum(axis=1) * params / self.n
        if not np.isfinite(value):
            return _UNDEFINED, np.zeros_like(theta)
        return value, gradient


def _fit(name, names, loglik, data, theta0, maxiter) -> Fit:
    obj = _Objective(loglik, data)
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(names)
    res = minimize(
        obj,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-8},
    )
    value, gradient = obj(res.x)
    gnorm = float(np.max(np.abs(gradient)))
    diag = f"{res.nit} iterations, gradient {gnorm:.2e}, message {_msg(res)!r}"
    params = dict(zip(names, np.exp(res.x).tolist(), strict=True))
    edge = [k for k, t in zip(names, res.x, strict=True) if abs(t) > LOG_BOUND - EDGE]
    if edge:  # checked first: running off to 0 or infinity also upsets the optimizer
        raise ValidationError(
            f"segmentation: the {name} fit is degenerate: {', '.join(edge)} ran to the edge of "
            f"the search range ({_fmt(params)}); the data do not identify the model"
        )
    finite = value < _UNDEFINED
    cov = _covariance(obj, res.x) if finite else None
    # How far a Newton step would still move, in standard errors: the optimizer's own stop
    # (e.g. an 'ABNORMAL' line search at machine precision) does not decide convergence.
    distance = np.inf
    if cov is not None:
        se = np.sqrt(np.diag(cov))
        distance = float(np.max(np.abs(cov @ (gradient * obj.n)) / se))
    if not finite or gnorm > GRADIENT_TOLERANCE or (cov is not None and distance > MAX_STEP_SE):
        raise ValidationError(
            f"segmentation: the {name} fit did not converge ({diag}, remaining step "
            f"{distance:.2g} standard errors); its parameters are not shown. Fit on more "
            "customers (--sample), or another --time-unit"
        )
    if cov is None:
        raise ValidationError(
            f"segmentation: the {name} fit is degenerate: the likelihood is flat in some "
            f"direction at {_fmt(params)} (singular information matrix)"
        )
    return Fit(
        model=name,
        params=params,
        log_likelihood=-value * obj.n,
        customers=obj.n,
        iterations=int(res.nit),
        evaluations=int(res.nfev),
        gradient_norm=gnorm,
        step_se=distance,
        std_errors=dict(zip(names, (se * np.exp(res.x)).tolist(), strict=True)),
        message=_msg(res),
    )


def _msg(res) -> str:
    msg = res.message
    return msg.decode() if isinstance(msg, bytes) else str(msg)


def _fmt(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())


def _covariance(obj: _Objective, theta: np.ndarray) -> np.ndarray | None:
    """Covariance of the log-parameters: the inverse observed information matrix."""
    k, h = len(theta), 1e-5
    hess = np.empty((k, k))
    for i in range(k):
        step = np.zeros(k)
        step[i] = h
        hess[i] = (obj(theta + step)[1] - obj(theta - step)[1]) / (2 * h)
    info = (hess + hess.T) / 2 * obj.n
    try:
        np.linalg.cholesky(info)
        return np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return None


def _need(name: str, k: int, total: int, repeaters: int, what: str) -> None:
    need_total, need_rep = PER_PARAMETER * k, REPEATERS_PER_PARAMETER * k
    if total < need_total or repeaters < need_rep:
        raise ValidationError(
            f"segmentation: too few customers to fit {name}: it needs at least {need_total} "
            f"customers, {need_rep} of them {what} ({PER_PARAMETER} and "
            f"{REPEATERS_PER_PARAMETER} per parameter); got {total}, {repeaters} {what}"
        )


def fit_bgnbd(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, maxiter: int = 500) -> Fit:
    """Fit BG/NBD (r, alpha, a, b) by maximum likelihood."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    _need("BG/NBD", 4, len(x), int((x > 0).sum()), "with a repeat purchase")
    # start: alpha at the mean age over mean rate, so r/alpha ~ observed purchase rate
    rate = max(x.sum() / max(T.sum(), 1e-9), 1e-6)
    theta0 = np.log([1.0, 1.0 / rate, 1.0, 1.0])
    return _fit("BG/NBD", BGNBD_PARAMS, bgnbd_loglik, (x, t_x, T), theta0, maxiter)


def fit_gamma_gamma(x: ArrayLike, m: ArrayLike, maxiter: int = 500) -> Fit:
    """Fit Gamma-Gamma (p, q, gamma) on customers with repeat purchases and positive spend."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    keep = (x > 0) & (np.nan_to_num(m) > 0)
    x, m = x[keep], m[keep]
    _need("Gamma-Gamma", 3, len(x), len(x), "with a repeat purchase of positive value")
    theta0 = np.log([1.0, 2.0, max(float(np.mean(m)), 1e-6)])
    fit = _fit("Gamma-Gamma", GG_PARAMS, gg_loglik, (x, m), theta0, maxiter)
    if fit.params["q"] <= 1:
        raise ValidationError(
            f"segmentation: the Gamma-Gamma fit has q = {fit.params['q']:.4g} <= 1, so the mean "
            "spend per purchase is infinite under the model; spend is too heavy-tailed for it"
        )
    return fit


# -- scoring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What a CLV run is about; ``horizon`` is in ``time_unit``s."""

    time_unit: str = "week"
    horizon: float | None = None
    discount_rate: float = 0.10
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_UNIT_DAYS:
            raise ValidationError(
                f"segmentation: unknown time unit {self.time_unit!r}; use day, week or month"
            )
        if self.horizon is not None and not self.horizon > 0:
            raise ValidationError(f"segmentation: --horizon must be positive, got {self.horizon}")
        if not 0 <= self.discount_rate < 10:
            raise ValidationError(
                "segmentation: --discount-rate is an annual rate like 0.1, "
                f"got {self.discount_rate}"
            )
        if self.margin is not None and not 0 < self.margin <= 1:
            raise ValidationError(
                f"segmentation: --margin is a share of spend in (0, 1], got {self.margin}"
            )

    @property
    def unit_days(self) -> float:
        return TIME_UNIT_DAYS[self.time_unit]

    @property
    def horizon_units(self) -> float:
        """The horizon, one year by default."""
        return self.horizon or DAYS_PER_YEAR / self.unit_days


def discount_steps(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Month ends (in time units) up to the horizon and their discount factors."""
    months = math.ceil(settings.horizon_units * settings.unit_days / MONTH_DAYS - 1e-9)
    ends = np.minimum(
        np.arange(1, months + 1) * MONTH_DAYS / settings.unit_days, settings.horizon_units
    )
    factors = (1 + settings.discount_rate) ** -(ends * settings.unit_days / DAYS_PER_YEAR)
    return ends, factors


def predict(
    bgnbd: Fit,
    gg: Fit,
    settings: Settings,
    margin: float,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    m: ArrayLike,
) -> dict[str, np.ndarray]:
    """Per-customer expected purchases over the horizon, P(alive), spend and discounted CLV.

    CLV = margin x E[spend] x sum over months of E[purchases in the month] x (1+d)^-years,
    the cash of each month discounted from its end.
    """
    bp = tuple(bgnbd.params[k] for k in BGNBD_PARAMS)
    gp = tuple(gg.params[k] for k in GG_PARAMS)
    ends, factors = discount_steps(settings)
    cumulative = np.zeros(len(x))
    discounted = np.zeros(len(x))
    for end, factor in zip(ends, factors, strict=True):
        now = expected_purchases(bp, end, x, t_x, T)
        discounted += (now - cumulative) * factor
        cumulative = now
    spend = conditional_spend(gp, x, m)
    return {
        "expected_purchases": cumulative,
        "p_alive": p_alive(bp, x, t_x, T),
        "expected_spend": spend,
        "clv": margin * spend * discounted,
    }


# -- simulation (tests and benchmark) -------------------------------------------------------


def simulate(
    rng: np.random.Generator, T: ArrayLike, bgnbd: dict[str, float], gg: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (x, t_x, m) for customers of ages ``T`` from the two models' generative stories.

    Purchase rate lambda ~ Gamma(r, alpha), dropout p ~ Beta(a, b): purchases follow a
    Poisson process and after each repeat purchase the customer leaves with probability p.
    Spend: nu ~ Gamma(q, gamma), each purchase ~ Gamma(p, nu), so the mean of x purchases
    is Gamma(p x, nu x).
    """
    T = np.asarray(T, dtype=float)
    n = len(T)
    lam = rng.gamma(bgnbd["r"], 1 / bgnbd["alpha"], n)
    drop = rng.beta(bgnbd["a"], bgnbd["b"], n)
    x, t_x = np.zeros(n), np.zeros(n)
    now, active = np.zeros(n), np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / lam[idx])
        inside = now[idx] <= T[idx]
        buy = idx[inside]
        x[buy] += 1
        t_x[buy] = now[buy]
        active[idx[~inside]] = False
        active[buy[rng.random(len(buy)) < drop[buy]]] = False
    nu = rng.gamma(gg["q"], 1 / gg["gamma"], n)
    m = np.where(x > 0, rng.gamma(gg["p"] * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), 0.0)
    return x, t_x, m


# -- running on a CRM -----------------------------------------------------------------------


def money(value: float) -> Decimal:
    """A float figure as Decimal cents (``+ 0`` turns a rounded ``-0.00`` into ``0.00``)."""
    return Decimal(f"{value:.2f}") + 0


@dataclass(frozen=True)
class Model:
    """Both fits for one as-of date, scope and settings, ready to score customers."""

    as_of: dt.date
    scope: dict[str, str]
    settings: Settings
    margin: float
    margin_source: str
    bgnbd: Fit
    gamma_gamma: Fit
    fitted_on: int
    customers_in_scope: int
    seed: int
    #: in-scope customers with orders left out because they withdrew profiling consent
    left_out: int = 0

    def header(self) -> dict[str, Any]:
        s = self.settings
        return {
            "as_of": self.as_of.isoformat(),
            "time_unit": s.time_unit,
            "horizon": s.horizon_units,
            "discount_rate": s.discount_rate,
            "margin": round(self.margin, 6),
            "margin_source": self.margin_source,
            "scope": dict(self.scope),
            "customers_in_scope": self.customers_in_scope,
            "fitted_on": self.fitted_on,
            "left_out_profiling": self.left_out,
            "seed": self.seed,
            "bgnbd": self.bgnbd.as_dict(),
            "gamma_gamma": self.gamma_gamma.as_dict(),
        }

    def extractor(self, crm: Any) -> Extractor:
        s = self.settings
        return Extractor(crm, self.as_of, self.scope, s.unit_days, s.discount_rate)

    def score(self, chunk: Summaries) -> list[dict[str, Any]]:
        """Rows for one chunk; money as Decimal cents."""
        out = predict(
            self.bgnbd,
            self.gamma_gamma,
            self.settings,
            self.margin,
            chunk.x,
            chunk.t_x,
            chunk.T,
            chunk.m,
        )
        bad = ~np.isfinite(np.stack(list(out.values()))).all(axis=0)
        if bad.any():  # never print a number the formulas could not produce
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"segmentation: the CLV formulas overflow for customer {chunk.customer_id[i]} "
                f"(x={chunk.x[i]:g}, t_x={chunk.t_x[i]:g}, T={chunk.T[i]:g}); try a coarser "
                "--time-unit or a shorter --horizon"
            )
        cols = {
            "x": chunk.x.astype(np.int64).tolist(),
            "t_x": np.round(chunk.t_x, 6).tolist(),
            "T": np.round(chunk.T, 6).tolist(),
            "expected_purchases": np.round(out["expected_purchases"], 6).tolist(),
            "p_alive": np.round(out["p_alive"], 6).tolist(),
            "expected_spend": [money(v) for v in out["expected_spend"].tolist()],
            "clv": [money(v) for v in out["clv"].tolist()],
            "historical_clv": [money(v) for v in chunk.historical(self.margin).tolist()],
        }
        names = list(cols)
        rows = []
        for cid, ext, *values in zip(
            chunk.customer_id.tolist(), chunk.external_id, *cols.values(), strict=True
        ):
            row = {"customer_id": cid, "customer": ext if ext is not None else f"id:{cid}"}
            row.update(zip(names, values, strict=True))
            rows.append(row)
        return rows


def fit_model(
    crm: Any,
    as_of: dt.date,
    scope: dict[str, str] | None = None,
    settings: Settings | None = None,
    sample: int = 50_000,
    seed: int = 0,
    chunk_size: int = 10_000,
    maxiter: int = 500,
) -> Model:
    """Fit BG/NBD and Gamma-Gamma on (a seeded sample of at most ``sample``) in-scope customers.

    Raises ValidationError when there are too few customers or a fit fails its checks.
    """
    settings = settings or Settings()
    if sample < 1:
        raise ValidationError(f"segmentation: --sample must be at least 1, got {sample}")
    ex = Extractor(crm, as_of, scope, settings.unit_days, settings.discount_rate)
    data, total = ex.sample(sample, seed, chunk_size)
    if settings.margin is not None:
        margin, source = settings.margin, "option"
    elif (observed := ex.observed_margin()) is not None:
        margin, source = observed, "orders: (revenue - cost) / revenue over orders with a cost"
    else:
        raise ValidationError(
            "segmentation: no order in scope up to as-of records a cost, so the margin is "
            "unknown; give --margin (the share of spend kept, e.g. 0.3)"
        )
    return Model(
        as_of=as_of,
        scope=dict(ex.scope),
        settings=settings,
        margin=margin,
        margin_source=source,
        bgnbd=fit_bgnbd(data.x, data.t_x, data.T, maxiter),
        gamma_gamma=fit_gamma_gamma(data.x, data.m, maxiter),
        fitted_on=len(data),
        customers_in_scope=total,
        seed=seed,
        left_out=count_left_out(crm, as_of, ex.scope),
    )


def score(crm: Any, model: Model, chunk_size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """Score every in-scope customer, one chunk of rows at a time (bounded memory)."""
    for chunk in model.extractor(crm).chunks(chunk_size):
        yield model.score(chunk)


def customer_clv(
    crm: Any,
    customer_id: int,
    as_of: dt.date | None = None,
    model: Model | None = None,
    **fit_options: Any,
) -> dict[str, Any] | None:
    """One customer's CLV figures (for the customer 360), or None without orders by as_of.

    Fits the models on the whole base (``fit_model`` options pass through) unless a fitted
    ``model`` is given; pass one to score many customers. Raises ValidationError when the
    models cannot be fitted, with the reason.
    """
    if model is None:
        as_of = as_of or dt.datetime.now(dt.UTC).date()
        fit_options.setdefault("sample", 10_000)  # keeps a 360 page to about a second
        model = fit_model(crm, as_of, **fit_options)
    ex = model.extractor(crm)
    for chunk in ex.chunks(customer_id=customer_id):
        row = model.score(chunk)[0]
        return {
            **row,
            "as_of": model.as_of.isoformat(),
            "time_unit": model.settings.time_unit,
            "horizon": model.settings.horizon_units,
        }
    return None
