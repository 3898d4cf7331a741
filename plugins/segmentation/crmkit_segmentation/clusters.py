"""k-means clusters on standardised RFM and chosen numeric attributes, with profiles.

Features per customer with orders up to as-of (recency, frequency and monetary come from
one SQL aggregate): recency in days before the end of the as-of day, ``log1p`` of the
number of orders, ``log1p`` of revenue (so a few very large customers do not make every
other customer one cluster), and each chosen custom attribute as it is. Each feature is
standardised to mean 0 and standard deviation 1 (a constant feature becomes 0).

k-means is :func:`scipy.cluster.vq.kmeans2` with k-means++ starts from a seeded generator,
restarted ``n_init`` times keeping the lowest within-cluster sum of squares, so the same
seed gives the same clusters. Without ``k`` every k in 2..8 (at most n - 1) is tried and
the one with the highest mean silhouette wins (above 20,000 customers the candidates are
fitted on a seeded sample of 20,000 and the winner is then fitted on everyone);
silhouettes are computed with numpy on a seeded sample of at most 2,000 customers (exact
below that). Clusters are numbered by mean revenue, highest first.

Limits: k-means finds round clusters of similar spread; it always returns k clusters,
even from data without structure (look at the silhouette: near 0 means no real clusters).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import numpy as np
import sqlalchemy as sa
from scipy.cluster.vq import ClusterError, kmeans2

from crmkit.plugin import ValidationError, customers, money_scale, orders

from .analyses import UNITS, days_before, no_customers, order_units
from .profiling import allowed
from .scope import (
    as_of_end,
    check_scope,
    counted_orders,
    customer_key,
    orders_in_scope,
    require_orders_before,
    scope_clauses,
)

K_RANGE = (2, 8)
SILHOUETTE_SAMPLE = 2000
#: above this many customers, k is chosen on a seeded sample of this size
FIT_SAMPLE = 20_000
RFM_FEATURES = ("recency_days", "frequency", "monetary")


@attrs.frozen
class Clustering:
    """The chosen clustering: ``profiles`` (one row per cluster) and ``members``."""

    k: int
    silhouette: float
    silhouette_by_k: dict[int, float]
    features: tuple[str, ...]
    profiles: list[dict[str, Any]]
    members: list[dict[str, Any]]


def _features(
    crm: Any, as_of: dt.date, scope: Mapping[str, str], attributes: Sequence[str]
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Rows (cid, external_id, monetary) and the raw and transformed feature matrices."""
    for name in attributes:
        definition = crm.attribute_definitions.get(name)
        if definition is not None and definition.type not in ("integer", "decimal"):
            raise ValidationError(
                f"segmentation: attribute {name!r} is of type {definition.type}; clustering "
                "needs a numeric (integer or decimal) attribute"
            )
    end = as_of_end(as_of)
    dialect = crm.engine.dialect.name
    agg = (
        sa.select(
            customer_key().label("cid"),
            sa.func.max(orders.c.occurred_at).label("last_at"),
            sa.func.count().label("frequency"),
            sa.func.sum(order_units("revenue", end, dialect)).label("units"),
        )
        .select_from(orders_in_scope(scope))
        .where(*counted_orders(end), *scope_clauses(scope))
        .group_by(customer_key())
        .subquery("a")
    )
    recency = sa.cast(days_before(end, dialect, agg.c.last_at), sa.Float)
    extra = [customers.c.attributes] if attributes else []
    query = (
        sa.select(agg.c.cid, recency, agg.c.frequency, agg.c.units, customers.c.external_id, *extra)
        .select_from(agg.join(customers, customers.c.id == agg.c.cid))
        .where(allowed(agg.c.cid))
        .order_by(agg.c.cid)
    )
    with crm.engine.connect() as conn:
        require_orders_before(conn, as_of)
        rows = conn.execute(query).all()
    if not rows:
        raise no_customers(as_of, scope, crm)
    raw = np.empty((len(rows), 3 + len(attributes)))
    raw[:, :3] = np.array([(r[1], r[2], int(r[3]) / UNITS) for r in rows], dtype=float)
    missing: dict[str, list[str]] = {name: [] for name in attributes}
    for i, r in enumerate(rows if attributes else ()):
        values = r.attributes or {}
        for j, name in enumerate(attributes):
            number = _number(values.get(name))
            if number is None:
                missing[name].append(r.external_id or str(r.cid))
                number = np.nan
            raw[i, 3 + j] = number
    for name, who in missing.items():
        if who:
            raise ValidationError(
                f"segmentation: attribute {name!r} is missing or not a number for {len(who)} "
                f"of {len(rows)} customers (e.g. {who[0]}); fill it in or leave it out"
            )
    transformed = raw.copy()
    transformed[:, 1] = np.log1p(raw[:, 1])
    transformed[:, 2] = np.sign(raw[:, 2]) * np.log1p(np.abs(raw[:, 2]))
    return rows, raw, transformed


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return number if np.isfinite(number) else None


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns to mean 0, standard deviation 1; a constant column becomes 0."""
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def kmeans(z: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 10) -> np.ndarray:
    """Best of ``n_init`` seeded k-means++ runs (lowest inertia): the label of each row."""
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                centroids, labels = kmeans2(z, k, iter=30, minit="++", seed=rng, missing="raise")
        except ClusterError:  # a cluster emptied: try another start
            continue
        inertia = float(((z - centroids[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    if best is None:
        raise ValidationError(
            f"segmentation: k-means could not form {k} non-empty clusters; choose a smaller k"
        )
    return best


def silhouette(z: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (numpy): (b - a) / max(a, b), 0 for a point alone in its cluster."""
    sq = (z**2).sum(axis=1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0))
    clusters = np.unique(labels)
    if len(clusters) < 2:
        return 0.0
    onehot = labels[:, None] == clusters[None, :]
    sizes = onehot.sum(axis=0)
    sums = d @ onehot  # distance from each point to every cluster, summed
    own = onehot.argmax(axis=1)
    own_size = sizes[own]
    a = np.where(own_size > 1, sums[np.arange(len(z)), own] / np.maximum(own_size - 1, 1), 0)
    mean_other = np.where(onehot, np.inf, sums / sizes[None, :])
    b = mean_other.min(axis=1)
    s = np.where(own_size > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size, replace=False)) if n > size else np.arange(n)


def _score(z: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> float:
    """Mean silhouette, on a seeded sample of at most SILHOUETTE_SAMPLE rows."""
    keep = _sample(len(z), SILHOUETTE_SAMPLE, rng)
    return round(silhouette(z[keep], labels[keep]), 6)


def cluster_customers(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    *,
    k: int | None = None,
    attributes: Sequence[str] = (),
    seed: int = 0,
    n_init: int = 10,
) -> Clustering:
    """Cluster in-scope customers with orders up to ``as_of``; ``k`` None: best silhouette."""
    scope = check_scope(scope)
    attributes = tuple(dict.fromkeys(attributes))
    if k is not None and k < 2:
        raise ValidationError(f"segmentation: k must be at least 2, got {k}")
    rows, raw, transformed = _features(crm, as_of, scope, attributes)
    n = len(rows)
    need = (k or K_RANGE[0]) + 1
    if n < need:
        raise ValidationError(
            f"segmentation: clustering into {k or K_RANGE[0]} clusters needs at least {need} "
            f"customers with orders up to {as_of.isoformat()}; found {n}"
        )
    z = standardise(transformed)
    distinct = len(np.unique(z, axis=0))
    candidates = [k] if k else list(range(K_RANGE[0], min(K_RANGE[1], n - 1) + 1))
    candidates = [c for c in candidates if c <= distinct]
    if distinct < 2:
        raise ValidationError(
            "segmentation: every customer has the same features; there is nothing to cluster"
        )
    if not candidates:
        raise ValidationError(
            f"segmentation: only {distinct} distinct customer profiles among {n} customers; "
            f"choose k of at most {distinct}"
        )
    rng = np.random.default_rng(seed)
    scores: dict[int, float] = {}
    if len(candidates) == 1:
        chosen = candidates[0]
        labels = kmeans(z, chosen, rng, n_init)
        scores[chosen] = _score(z, labels, rng)
    else:
        # choose k on a sample (the fits dominate the time), then fit the winner on everyone
        fit = _sample(n, FIT_SAMPLE, rng)
        for c in candidates:
            scores[c] = _score(z[fit], kmeans(z[fit], c, rng, n_init), rng)
        chosen = max(candidates, key=lambda c: (scores[c], -c))
        labels = kmeans(z, chosen, rng, n_init)
        if len(fit) < n:
            scores[chosen] = _score(z, labels, rng)
    names = (*RFM_FEATURES, *attributes)
    # number clusters by mean revenue, highest first
    means = [raw[labels == c, 2].mean() for c in range(chosen)]
    rank = {c: i + 1 for i, c in enumerate(sorted(range(chosen), key=lambda c: -means[c]))}
    profiles = []
    for c in sorted(range(chosen), key=lambda c: rank[c]):
        part = raw[labels == c]
        profile: dict[str, Any] = {
            "cluster": rank[c],
            "customers": len(part),
            "share": round(len(part) / n, 6),
            "recency_days": round(float(part[:, 0].mean()), 1),
            "frequency": round(float(part[:, 1].mean()), 2),
            "monetary": money_scale(Decimal(repr(float(part[:, 2].mean())))),
        }
        for j, name in enumerate(attributes):
            profile[name] = round(float(part[:, 3 + j].mean()), 4)
        profiles.append(profile)
    members = [
        {"customer_id": r.cid, "external_id": r.external_id, "cluster": rank[int(lab)]}
        for r, lab in zip(rows, labels, strict=True)
    ]
    return Clustering(chosen, scores[chosen], scores, names, profiles, members)
