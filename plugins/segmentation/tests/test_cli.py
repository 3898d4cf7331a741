import datetime as dt
import json
from decimal import Decimal

import pytest

from crmkit.plugin import ConfigError
from crmkit.testing import run_cli


def test_cli_rfm_json_and_error(make_crm, cli_runner):
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
    args = ["segment", "rfm", "--as-of", "2024-04-01", "--bins", "2"]
    res = cli_runner([*args, "--format", "json"], plugins=["segmentation"])
    assert res.exit_code == 0, res.output
    rows = {r["customer_id"]: r for r in json.loads(res.output)}
    assert rows[b.id]["monetary"] == "16.50"
    assert (rows[a.id]["f"], rows[b.id]["f"]) == (1, 2)
    assert rows[b.id]["segment"] == "champions"
    assert rows[a.id]["segment"] == "need attention"
    res = cli_runner(["segment", "rfm", "--as-of", "2020-01-01"], plugins=["segmentation"])
    assert res.exit_code == 1
    assert "before the first order" in res.output


ACTIVE_MAP = """
plugins = ["segmentation"]
[segmentation]
rfm_bins = 2
rfm_map = [
  {segment = "inactive", r = [1, 3], f = [1, 5]},
  {segment = "active", r = [4, 5], f = [1, 5]},
]
"""


def _seed_two(crm):
    a = crm.customers.add(name="A")
    b = crm.customers.add(name="B")
    crm.orders.add_many(
        {
            "customer_id": cid,
            "occurred_at": dt.datetime(2024, 3, day, tzinfo=dt.UTC),
            "amount": Decimal("5.50"),
        }
        for cid, day in ((a.id, 1), (b.id, 2), (b.id, 3))
    )
    return a, b


def _run(database_url, *args, config=None):
    prefix = ["--config", str(config)] if config else []
    return run_cli(
        [*prefix, "--database", database_url, "segment", *args],
        env={"CRMKIT_PLUGINS": "segmentation"},
    )


def test_rfm_map_and_bins_from_settings(make_crm, database_url, tmp_path):
    crm = make_crm(plugins=["segmentation"])
    a, b = _seed_two(crm)
    config = tmp_path / "crmkit.toml"
    config.write_text(ACTIVE_MAP, encoding="utf-8")
    res = _run(database_url, "rfm", "--as-of", "2024-04-01", "--format", "json", config=config)
    assert res.exit_code == 0, res.output
    got = {r["customer_id"]: (r["r"], r["segment"]) for r in json.loads(res.output)}
    assert got == {a.id: (1, "inactive"), b.id: (2, "active")}  # 2 bins: R 1 -> 3, R 2 -> 5
    # a map leaving a cell uncovered stops start-up with one line naming table and cell
    config.write_text(ACTIVE_MAP.replace("r = [4, 5]", "r = [5, 5]"), encoding="utf-8")
    res = _run(database_url, "rfm", "--as-of", "2024-04-01", config=config)
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert "[segmentation] rfm_map has no rule for R=4, F=1; add a rule covering it" in res.output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rfm_bins": 1}, "rfm_bins must be an integer from 2 to 100"),
        ({"abc_thresholds": {"A": 0.9, "B": 0.8}}, r"A \(0.9\) must be below B \(0.8\)"),
        ({"pyramid_shares": {"vip": 0.5, "major": 0.6}}, "must add up to less than 1"),
        ({"pyramid_measure": "profit"}, "pyramid_measure must be one of revenue, margin, clv"),
        ({"rfm_map": [{"segment": "x", "r": [0, 5], "f": [1, 5]}]}, r"rfm_map\[0\].r must be"),
        ({"colour": "red"}, "unknown keys \\['colour'\\]"),
    ],
)
def test_bad_settings_are_refused(make_crm, settings, message):
    with pytest.raises(ConfigError, match=message):
        make_crm(plugins=["segmentation"], settings={"segmentation": settings})


def test_snapshot_diff_walk_through(make_crm, database_url):
    crm = make_crm(plugins=["segmentation"])
    a, b = _seed_two(crm)
    res = _run(database_url, "snapshot", "rfm", "--as-of", "2024-03-01", "--format", "json")
    assert res.exit_code == 0, res.output
    first = json.loads(res.output)[0]
    assert (first["scheme"], first["as_of"], first["customers"], first["changed"]) == (
        "rfm", "2024-03-01", 1, 0
    )  # fmt: skip
    res = _run(database_url, "snapshot", "rfm", "--as-of", "2024-04-01", "--format", "json")
    second = json.loads(res.output)[0]
    assert (second["customers"], second["changed"]) == (2, 1)  # B arrived
    res = _run(database_url, "diff", str(first["snapshot"]), str(second["snapshot"]))
    assert res.exit_code == 0, res.output
    # A stays lost, B enters as hibernating (2 customers, 5 bins: scores 1 and 2)
    assert [line.split() for line in res.output.splitlines()[2:]] == [
        ["lost", "0", "1", "0", "1"],
        ["(none)", "1", "0", "0", "1"],
    ]
    assert res.output.splitlines()[0].split() == ["from", "hibernating", "lost", "(none)", "total"]
    res = _run(database_url, "diff", str(first["snapshot"]), "99")
    assert (res.exit_code, res.output) == (
        1,
        "error: segmentation: no snapshot 99; 'crmkit segment snapshots' lists them\n",
    )
    res = _run(database_url, "snapshot", "rfn", "--as-of", "2024-04-01")
    assert res.exit_code == 1 and res.output.startswith("error: segmentation: unknown scheme")
    res = _run(database_url, "snapshots", "--format", "csv")
    assert len(res.output.splitlines()) == 3  # header and the two snapshots: errors kept none
