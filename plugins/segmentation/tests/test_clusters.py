"""k-means clusters on standardised RFM (+ attributes), silhouette choice of k, profiles."""

import datetime as dt
import random
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa
from crmkit_segmentation.clusters import cluster_customers, silhouette

from crmkit.plugin import ValidationError, customers

AS_OF = dt.date(2024, 12, 31)
END = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
# (orders, amount each, days ago of the last order)
GROUPS = {
    "occasional": (1, 10, 600),
    "regular": (6, 120, 120),
    "key": (25, 900, 5),
    "flat": (3, 100, 60),
}


def _seed(crm, members, attributes=None):
    """members: group names (see GROUPS), jittered by a seeded rng; external id → group."""
    rng = random.Random(7)
    profiles, orders, truth = [], [], {}
    for i, group in enumerate(members):
        n, amount, ago = GROUPS[group]
        ext = f"c{i}"
        truth[ext] = group
        profiles.append({"name": ext, "external_id": ext, **(attributes or {}).get(ext, {})})
        for k in range(n + rng.randint(0, n // 5)):
            days = ago + rng.randint(0, 20) + 10 * k
            orders.append((ext, END - dt.timedelta(days=days), amount * rng.uniform(0.8, 1.2)))
    crm.customers.add_many(profiles)
    with crm.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(customers.c.external_id, customers.c.id)).all())
    crm.orders.add_many(
        dict(
            customer_id=ids[ext],
            occurred_at=when,
            amount=Decimal(f"{amount:.2f}"),
            currency="EUR",
            status="paid",
        )
        for ext, when, amount in orders
    )
    return truth


def _partition(members):
    groups = {}
    for m in members:
        groups.setdefault(m["cluster"], set()).add(m["external_id"])
    return sorted(map(frozenset, groups.values()), key=sorted)


def test_silhouette_picks_three_well_separated_groups(make_crm):
    crm = make_crm(plugins=["segmentation"])
    truth = _seed(crm, ["occasional"] * 12 + ["regular"] * 10 + ["key"] * 8)
    result = cluster_customers(crm, AS_OF, seed=3)
    assert result.k == 3
    assert set(result.silhouette_by_k) == set(range(2, 9))
    assert result.silhouette == max(result.silhouette_by_k.values()) > 0.7
    expected = {}
    for ext, group in truth.items():
        expected.setdefault(group, set()).add(ext)
    assert _partition(result.members) == sorted(map(frozenset, expected.values()), key=sorted)
    # profiles: numbered by mean revenue, sizes and means of each group
    assert [p["customers"] for p in result.profiles] == [8, 10, 12]
    key, _, occasional = result.profiles
    assert key["cluster"] == 1 and key["frequency"] >= 25 and key["recency_days"] < 30
    assert occasional["frequency"] == 1.0 and occasional["recency_days"] > 590
    assert key["monetary"] > 18_000 and isinstance(key["monetary"], Decimal)
    # the same seed gives the same answer; an explicit k is honoured
    again = cluster_customers(crm, AS_OF, seed=3)
    assert again.members == result.members
    assert cluster_customers(crm, AS_OF, k=2, seed=1).k == 2


def test_attribute_separates_customers_rfm_cannot(make_crm):
    crm = make_crm(plugins=["segmentation"])
    attrs = {f"c{i}": {"staff": 5 + i % 3 if i < 10 else 500 + i % 3} for i in range(20)}
    _seed(crm, ["flat"] * 20, attrs)
    result = cluster_customers(crm, AS_OF, k=2, attributes=["staff"], seed=0)
    small = {f"c{i}" for i in range(10)}
    assert small in _partition(result.members)
    assert small not in _partition(cluster_customers(crm, AS_OF, k=2, seed=0).members)
    assert sorted(p["staff"] for p in result.profiles) == [pytest.approx(6.0, abs=0.2), 501.0]
    assert result.features == ("recency_days", "frequency", "monetary", "staff")


def test_numpy_silhouette_matches_definition():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 3))
    labels = rng.integers(0, 3, 30)
    labels[0] = 3  # a singleton cluster scores 0
    d = np.linalg.norm(z[:, None] - z[None], axis=2)
    s = []
    for i in range(30):
        own = labels == labels[i]
        if own.sum() == 1:
            s.append(0.0)
            continue
        a = d[i, own].sum() / (own.sum() - 1)
        b = min(d[i, labels == c].mean() for c in set(labels) if c != labels[i])
        s.append((b - a) / max(a, b))
    assert silhouette(z, labels) == pytest.approx(np.mean(s), abs=1e-9)


def test_cluster_errors(make_crm):
    crm = make_crm(plugins=["segmentation"])
    _seed(
        crm,
        ["occasional", "regular", "key"],
        {"c0": {"staff": 3, "sector": "x"}, "c1": {"staff": "many"}, "c2": {"staff": 9}},
    )
    with pytest.raises(ValidationError, match="into 3 clusters needs at least 4 customers"):
        cluster_customers(crm, AS_OF, k=3)
    with pytest.raises(ValidationError, match="k must be at least 2"):
        cluster_customers(crm, AS_OF, k=1)
    with pytest.raises(ValidationError, match="'staff' is missing or not a number for 1 of 3"):
        cluster_customers(crm, AS_OF, attributes=["staff"])
    with pytest.raises(ValidationError, match="'sector' is missing or not a number for 3 of 3"):
        cluster_customers(crm, AS_OF, attributes=["sector"])
    with pytest.raises(ValidationError, match="before the first order"):
        cluster_customers(crm, dt.date(2000, 1, 1))
    with pytest.raises(ValidationError, match="no customer in scope"):
        cluster_customers(crm, AS_OF, {"region": "Nowhere"})
    assert cluster_customers(crm, AS_OF).k == 2  # three customers: only k=2 can be scored
