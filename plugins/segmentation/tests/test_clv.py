"""Lifetime value: formulas against hand computations, parameter recovery, SQL summaries, CLI."""

import datetime as dt
import json
import math
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa
from crmkit_segmentation import clv
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crmkit.plugin import ValidationError, customers
from crmkit.testing import run_cli

# CDNOW estimates in weeks (FHL 2005: r, alpha, a, b; FHL 2005 iso-value: p, q, gamma)
BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
BGP = tuple(BG.values())
GGP = tuple(GG.values())
# (x, t_x, T) of a few customers: new, one repeat, heavy recent buyer, heavy lapsed buyer
CUSTOMERS = [(0, 0.0, 38.86), (1, 30.43, 38.86), (7, 37.0, 38.0), (5, 8.0, 39.0), (2, 0.5, 0.5)]


# -- hand computations, straight from the papers' closed forms -------------------------------


def hyp2f1_series(a, b, c, z):
    """Gauss hypergeometric function by its defining series (|z| < 1)."""
    term, total, k = 1.0, 1.0, 0
    while abs(term) > 1e-17 * abs(total):
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
        k += 1
    return total


def hand_likelihood(r, alpha, a, b, x, t_x, T):
    """FHL 2005 eq. 6: L = A1 A2 (A3 + delta(x>0) A4), as a product (no logs)."""
    a1 = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
    a2 = math.exp(math.lgamma(a + b) + math.lgamma(b + x) - math.lgamma(b) - math.lgamma(a + b + x))
    a3 = (alpha + T) ** -(r + x)
    a4 = a / (b + x - 1) * (alpha + t_x) ** -(r + x) if x > 0 else 0.0
    return a1 * a2 * (a3 + a4)


def hand_p_alive(r, alpha, a, b, x, t_x, T):
    if x == 0:
        return 1.0
    return 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))


def hand_expected(r, alpha, a, b, x, t_x, T, t):
    """FHL 2005 eq. 10, with the original (untransformed) 2F1."""
    z = t / (alpha + T + t)
    gauss = ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1_series(
        r + x, b + x, a + b + x - 1, z
    )
    return (a + b + x - 1) / (a - 1) * (1 - gauss) * hand_p_alive(r, alpha, a, b, x, t_x, T)


def hand_gg_loglik(p, q, g, x, m):
    return (
        math.lgamma(p * x + q)
        - math.lgamma(p * x)
        - math.lgamma(q)
        + q * math.log(g)
        + (p * x - 1) * math.log(m)
        + p * x * math.log(x)
        - (p * x + q) * math.log(g + m * x)
    )


def hand_spend(p, q, g, x, m):
    """FHL 2005 iso-value eq.: weighted mean of the population mean and the observed mean."""
    population = p * g / (q - 1)
    w = (q - 1) / (p * x + q - 1)
    return w * population + (1 - w) * m


def arrays(rows):
    return (np.array([r[i] for r in rows], dtype=float) for i in range(3))


def test_bgnbd_loglik_and_gradient_match_hand_computation():
    x, t_x, T = arrays(CUSTOMERS)
    ll, grad = clv.bgnbd_loglik(np.array(BGP), x, t_x, T, grad=True)
    for i, c in enumerate(CUSTOMERS):
        assert ll[i] == pytest.approx(math.log(hand_likelihood(*BGP, *c)), rel=1e-12, abs=1e-12)
    # analytic gradient against central differences of the hand likelihood
    for j in range(4):
        h = 1e-6 * BGP[j]
        up = list(BGP)
        dn = list(BGP)
        up[j] += h
        dn[j] -= h
        for i, c in enumerate(CUSTOMERS):
            fd = (math.log(hand_likelihood(*up, *c)) - math.log(hand_likelihood(*dn, *c))) / (2 * h)
            assert grad[j, i] == pytest.approx(fd, rel=1e-5, abs=1e-7)


def test_log_sum_exp_keeps_heavy_buyers_finite():
    # (alpha+t_x)^-(r+x) underflows a float for x in the thousands; the log form does not
    ll = clv.bgnbd_loglik(np.array(BGP), np.array([3000.0]), np.array([50.0]), np.array([52.0]))
    assert np.isfinite(ll).all()


def test_expected_purchases_and_p_alive_match_hand_computation():
    x, t_x, T = arrays(CUSTOMERS)
    for t in (4.0, 26.0, 39.0):
        got = clv.expected_purchases(BGP, t, x, t_x, T)
        for i, c in enumerate(CUSTOMERS):
            assert got[i] == pytest.approx(hand_expected(*BGP, *c, t), rel=1e-9)
    alive = clv.p_alive(BGP, x, t_x, T)
    assert alive[0] == 1.0
    for i, c in enumerate(CUSTOMERS):
        assert alive[i] == pytest.approx(hand_p_alive(*BGP, *c), rel=1e-12)
    # the lapsed heavy buyer is probably gone, the recent one probably not
    assert alive[3] < 0.05 < 0.85 < alive[2]
    # a brand-new customer (x = t_x = T = 0) expects the unconditional E[X(t)] (FHL eq. 9)
    r, alpha, a, b = BGP
    t = 26.0
    unconditional = (
        (a + b - 1)
        / (a - 1)
        * (1 - (alpha / (alpha + t)) ** r * hyp2f1_series(r, b, a + b - 1, t / (alpha + t)))
    )
    zero = np.zeros(1)
    assert clv.expected_purchases(BGP, t, zero, zero, zero)[0] == pytest.approx(unconditional)


positive = st.floats(0.05, 20.0)


@settings(max_examples=100, deadline=None)
@given(
    r=positive,
    alpha=positive,
    a=st.floats(0.05, 20.0).filter(lambda v: abs(v - 1) > 0.01),
    b=positive,
    x=st.integers(0, 25),
    recency=st.floats(0.0, 1.0),
    T=st.floats(0.1, 200.0),
    t=st.floats(0.1, 100.0),
)
def test_formulas_agree_with_hand_computation_everywhere(r, alpha, a, b, x, recency, T, t):
    """Log-likelihood, P(alive) and E[Y(t)] against the papers' forms over a wide range."""
    assume(abs(a + b - 1) > 1e-9)  # x = 0 and a + b = 1: 2F1 with c = 0 (removable, 0/0)
    t_x = recency * T if x else 0.0
    params = (r, alpha, a, b)
    z = t / (alpha + T + t)
    if z > 0.9:  # the hand series converges too slowly near 1
        t = 9 * (alpha + T)  # z = 0.9
    one = (np.array([float(x)]), np.array([t_x]), np.array([T]))
    ll = clv.bgnbd_loglik(np.array(params), *one)[0]
    assert ll == pytest.approx(math.log(hand_likelihood(*params, x, t_x, T)), rel=1e-9, abs=1e-9)
    alive = clv.p_alive(params, *one)[0]
    assert alive == pytest.approx(hand_p_alive(*params, x, t_x, T), rel=1e-9, abs=1e-300)
    got = clv.expected_purchases(params, t, *one)[0]
    assert got == pytest.approx(hand_expected(*params, x, t_x, T, t), rel=1e-6, abs=1e-12)
    assert got >= 0 and clv.expected_purchases(params, 2 * t, *one)[0] >= got


@settings(max_examples=100, deadline=None)
@given(
    p=positive,
    q=st.floats(1.05, 20.0),
    g=st.floats(0.1, 1000.0),
    x=st.integers(1, 200),
    m=st.floats(0.01, 10_000.0),
)
def test_gamma_gamma_agrees_with_hand_computation_everywhere(p, q, g, x, m):
    ll = clv.gg_loglik(np.array([p, q, g]), np.array([float(x)]), np.array([m]))[0]
    assert ll == pytest.approx(hand_gg_loglik(p, q, g, x, m), rel=1e-9, abs=1e-9)
    spend = clv.conditional_spend((p, q, g), np.array([float(x)]), np.array([m]))[0]
    assert spend == pytest.approx(hand_spend(p, q, g, x, m), rel=1e-9)
    assert min(m, p * g / (q - 1)) * (1 - 1e-9) <= spend <= max(m, p * g / (q - 1)) * (1 + 1e-9)


def test_gamma_gamma_formulas_match_hand_computation():
    x = np.array([1.0, 2.0, 6.0])
    m = np.array([20.0, 35.5, 12.25])
    ll, grad = clv.gg_loglik(np.array(GGP), x, m, grad=True)
    spend = clv.conditional_spend(GGP, x, m)
    for i in range(3):
        assert ll[i] == pytest.approx(hand_gg_loglik(*GGP, x[i], m[i]), rel=1e-12)
        assert spend[i] == pytest.approx(hand_spend(*GGP, x[i], m[i]), rel=1e-12)
    for j in range(3):
        h = 1e-6 * GGP[j]
        up, dn = list(GGP), list(GGP)
        up[j] += h
        dn[j] -= h
        fd = (hand_gg_loglik(*up, x[0], m[0]) - hand_gg_loglik(*dn, x[0], m[0])) / (2 * h)
        assert grad[j, 0] == pytest.approx(fd, rel=1e-5)
    # no repeat purchase: the population mean p * gamma / (q - 1)
    p, q, g = GGP
    assert clv.conditional_spend(GGP, np.zeros(1), np.array([np.nan]))[0] == pytest.approx(
        p * g / (q - 1)
    )


def test_discounted_clv_by_hand():
    """Monthly steps: margin x spend x sum_k (E(k) - E(k-1)) / 1.1^(k/12), k = 1..12 months."""
    params_months = (BG["r"], BG["alpha"] * 12 / 52, BG["a"], BG["b"])  # rescale alpha
    bg = given_fit("BG/NBD", dict(zip(["r", "alpha", "a", "b"], params_months, strict=True)))
    gg = given_fit("Gamma-Gamma", GG)
    settings = clv.Settings("month", 12, 0.10, 0.3)
    c = (3, 5.0, 9.0)
    out = clv.predict(bg, gg, settings, 0.3, *(np.array([v], dtype=float) for v in c), [40.0])
    cum = [hand_expected(*params_months, *c, k) if k else 0.0 for k in range(13)]
    pv = sum((cum[k] - cum[k - 1]) / 1.1 ** (k / 12) for k in range(1, 13))
    spend = hand_spend(*GGP, 3, 40.0)
    assert out["clv"][0] == pytest.approx(0.3 * spend * pv, rel=1e-9)
    assert out["expected_purchases"][0] == pytest.approx(cum[12], rel=1e-9)
    # discounting only ever lowers the value, and a zero rate gives undiscounted purchases
    flat = clv.predict(bg, gg, clv.Settings("month", 12, 0.0, 0.3), 0.3, *out_args(c), [40.0])
    assert flat["clv"][0] == pytest.approx(0.3 * spend * cum[12], rel=1e-9)
    assert out["clv"][0] < flat["clv"][0]


def given_fit(name, params):
    return clv.Fit(name, params, 0.0, 1, 0, 0, 0.0, 0.0, {}, "given")


def out_args(c):
    return (np.array([v], dtype=float) for v in c)


# -- parameter recovery ----------------------------------------------------------------------


def within_standard_errors(fit, truth, k=4.0, max_rel_se=0.25):
    """|log(estimate / truth)| <= k standard errors of the log-parameter.

    The MLE is asymptotically normal with the inverse observed information as its
    covariance, so a true parameter lies within 4 SE with probability > 0.9999; the SE
    must also be small (<= 25 %) so that the check says something.
    """
    for name, true in truth.items():
        est, se = fit.params[name], fit.std_errors[name] / fit.params[name]
        assert se <= max_rel_se, (name, est, se)
        assert abs(math.log(est / true)) <= k * se, (name, est, true, se)


def test_bgnbd_and_gamma_gamma_recover_known_parameters():
    rng = np.random.default_rng(20250101)
    T = rng.uniform(52, 78, 8000)  # cohorts acquired over half a year, weeks
    x, t_x, m = clv.simulate(rng, T, BG, GG)
    bg = clv.fit_bgnbd(x, t_x, T)
    gg = clv.fit_gamma_gamma(x, m)
    assert bg.converged and bg.gradient_norm < clv.GRADIENT_TOLERANCE
    within_standard_errors(bg, BG)
    within_standard_errors(gg, GG, max_rel_se=0.35)  # q and gamma are strongly correlated
    # the quantity that matters is recovered tighter than the parameters
    true_mean = GG["p"] * GG["gamma"] / (GG["q"] - 1)
    fit_mean = gg.params["p"] * gg.params["gamma"] / (gg.params["q"] - 1)
    assert fit_mean == pytest.approx(true_mean, rel=0.05)
    assert clv.expected_purchases(
        tuple(bg.params.values()), 52.0, x, t_x, T
    ).sum() == pytest.approx(clv.expected_purchases(BGP, 52.0, x, t_x, T).sum(), rel=0.05)


def test_refuses_too_few_customers_and_non_convergence():
    rng = np.random.default_rng(1)
    T = rng.uniform(30, 40, 30)
    x, t_x, m = clv.simulate(rng, T, BG, GG)
    with pytest.raises(ValidationError, match=r"needs at least 40 customers, 12 of them"):
        clv.fit_bgnbd(x, t_x, T)
    with pytest.raises(ValidationError, match=r"Gamma-Gamma: it needs at least 30 customers"):
        clv.fit_gamma_gamma(x[:20], m[:20])
    T = rng.uniform(30, 40, 2000)
    x, t_x, m = clv.simulate(rng, T, BG, GG)
    with pytest.raises(ValidationError, match=r"BG/NBD fit did not converge \(2 iterations"):
        clv.fit_bgnbd(x, t_x, T, maxiter=2)
    with pytest.raises(ValidationError, match="Gamma-Gamma fit did not converge"):
        clv.fit_gamma_gamma(x, m, maxiter=1)


def test_refuses_degenerate_fit():
    # everyone buys every week and nobody ever lapses: no heterogeneity and no dropout
    n = 200
    T = np.full(n, 30.0)
    x = np.full(n, 29.0)
    t_x = np.full(n, 29.0)
    with pytest.raises(ValidationError, match="degenerate"):
        clv.fit_bgnbd(x, t_x, T)


def test_refuses_infinite_mean_spend():
    # customer mean spends with a Pareto(0.6) tail: the fitted q falls below 1
    rng = np.random.default_rng(2)
    x = rng.integers(1, 6, 3000).astype(float)
    m = rng.gamma(5 * x, 1 / (5 * x)) * (rng.pareto(0.6, 3000) + 0.01) * 10
    with pytest.raises(ValidationError, match=r"q = 0\.\d+ <= 1, so the mean spend"):
        clv.fit_gamma_gamma(x, m)


def test_time_unit_only_rescales_alpha():
    rng = np.random.default_rng(9)
    T = rng.uniform(30, 39, 3000)
    x, t_x, _ = clv.simulate(rng, T, BG, GG)
    weeks = clv.fit_bgnbd(x, t_x, T)
    days = clv.fit_bgnbd(x, t_x * 7, T * 7)
    for k in ("r", "a", "b"):
        assert days.params[k] == pytest.approx(weeks.params[k], rel=1e-4)
    assert days.params["alpha"] == pytest.approx(7 * weeks.params["alpha"], rel=1e-4)
    assert days.log_likelihood == pytest.approx(weeks.log_likelihood - x.sum() * math.log(7))
    w = clv.expected_purchases(tuple(weeks.params.values()), 52.0, x, t_x, T)
    d = clv.expected_purchases(tuple(days.params.values()), 364.0, x, t_x * 7, T * 7)
    assert d == pytest.approx(w, rel=1e-3)


# -- on a CRM (both backends) ----------------------------------------------------------------

AS_OF = dt.date(2024, 12, 31)
END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def seed_simulated(crm, n=160, seed=5):
    """n customers whose orders follow BG/NBD + Gamma-Gamma (weeks), every 4th without id."""
    rng = np.random.default_rng(seed)
    T_days = rng.integers(120, 600, n)
    x, t_x, m = clv.simulate(rng, T_days / 7, {"r": 0.8, "alpha": 4.0, "a": 0.8, "b": 2.5}, GG)
    crm.customers.add_many(
        [{"name": f"C{i}", "external_id": f"C{i}" if i % 4 else None} for i in range(n)]
    )
    with crm.engine.connect() as conn:
        ids = conn.scalars(sa.select(customers.c.id).order_by(customers.c.id)).all()
    rows = []
    for i, cid in enumerate(ids):
        first = END - dt.timedelta(days=int(T_days[i])) + dt.timedelta(hours=3)
        repeat = sorted(rng.uniform(0, t_x[i] * 7, max(int(x[i]) - 1, 0))) + [t_x[i] * 7]
        days = [0.0, *repeat[: int(x[i])]]
        for d in days:
            amount = Decimal(f"{max(m[i], 1.0):.2f}")
            rows.append(
                {
                    "customer_id": cid,
                    "occurred_at": first + dt.timedelta(days=float(d)),
                    "amount": amount,
                    "cost": (amount * Decimal("0.6")).quantize(Decimal("0.01")),
                    "currency": "EUR",
                    "status": "paid",
                }
            )
    crm.orders.add_many(rows)
    return ids


def test_summaries_from_sql(make_crm):
    crm = make_crm(plugins=["segmentation"])
    a = crm.customers.add(name="A", external_id="A")
    b = crm.customers.add(name="B")

    def order(cid, when, amount, cost=None, status="paid"):
        crm.orders.add(
            customer_id=cid,
            occurred_at=when,
            amount=Decimal(amount),
            cost=None if cost is None else Decimal(cost),
            currency="EUR",
            status=status,
        )

    day = dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)
    order(a.id, day, "10.00", "4.00")
    order(a.id, day + dt.timedelta(hours=5), "5.00", "1.00")  # same day: one transaction
    order(a.id, day + dt.timedelta(days=14), "30.00", "10.00")
    order(a.id, day + dt.timedelta(days=28), "50.00")  # no cost: counts at the margin share
    order(a.id, day + dt.timedelta(days=30), "999.00", status="refunded")  # does not count
    order(a.id, dt.datetime(2025, 2, 1, tzinfo=dt.UTC), "500.00", "1.00")  # after as-of
    order(b.id, day + dt.timedelta(days=7), "8.00", "2.00")
    ex = clv.Extractor(crm, dt.date(2024, 3, 31), None, 7.0, 0.10)
    (chunk,) = list(ex.chunks())
    assert chunk.customer_id.tolist() == [a.id, b.id]
    assert chunk.external_id == ["A", None]
    assert chunk.x.tolist() == [2.0, 0.0]
    assert chunk.t_x.tolist() == pytest.approx([4.0, 0.0])
    assert chunk.T.tolist() == pytest.approx([90 / 7, 83 / 7])
    assert chunk.m[0] == pytest.approx(40.0)  # (30 + 50) / 2; the first day is excluded
    assert np.isnan(chunk.m[1])
    end = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)

    def grown(amount, when):
        return amount * 1.1 ** ((end - when).total_seconds() / 86400 / 365.25)

    hist_a = (
        grown(6, day)
        + grown(4, day + dt.timedelta(hours=5))
        + grown(20, day + dt.timedelta(days=14))
        + 0.5 * grown(50, day + dt.timedelta(days=28))
    )
    assert chunk.historical(0.5)[0] == pytest.approx(hist_a, rel=1e-9)
    assert ex.observed_margin() == pytest.approx((6 + 4 + 20 + 6) / (15 + 30 + 8))
    with pytest.raises(ValidationError, match="before the first order"):
        clv.Extractor(crm, dt.date(2023, 1, 1))
    with pytest.raises(ValidationError, match="unknown scope"):
        clv.Extractor(crm, dt.date(2024, 3, 31), {"colour": "red"})


def test_fit_score_chunks_sample_and_customer_clv(make_crm):
    crm = make_crm(plugins=["segmentation"])
    ids = seed_simulated(crm)
    model = clv.fit_model(crm, AS_OF, settings=clv.Settings("week", 26, 0.1))
    assert model.margin == pytest.approx(0.4, abs=1e-3)  # cost is 60 % of every amount
    assert (model.fitted_on, model.customers_in_scope) == (160, 160)
    whole = [r for rows in clv.score(crm, model, chunk_size=10_000) for r in rows]
    small = list(clv.score(crm, model, chunk_size=7))
    assert [len(rows) for rows in small][:2] == [7, 7]
    assert [r for rows in small for r in rows] == whole
    with crm.transaction():  # reads join a running transaction (e.g. a hook's)
        assert [r for rows in clv.score(crm, model, chunk_size=9) for r in rows] == whole
    assert [r["customer_id"] for r in whole] == ids
    row = whole[5]
    assert isinstance(row["clv"], Decimal) and row["clv"] == row["clv"].quantize(Decimal("0.01"))
    assert clv.customer_clv(crm, ids[5], model=model) == {
        **row,
        "as_of": "2024-12-31",
        "time_unit": "week",
        "horizon": 26,
    }
    # a seeded sample: the same customers each time, fewer than the base
    ex = model.extractor(crm)
    picked, total = ex.sample(120, seed=3, chunk_size=25)
    assert total == 160 and len(picked) == 120
    assert picked.customer_id.tolist() == ex.sample(120, seed=3)[0].customer_id.tolist()
    assert picked.customer_id.tolist() != ex.sample(120, seed=4)[0].customer_id.tolist()
    assert sorted(picked.customer_id.tolist()) == picked.customer_id.tolist()
    a = clv.fit_model(crm, AS_OF, sample=120, seed=3)
    assert a.fitted_on == 120 and a.bgnbd.customers == 120
    assert a.bgnbd.params != model.bgnbd.params
    lonely = crm.customers.add(name="no orders")
    assert clv.customer_clv(crm, lonely.id, model=model) is None


def segment_clv(database_url, *args):
    return run_cli(["segment", "clv", *args], database=database_url, plugins=["segmentation"])


def test_cli_json_shape_and_as_of(make_crm, database_url):
    crm = make_crm(plugins=["segmentation"])
    ids = seed_simulated(crm)
    args = ["--as-of", "2024-12-31", "--time-unit", "week", "--format", "json"]
    res = segment_clv(database_url, *args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["as_of"], out["time_unit"]) == ("2024-12-31", "week")
    assert {"r", "alpha", "a", "b", "log_likelihood", "converged"} <= set(out["bgnbd"])
    assert {"p", "q", "gamma", "log_likelihood", "converged"} <= set(out["gamma_gamma"])
    assert out["bgnbd"]["converged"] is True and out["bgnbd"]["log_likelihood"] < 0
    assert len(out["customers"]) == 160
    assert "C1" in out["customers"] and "C0" not in out["customers"]
    first_id = ids[0]  # C0 has no external_id
    one = out["customers"][f"id:{first_id}"]
    assert set(one) >= {"expected_purchases", "p_alive", "expected_spend", "clv", "historical_clv"}
    assert 0 < one["p_alive"] <= 1 and one["expected_purchases"] > 0
    assert Decimal(one["clv"]) >= 0 and Decimal(one["historical_clv"]) > 0
    # orders after as-of change nothing
    late = crm.customers.add(name="late", external_id="late")
    for cid in (late.id, first_id):
        crm.orders.add(
            customer_id=cid,
            occurred_at=dt.datetime(2025, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
            amount=Decimal("1000.00"),
            currency="EUR",
            status="paid",
        )
    again = segment_clv(database_url, *args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == out
    csv_out = segment_clv(database_url, "--as-of", "2024-12-31", "--format", "csv")
    assert csv_out.output.splitlines()[0].startswith("customer_id,customer,x,t_x,T,expected")
    assert len(csv_out.output.splitlines()) == 161
    table = segment_clv(database_url, "--as-of", "2024-12-31", "--horizon", "10")
    assert "BG/NBD      r=" in table.output and "horizon 10," in table.output


def test_cli_refusals(make_crm, database_url):
    crm = make_crm(plugins=["segmentation"])
    seed_simulated(crm, n=30)
    res = segment_clv(database_url, "--as-of", "2024-12-31")
    assert res.exit_code == 1
    assert "too few customers to fit BG/NBD: it needs at least 40 customers" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    res = segment_clv(database_url, "--as-of", "2020-01-01")
    assert res.exit_code == 1 and "before the first order" in res.output
    res = segment_clv(database_url, "--as-of", "2024-12-31", "--margin", "1.5")
    assert res.exit_code == 1 and "--margin is a share of spend" in res.output
    res = segment_clv(database_url, "--as-of", "2024-12-31", "--scope", "colour=red")
    assert res.exit_code == 1 and "unknown scope" in res.output


def test_cli_time_units_are_the_models():
    from crmkit_segmentation import clv, clv_cli

    assert list(clv_cli.TIME_UNITS) == list(clv.TIME_UNIT_DAYS)


def test_loading_the_plugin_does_not_import_scipy():
    import subprocess
    import sys

    code = (
        "import sys, crmkit_segmentation.plugin; "
        "print('scipy' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False", out.stdout
