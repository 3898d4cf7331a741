"""Withdrawn profiling consent: every analysis, pack, snapshot, CLV and the 360 leave the
customer out (in SQL), the summaries count them, stored memberships are no longer used."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa
from crmkit_segmentation import clv, profiling
from crmkit_segmentation import snapshots as snaps
from crmkit_segmentation.abc import abc_classes
from crmkit_segmentation.analyses_cli import clusters_report
from crmkit_segmentation.breakdown import market_breakdown
from crmkit_segmentation.matrix import value_matrix
from crmkit_segmentation.packs import run_pack, run_pack_counted
from crmkit_segmentation.pyramid import value_pyramid
from crmkit_segmentation.rfm import rfm_scores
from crmkit_segmentation.tables import memberships

import crmkit
from crmkit.plugin import ValidationError
from crmkit.testing import generate_demo_data

AS_OF = dt.date(2024, 6, 30)
#: the finance pack classifies customers created by as-of: the seeded ones exist from today
TODAY = dt.datetime.now(dt.UTC).date()
NOTE2 = "2 customers left out: profiling consent withdrawn"


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2024, month, day, 12, tzinfo=dt.UTC)


def seed(crm) -> list[int]:
    """Eight customers with different purchase histories (costs, lines and banking data)."""
    ids = [
        crm.customers.add(
            name=f"C{i}",
            region="North" if i % 2 else "South",
            attributes={"assets_held": 50_000 * (i + 1), "products_held": i % 4},
        ).id
        for i in range(8)
    ]
    crm.orders.add_many(
        {
            "customer_id": cid,
            "occurred_at": at(1 + (i + k) % 6, 1 + 3 * k),
            "amount": Decimal((1 + i) * (10 + k)),
            "cost": Decimal(4 + i),
            "lines": [crmkit.OrderLine("Room", 1 + i, 10 + k, category="hotel")],
        }
        for i, cid in enumerate(ids)
        for k in range(1 + i % 4)
    )
    return ids


def withdraw(crm, *ids: int) -> None:
    for cid in ids:
        crm.customers.set_consent(cid, "profiling", False, source="test")


def test_every_analysis_and_pack_leaves_withdrawn_customers_out(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    crm.customers.set_consent(ids[0], "profiling", True)  # a grant changes nothing
    out = {ids[2], ids[5]}
    withdraw(crm, *out)
    kept = set(ids) - out
    assert {r["customer_id"] for r in rfm_scores(crm, AS_OF, bins=3)} == kept
    for measure in ("revenue", "margin", "clv"):
        assert {r["customer_id"] for r in abc_classes(crm, AS_OF, measure=measure)} == kept
        assert {r["customer_id"] for r in value_pyramid(crm, AS_OF, measure=measure)} == kept
    assert {r["customer_id"] for r in value_matrix(crm, AS_OF)} == kept
    breakdown = market_breakdown(crm, AS_OF, dimensions=["region"])
    assert sum(r["customers"] for r in breakdown) == len(kept)
    members = clusters_report(crm, AS_OF, members=True, k=2)
    assert {r["customer_id"] for r in members["rows"]} == kept
    assert members["left_out_profiling"] == 2
    for pack in ("retail", "travel", "b2b", "finance"):
        rows, left_out = run_pack_counted(crm, pack, TODAY if pack == "finance" else AS_OF)
        assert {r["customer_id"] for r in rows} == kept, pack
        assert left_out == 2, pack
    # shares are computed without them: the ABC shares of the kept customers add up to 1
    shares = sum(Decimal(r["share"]) for r in abc_classes(crm, AS_OF))
    assert abs(shares - 1) < Decimal("0.00001")
    assert profiling.count_left_out(crm, AS_OF) == 2
    assert profiling.count_left_out(crm, AS_OF, {"region": "South"}) == 1  # ids[2]
    assert profiling.count_left_out(crm, dt.date(2024, 1, 31)) == 1  # ids[5] buys from June


def test_nobody_left_names_the_withdrawals(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    withdraw(crm, *ids)
    with pytest.raises(ValidationError, match="8 customers left out: profiling consent"):
        abc_classes(crm, AS_OF)
    with pytest.raises(ValidationError, match="8 customers left out: profiling consent"):
        run_pack(crm, "finance", TODAY)


def test_withdrawn_ids_few_or_many(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    withdraw(crm, ids[2], ids[5])
    crm.customers.set_consent(ids[3], "profiling", True)
    many = [*ids, *range(10**6, 10**6 + profiling.CHUNK)]  # a snapshot's worth: one read
    with crm.reading() as conn:
        assert profiling.withdrawn_ids(conn, ids) == {ids[2], ids[5]}
        assert profiling.withdrawn_ids(conn, ids[3:5]) == set()
        assert profiling.withdrawn_ids(conn, many) == {ids[2], ids[5]}
        assert profiling.withdrawn_ids(conn, many[3:]) == {ids[5]}


class EveryonePack:
    """A pack from another plugin that classifies every customer, consent or not."""

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_register_packs(self):
        def classify(crm, as_of, scope):
            return [{"customer_id": c.id, "segment": "all"} for c in crm.customers.list()]

        return [{"name": "everyone", "classify": classify, "labels": ["all"]}]


def test_a_pack_from_another_plugin_is_filtered_and_counted(make_crm) -> None:
    crm = make_crm(plugins=["segmentation", EveryonePack()])
    ids = seed(crm)
    withdraw(crm, ids[1], ids[7])
    rows, left_out = run_pack_counted(crm, "everyone", AS_OF)
    assert {r["customer_id"] for r in rows} == set(ids) - {ids[1], ids[7]}
    assert left_out == 2
    snap = snaps.take_snapshot(crm, "everyone", AS_OF)
    assert (snap.customers, snap.left_out) == (6, 2)


class Recorder:
    def __init__(self) -> None:
        self.changes: list = []

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_after_segments_changed(self, ctx, changes):
        self.changes += list(changes)


def test_withdrawal_after_a_snapshot(make_crm) -> None:
    """Stored memberships stay (exported, erased with the person), but current segments, VIPs
    and campaign lists answer nothing for the customer; the next snapshot leaves them out
    and announces that they left their segment."""
    recorder = Recorder()
    crm = make_crm(
        plugins=["segmentation", recorder],
        settings={"segmentation": {"pyramid_shares": {"vip": 0.5}}},
    )
    ids = seed(crm)
    top = ids[7]  # the biggest spender
    for cid in ids:
        crm.customers.set_consent(cid, "marketing", True)
    first = snaps.take_snapshot(crm, "pyramid", AS_OF)
    assert (first.customers, first.left_out) == (8, 0)
    assert top in snaps.vip_customers(crm, ids)
    withdraw(crm, top)
    assert snaps.current_segments(crm, [top, ids[0]]) == {
        top: {},
        ids[0]: {"pyramid": "small"},
    }
    assert top not in snaps.vip_customers(crm, ids)
    assert crm.call("crmkit_segmentation_vip_customers", crm=crm, customer_ids=[top]) == set()
    listed = snaps.campaign_list(crm, "vip", "pyramid", first.id)
    assert top not in {r["customer_id"] for r in listed["rows"]}
    assert (listed["left_out"], listed["left_out_profiling"]) == (0, 1)
    # the stored membership is still the person's data: exported
    export = crm.customers.export(top)
    assert [s["segment"] for s in export["plugins"]["segmentation"]["segments"]] == ["vip"]
    second = snaps.take_snapshot(crm, "pyramid", AS_OF)
    assert (second.customers, second.left_out) == (7, 1)
    assert (top, "vip", None) in {(c.customer_id, c.from_segment, c.to_segment)
                                  for c in recorder.changes}  # fmt: skip
    with crm.reading() as conn:
        stored = conn.scalars(
            sa.select(memberships.c.snapshot_id).where(memberships.c.customer_id == top)
        ).all()
    assert stored == [first.id]
    # granting again: the next snapshot includes them again
    crm.customers.set_consent(top, "profiling", True)
    third = snaps.take_snapshot(crm, "pyramid", AS_OF)
    assert (third.customers, third.left_out) == (8, 0)
    assert snaps.current_segments(crm, [top]) == {top: {"pyramid": "vip"}}


def test_a_withdrawal_during_the_snapshot_is_respected(make_crm) -> None:
    """Rows handed to take_snapshot (as ``segment pack --snapshot`` does) are checked again
    inside the snapshot's transaction."""
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    rows = run_pack(crm, "retail", AS_OF)
    withdraw(crm, ids[3])
    snap = snaps.take_snapshot(crm, "retail", AS_OF, rows=rows)
    assert (snap.customers, snap.left_out) == (7, 1)
    assert snaps.current_segments(crm, [ids[3]]) == {ids[3]: {}}


def test_cli_summaries_count_the_left_out(make_crm, cli_runner) -> None:
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    withdraw(crm, ids[2], ids[5])
    for cid in ids:
        crm.customers.set_consent(cid, "marketing", True)

    def segment(*args):
        res = cli_runner(["segment", *args], plugins=["segmentation"])
        assert res.exit_code == 0, res.output
        return res

    as_of = ["--as-of", AS_OF.isoformat()]
    kept = set(ids) - {ids[2], ids[5]}
    today = ["--as-of", TODAY.isoformat()]
    for command in (["rfm", *as_of], ["abc", *as_of], ["pyramid", *as_of], ["matrix", *as_of],
                    ["pack", "retail", *as_of], ["pack", "finance", *today]):  # fmt: skip
        res = segment(*command, "--format", "json")
        assert {r["customer_id"] for r in json.loads(res.stdout)} == kept, command
        assert res.stderr.strip() == NOTE2, command
    res = segment("breakdown", *as_of, "--by", "region", "--format", "csv")
    assert res.stderr.strip() == NOTE2
    res = segment("clusters", *as_of, "--k", "2", "--format", "json")
    assert json.loads(res.stdout)["left_out_profiling"] == 2 and NOTE2 in res.stderr
    res = segment("rfm", *as_of, "--format", "html")
    assert f'<p class="note left-out">{NOTE2}</p>' in res.stdout and not res.stderr
    res = segment("rfm", *as_of, "--scope", "region=North")  # ids[5] only
    assert res.stderr.strip() == "1 customer left out: profiling consent withdrawn"
    res = segment("snapshot", "rfm", *as_of, "--format", "json")
    assert json.loads(res.stdout)[0]["customers"] == 6
    assert json.loads(res.stdout)[0]["left_out"] == 2 and res.stderr.strip() == NOTE2
    res = segment("pack", "b2b", *as_of, "--snapshot", "--format", "json")
    assert NOTE2 in res.stderr
    assert snaps.latest_snapshot(crm, "b2b").customers == 6


def test_campaign_export_summary_counts_profiling(make_crm, cli_runner, tmp_path) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    ids = seed(crm)
    snap = snaps.take_snapshot(crm, "abc", AS_OF)
    for cid in ids:
        crm.customers.set_consent(cid, "marketing", True)
    classes: dict[str, list[int]] = {}
    for row in abc_classes(crm, AS_OF):
        classes.setdefault(row["class"], []).append(row["customer_id"])
    label, members = max(classes.items(), key=lambda kv: len(kv[1]))
    assert len(members) >= 3
    withdraw(crm, *members[:2])
    out = tmp_path / "c.csv"
    res = cli_runner(
        ["segment", "export", label, "--scheme", "abc", "--snapshot", str(snap.id),
         "--output", str(out)],
        plugins=["segmentation"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout.rstrip().endswith(f"0 left out without 'marketing' consent; {NOTE2}")
    listed = out.read_text().splitlines()[1:]
    assert len(listed) == len(members) - 2


def test_clv_and_the_360_section(make_crm, cli_runner) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {
        "demo_snapshot_schemes": ["rfm"]}})  # fmt: skip
    generate_demo_data(crm, customers=200, seed=7, today=dt.date(2026, 11, 23))
    with crm.reading() as conn:
        buyers = conn.scalars(
            sa.select(crmkit.plugin.orders.c.customer_id)
            .where(crmkit.plugin.orders.c.status.in_(("placed", "paid")))
            .distinct()
            .order_by(crmkit.plugin.orders.c.customer_id)
        ).all()
    out = buyers[:3]
    before = snaps.current_segments(crm, out)
    assert all(before[c] for c in out)  # the demo snapshot scored them
    withdraw(crm, *out)
    as_of = dt.date(2026, 11, 22)
    model = clv.fit_model(crm, as_of)
    assert model.left_out == 3 and model.customers_in_scope == len(buyers) - 3
    assert clv.customer_clv(crm, out[0], model=model) is None
    scored = {row["customer_id"] for rows in clv.score(crm, model) for row in rows}
    assert scored == set(buyers) - set(out)
    res = cli_runner(["segment", "clv", "--as-of", as_of.isoformat()], plugins=["segmentation"])
    assert res.exit_code == 0, res.output
    assert "3 customers left out: profiling consent withdrawn" in res.stdout
    res = cli_runner(
        ["segment", "clv", "--as-of", as_of.isoformat(), "--format", "json"],
        plugins=["segmentation"],
    )
    found = json.loads(res.stdout)
    assert found["left_out_profiling"] == 3 and len(found["customers"]) == len(buyers) - 3
    # the 360 says why there is no score, and shows no segment or CLV
    view = crm.customers.view(out[0])
    section = next(s for s in view.sections if s.name == "segmentation")
    assert section.data["segments"] == [] and section.data["clv"] is None
    assert section.data["profiling"].startswith("not profiled: the customer withdrew consent")
    page = crm.templates.get_template(section.template).render(**section.data)
    assert "withdrew consent to profiling" in page and "<td>rfm</td>" not in page
    res = cli_runner(["customer", "show", str(out[0])], plugins=["segmentation"])
    assert "withdrew consent to profiling" in res.output
    other = next(s for s in crm.customers.view(buyers[3]).sections if s.name == "segmentation")
    assert other.data["segments"] and other.data["clv"] and "profiling" not in other.data
    # a customer who withdrew without ever buying still gets the reason
    idle = crm.customers.add(name="Idle")
    withdraw(crm, idle.id)
    assert any(s.name == "segmentation" for s in crm.customers.view(idle.id).sections)


def test_the_360_margin_is_unknown_when_an_order_has_no_cost(make_crm):
    import datetime as dt

    from crmkit_segmentation.customer360 import historical_value

    crm = make_crm(plugins=["segmentation"])
    customer = crm.customers.add(name="No Cost")
    at = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    crm.orders.add(customer_id=customer.id, amount="100.00", occurred_at=at)
    value = historical_value(crm, customer.id)
    assert value["margin"] is None and value["uncosted"] == 1  # not 100.00 (100%)
    crm.orders.add(customer_id=customer.id, amount="50.00", cost="30.00", occurred_at=at)
    assert historical_value(crm, customer.id)["margin"] is None
    costed = crm.customers.add(name="Costed")
    crm.orders.add(customer_id=costed.id, amount="50.00", cost="30.00", occurred_at=at)
    assert str(historical_value(crm, costed.id)["margin"]) in ("20.00", "20.0000", "20")
