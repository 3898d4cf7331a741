import datetime as dt
from decimal import Decimal


def test_order_roundtrip(crm):
    c = crm.customers.add(name="Alice", external_id="C1")
    o = crm.orders.add(
        customer_id=c.id,
        amount="12.34",
        occurred_at=dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC),
        external_id="O1",
    )
    again = crm.orders.get(o.id)
    assert again.amount == Decimal("12.34")
    assert again.occurred_at == dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC)
    w = crm.workflows.start("sales", c.id, "deal")
    crm.workflows.move(w.id, "presentation")
    figs = {f.stage: f for f in crm.workflows.figures("sales")}
    assert figs["need_discovery"].left == 1
