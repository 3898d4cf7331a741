import datetime as dt
import json
from decimal import Decimal

from click.testing import CliRunner

from crmkit.cli import CliState, cli


def test_cli_rfm_json_and_error(make_crm, database_url):
    crm = make_crm(plugins=["segmentation"])
    a = crm.customers.add(name="A", region="North")
    b = crm.customers.add(name="B", region="South")
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    for cid, n in ((a.id, 1), (b.id, 3)):
        for k in range(n):
            crm.orders.add(
                customer_id=cid,
                occurred_at=t0 + dt.timedelta(days=k),
                amount=Decimal("5.50"),
                currency="EUR",
                status="paid",
            )
    env = {"CRMKIT_PLUGINS": "segmentation"}
    args = ["--database", database_url, "segment", "rfm", "--as-of", "2024-04-01", "--bins", "2"]
    res = CliRunner().invoke(cli, [*args, "--format", "json"], obj=CliState(), env=env)
    assert res.exit_code == 0, res.output
    rows = {r["customer_id"]: r for r in json.loads(res.output)}
    assert rows[b.id]["monetary"] == "16.50"
    assert (rows[a.id]["f"], rows[b.id]["f"]) == (1, 2)
    assert rows[b.id]["segment"] == "champions"
    assert rows[a.id]["segment"] == "need attention"
    bad = ["--database", database_url, "segment", "rfm", "--as-of", "2020-01-01"]
    res = CliRunner().invoke(cli, bad, obj=CliState(), env=env)
    assert res.exit_code == 1
    assert "before the first order" in res.output
