import datetime as dt
from decimal import Decimal

import pytest
from crmkit_segmentation.rfm import rfm_scores

from crmkit.plugin import ValidationError


def _seed(crm):
    ids = []
    for i in range(4):
        c = crm.customers.add(name=f"C{i}", region="North" if i < 2 else "South")
        ids.append(c.id)
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    # customer i has i+1 orders of 10*(i+1), last order i days after t0
    for i, cid in enumerate(ids):
        for k in range(i + 1):
            crm.orders.add(
                customer_id=cid,
                occurred_at=t0 + dt.timedelta(days=k),
                amount=Decimal(10 * (i + 1)),
                currency="EUR",
                status="paid",
            )
    crm.orders.add(
        customer_id=ids[0],
        occurred_at=t0 + dt.timedelta(days=400),
        amount=Decimal("999"),
        currency="EUR",
        status="paid",
    )
    return ids


def test_rfm_scores_as_of_and_scope(make_crm):
    crm = make_crm(plugins=["segmentation"])
    ids = _seed(crm)
    rows = rfm_scores(crm, dt.date(2024, 1, 10), bins=4)
    by = {r["customer_id"]: r for r in rows}
    # the day-400 order is after as-of and ignored
    assert by[ids[0]]["monetary"] == Decimal("10")
    assert [by[c]["f"] for c in ids] == [1, 2, 3, 4]
    assert [by[c]["r"] for c in ids] == [1, 2, 3, 4]
    assert [by[c]["m"] for c in ids] == [1, 2, 3, 4]
    assert by[ids[3]]["monetary"] == Decimal("160")
    north = rfm_scores(crm, dt.date(2024, 1, 10), {"region": "North"}, bins=2)
    assert sorted(r["customer_id"] for r in north) == ids[:2]
    assert [r["f"] for r in north] == [1, 2]


def test_bad_input(make_crm):
    crm = make_crm(plugins=["segmentation"])
    _seed(crm)
    with pytest.raises(ValidationError, match="before the first order"):
        rfm_scores(crm, dt.date(2023, 1, 1))
    with pytest.raises(ValidationError, match="unknown scope"):
        rfm_scores(crm, dt.date(2024, 1, 10), {"colour": "red"})


def test_default_map_covers_grid_and_names():
    from crmkit_segmentation.rfm import name_segments

    rows = [{"r": r, "f": f} for r in range(1, 6) for f in range(1, 6)]
    named = {(x["r"], x["f"]): x["segment"] for x in name_segments(rows)}
    assert named[(5, 5)] == "champions"
    assert named[(1, 1)] == "lost"
    assert named[(1, 5)] == "can't lose"
    assert named[(5, 1)] == "new"
    assert named[(3, 3)] == "need attention"
    assert len(set(named.values())) == 11
    # bins=10 rescales: score 10 -> 5, 1 -> 1
    assert name_segments([{"r": 10, "f": 10}], bins=10)[0]["segment"] == "champions"
    with pytest.raises(ValidationError, match="no rule for R=5, F=5"):
        name_segments([{"r": 5, "f": 5}], segment_map=(("x", (1, 1), (1, 1)),))
