"""Snapshots, the movement matrix, the segments-changed event, current segments, VIPs,
campaign lists."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa
from crmkit_segmentation import clv
from crmkit_segmentation import snapshots as snaps
from crmkit_segmentation.schemes import rfm_rows
from crmkit_segmentation.tables import memberships, snapshots
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit
from crmkit.plugin import NotFound, PluginError, ValidationError, orders
from crmkit.testing import generate_demo_data

D1, D2 = dt.date(2024, 1, 31), dt.date(2024, 3, 31)
BINS2 = {"segmentation": {"rfm_bins": 2}}


def day(month: int, d: int) -> dt.datetime:
    return dt.datetime(2024, month, d, 12, tzinfo=dt.UTC)


def buy(crm, plan: dict[int, list[tuple[int, int]]]) -> None:
    """One batch of 10.00 orders: ``{customer_id: [(month, day), ...]}``."""
    crm.orders.add_many(
        {"customer_id": cid, "occurred_at": day(m, d), "amount": Decimal("10")}
        for cid, days in plan.items()
        for m, d in days
    )


class Recorder:
    """A plugin listening to the segments-changed event."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list] = []
        self.fail = fail

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_after_segments_changed(self, ctx, changes):
        self.calls.append(list(changes))
        # the event runs inside the snapshot's transaction: the new snapshot is visible
        assert ctx.connection.scalar(sa.select(sa.func.count()).select_from(snapshots)) >= 2
        if self.fail:
            raise RuntimeError("listener broke")


def seed(crm) -> dict[str, int]:
    """Five customers whose 2-bin RFM segments are worked out by hand in the test."""
    ids = {n: crm.customers.add(name=n).id for n in "ABCDE"}
    buy(
        crm,
        {
            ids["A"]: [(1, 27), (1, 28), (1, 29), (1, 30)],  # F4, last Jan 30
            ids["B"]: [(1, 1)],  # F1, last Jan 1
            ids["C"]: [(1, 3), (1, 4), (1, 5)],  # F3, last Jan 5
            ids["D"]: [(1, 19), (1, 20)],  # F2, last Jan 20
        },
    )
    return ids


def after_d1(crm, ids) -> None:
    ids["E"] = crm.customers.add(name="E2").id  # new customer, one order on Mar 1
    buy(
        crm,
        {
            ids["A"]: [(3, 28), (3, 29)],  # F6, last Mar 29
            ids["B"]: [(3, 27), (3, 28), (3, 29), (3, 30)],  # F5, last Mar 30
            ids["E"]: [(3, 1)],
        },
    )


def test_snapshot_diff_and_changed_event(make_crm) -> None:
    recorder = Recorder()
    crm = make_crm(plugins=["segmentation", recorder], settings=BINS2)
    ids = seed(crm)
    first = snaps.take_snapshot(crm, "rfm", D1)
    assert (first.customers, first.changed) == (4, 0)
    assert recorder.calls == []  # no baseline: nothing is announced
    # by hand: R and F halves of 4 customers (ties split by id) on the 1..5 scale (3 or 5)
    assert snaps.current_segments(crm, list(ids.values())) == {
        ids["A"]: {"rfm": "champions"},
        ids["B"]: {"rfm": "need attention"},
        ids["C"]: {"rfm": "loyal"},
        ids["D"]: {"rfm": "potential loyalists"},
        ids["E"]: {},
    }
    after_d1(crm, ids)
    second = snaps.take_snapshot(crm, "rfm", D2)
    assert (second.customers, second.changed) == (5, 4)
    # A stays a champion; B rises; C and D sink; E arrives
    assert len(recorder.calls) == 1
    got = {(c.customer_id, c.from_segment, c.to_segment) for c in recorder.calls[0]}
    assert got == {
        (ids["B"], "need attention", "champions"),
        (ids["C"], "loyal", "need attention"),
        (ids["D"], "potential loyalists", "need attention"),
        (ids["E"], None, "need attention"),
    }
    change = recorder.calls[0][0]
    assert (change.scheme, change.snapshot_id, change.previous_snapshot_id, change.as_of) == (
        "rfm", second.id, first.id, D2
    )  # fmt: skip
    report = snaps.movement(crm, first.id, second.id)
    matrix = {r["from"]: r for r in report["rows"]}
    assert matrix["champions"]["champions"] == 1 and matrix["champions"]["total"] == 1
    assert matrix["need attention"]["champions"] == 1
    assert matrix["loyal"]["need attention"] == 1
    assert matrix["potential loyalists"]["need attention"] == 1
    assert matrix["(none)"]["need attention"] == 1
    assert sum(r["total"] for r in report["rows"]) == 5
    assert report["snapshots"]["moved"] == 4 and report["snapshots"]["stayed"] == 1
    # the SQL matrix equals counting pairs of the two runs in Python
    a = {r["customer_id"]: r["segment"] for r in rfm_rows(crm, D1, {})}
    b = {r["customer_id"]: r["segment"] for r in rfm_rows(crm, D2, {})}
    pairs = Counter((a.get(c, "(none)"), b.get(c, "(none)")) for c in a.keys() | b.keys())
    cells = {
        (r["from"], k): v
        for r in report["rows"]
        for k, v in r.items()
        if k not in ("from", "total") and v
    }
    assert cells == dict(pairs)  # fmt: skip
    # a third snapshot with nothing new announces nothing
    third = snaps.take_snapshot(crm, "rfm", D2)
    assert third.changed == 0 and len(recorder.calls) == 1


def test_listener_failure_stores_nothing(make_crm) -> None:
    crm = make_crm(plugins=["segmentation", Recorder(fail=True)], settings=BINS2)
    ids = seed(crm)
    snaps.take_snapshot(crm, "rfm", D1)
    after_d1(crm, ids)
    with pytest.raises(PluginError, match="listener broke"):
        snaps.take_snapshot(crm, "rfm", D2)
    with crm.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(snapshots)) == 1
        assert conn.scalar(sa.select(sa.func.count()).select_from(memberships)) == 4


def test_current_segments_hook_uses_latest_as_of(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings=BINS2)
    ids = seed(crm)
    after_d1(crm, ids)
    snaps.take_snapshot(crm, "rfm", D2)
    snaps.take_snapshot(crm, "rfm", D1)  # taken later, but about an earlier date
    snaps.take_snapshot(crm, "retail", D2)
    found = crm.call("crmkit_segmentation_current_segments", crm=crm, customer_ids=[ids["B"], 999])
    assert found == {ids["B"]: {"rfm": "champions", "retail": "best customers"}, 999: {}}


def vips(crm, customer_ids) -> set[int]:
    return crm.call("crmkit_segmentation_vip_customers", crm=crm, customer_ids=customer_ids)


def test_vip_customers_are_the_top_tier_of_the_latest_pyramid(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"])
    ids = seed(crm)
    everyone = [*ids.values(), 999]
    assert vips(crm, everyone) == set()  # no pyramid snapshot yet: nobody is a VIP
    snaps.take_snapshot(crm, "rfm", D1)
    assert vips(crm, everyone) == set()  # other schemes do not count
    snap = snaps.take_snapshot(crm, "pyramid", D1)
    current = snaps.current_segments(crm, list(ids.values()))
    assert current[ids["A"]]["pyramid"] == "vip"  # top 1% of 4 customers: the biggest
    # ranked ahead of C: 1 of 4 = 25 %, beyond vip+major+ordinary (20 %): small
    assert [current[ids[n]]["pyramid"] for n in "BCD"] == ["small"] * 3 and snap.customers == 4
    assert vips(crm, everyone) == {ids["A"]}
    assert vips(crm, [ids["B"], ids["C"]]) == set() and vips(crm, []) == set()
    # by D2, B has bought the most: the latest pyramid snapshot (by as-of) decides
    after_d1(crm, ids)
    buy(crm, {ids["B"]: [(3, 2), (3, 3)]})  # B 70.00, A 60.00
    snaps.take_snapshot(crm, "pyramid", D2)
    snaps.take_snapshot(crm, "pyramid", D1)  # taken later, but about an earlier date
    assert vips(crm, everyone) == {ids["B"]}


def test_vip_customers_follow_the_tier_names_of_the_snapshot(make_crm) -> None:
    """The top tier is the snapshot's first pyramid share, whatever it is called."""
    renamed = {"segmentation": {"pyramid_shares": {"gold": 0.25, "silver": 0.25}}}
    crm = make_crm(plugins=["segmentation"], settings=renamed)
    ids = seed(crm)
    snaps.take_snapshot(crm, "pyramid", D1)
    assert snaps.current_segments(crm, [ids["A"]])[ids["A"]] == {"pyramid": "gold"}
    assert vips(crm, list(ids.values())) == {ids["A"]}
    # the same snapshot read with other settings: its own stored shares still decide
    other = make_crm(plugins=["segmentation"])
    assert vips(other, list(ids.values())) == {ids["A"]}


def test_pyramid_vip_reaches_complaints(make_crm, cli_runner) -> None:
    pytest.importorskip("crmkit_complaints")
    crm = make_crm(plugins=["segmentation", "complaints"])
    ids = seed(crm)
    snaps.take_snapshot(crm, "pyramid", D1)
    assert vips(crm, [ids["A"], ids["B"]]) == {ids["A"]}

    def log(customer_id: int) -> str:
        args = ["complaints", "log", "--customer", str(customer_id), "--channel", "phone"]
        res = cli_runner(
            [*args, "--category", "billing", "--description", "x", "--format", "json"],
            plugins=["segmentation", "complaints"],
        )
        assert res.exit_code == 0, res.output
        return json.loads(res.output)[0]["priority"]

    assert (log(ids["A"]), log(ids["B"])) == ("urgent", "normal")


def test_campaign_export_respects_consent(make_crm, cli_runner, tmp_path) -> None:
    crm = make_crm(plugins=["segmentation"], settings=BINS2)
    ids = seed(crm)
    after_d1(crm, ids)
    snap = snaps.take_snapshot(crm, "rfm", D2)
    # need attention at D2: C, D, E; only C and E consented (E later withdrew), D never did
    crm.customers.set_consent(ids["C"], "marketing", True)
    crm.customers.set_consent(ids["E"], "marketing", True)
    crm.customers.set_consent(ids["E"], "marketing", False)
    crm.customers.set_consent(ids["D"], "phone_calls", True)
    crm.customers.set_consent(ids["A"], "marketing", True)  # consented, other segment
    found = snaps.campaign_list(crm, "need attention", "rfm")
    assert [r["customer_id"] for r in found["rows"]] == [ids["C"]]
    assert found["left_out"] == 2 and found["snapshot"].id == snap.id
    out = tmp_path / "list.csv"
    args = ["segment", "export", "need attention", "--scheme", "rfm"]
    res = cli_runner(
        [*args, "--snapshot", str(snap.id), "--output", str(out)], plugins=["segmentation"]
    )
    assert res.exit_code == 0, res.output
    assert "1 customers" in res.output and "2 left out" in res.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["customer_id"], r["name"], r["segment"]) for r in rows] == [
        (str(ids["C"]), "C", "need attention")
    ]
    # bad input: unknown segment, wrong scheme for the snapshot, no snapshot yet, unknown scheme
    with pytest.raises(ValidationError, match="segment 'VIPs' is not in snapshot"):
        snaps.campaign_list(crm, "VIPs", "rfm")
    with pytest.raises(ValidationError, match="not 'retail'"):
        snaps.campaign_list(crm, "lost", "retail", snap.id)
    with pytest.raises(NotFound, match="no snapshot of scheme 'retail'"):
        snaps.campaign_list(crm, "lost", "retail")
    with pytest.raises(ValidationError, match="unknown scheme 'colour'; known schemes: rfm"):
        snaps.campaign_list(crm, "red", "colour")
    assert not (tmp_path / "none.csv").exists()


def test_diff_errors_and_unknown_scheme(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings=BINS2)
    seed(crm)
    a = snaps.take_snapshot(crm, "rfm", D1)
    b = snaps.take_snapshot(crm, "retail", D1)
    with pytest.raises(ValidationError, match="same scheme"):
        snaps.movement(crm, a.id, b.id)
    with pytest.raises(NotFound, match="no snapshot 99"):
        snaps.movement(crm, a.id, 99)
    with pytest.raises(ValidationError, match="unknown scheme 'rfn'"):
        snaps.take_snapshot(crm, "rfn", D1)
    with pytest.raises(ValidationError, match="before the first order"):
        snaps.take_snapshot(crm, "rfm", dt.date(2020, 1, 1))
    assert len(snaps.list_snapshots(crm)) == 2


def test_demo_snapshots_and_personal_data(make_crm, monkeypatch) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {
        "demo_snapshot_schemes": ["rfm"]}})  # fmt: skip
    summary = generate_demo_data(crm, customers=200, seed=7, today=dt.date(2026, 11, 23))
    made = snaps.list_snapshots(crm)
    assert [s.scheme for s in made] == ["rfm", "rfm"]
    assert made[1].as_of - made[0].as_of == dt.timedelta(days=91)
    line = next(x for x in summary.plugin_lines if x.startswith("segmentation:"))
    assert f"rfm #{made[1].id}" in line and made[1].as_of.isoformat() in line
    with crm.engine.connect() as conn:
        last = conn.scalar(sa.select(sa.func.max(orders.c.occurred_at)))
        member = conn.scalar(
            sa.select(sa.func.min(memberships.c.customer_id)).where(
                memberships.c.snapshot_id == made[0].id
            )
        )
    assert made[1].as_of == last.date() and made[1].customers > made[0].customers > 0
    exported = crm.customers.export(member)["plugins"]["segmentation"]["segments"]
    assert [e["snapshot_id"] for e in exported] == [made[0].id, made[1].id]
    # 200 demo customers are enough to fit the CLV models: the 360 section shows their figures
    section = next(s for s in crm.customers.view(member).sections if s.name == "segmentation")
    assert section.data["segments"][0]["as_of"] == made[1].as_of.isoformat()
    assert 0 <= float(section.data["clv"]["P(alive)"]) <= 1
    assert Decimal(section.data["clv"]["CLV (discounted)"]) >= 0
    page = crm.templates.get_template(section.template).render(**section.data)
    assert "<th>P(alive)</th>" in page and "Revenue to date" in page

    # a second view scores with the model fitted (and kept) for the first: no second fit
    def refit(*args, **kwargs):
        raise AssertionError("the CLV model was fitted again")

    monkeypatch.setattr(clv, "fit_model", refit)
    again = next(s for s in crm.customers.view(member).sections if s.name == "segmentation")
    assert again.data["clv"] == section.data["clv"]
    # erasure removes the customer's memberships (profiling data); the export is then empty
    crm.customers.erase(member)
    assert "segmentation" not in crm.customers.export(member).get("plugins", {})
    with crm.engine.connect() as conn:
        left = conn.scalar(sa.select(sa.func.count()).where(memberships.c.customer_id == member))
    assert left == 0


def test_migration_matches_tables(make_crm) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from crmkit.plugin import metadata

    crm = make_crm(plugins=["segmentation"])
    ours = {"segmentation_snapshots", "segmentation_memberships"}

    def only_ours(obj, name, type_, reflected, compare_to):  # noqa: ARG001
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in ours

    with crm.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": only_ours, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []


class Given:
    """A pack whose answer the test sets: any assignment of customers to segments."""

    def __init__(self) -> None:
        self.answer: dict[int, str] = {}

    @crmkit.hookimpl(optionalhook=True)
    def crmkit_segmentation_register_packs(self):
        return {
            "name": "given",
            "classify": lambda crm, as_of, scope: [
                {"customer_id": c, "segment": s} for c, s in self.answer.items()
            ],
        }


assignments = st.dictionaries(st.integers(0, 24), st.sampled_from(["a", "b", "c", "d"]))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=assignments, after=assignments)
def test_movement_and_changes_match_python(make_crm, before, after) -> None:
    state = make_crm.__dict__.setdefault("segmentation_state", {})  # one CRM for all examples
    if not state:
        given_pack, recorder = Given(), Recorder()
        crm = make_crm(plugins=["segmentation", given_pack, recorder])
        crm.customers.add_many([{"name": f"P{i}"} for i in range(25)])
        ids = [c.id for c in crm.customers.list(limit=None)]
        state.update(crm=crm, pack=given_pack, recorder=recorder, ids=ids)
    crm, pack, recorder, ids = state["crm"], state["pack"], state["recorder"], state["ids"]
    pack.answer = {ids[k]: v for k, v in before.items()}
    a = snaps.take_snapshot(crm, "given", D1)
    recorder.calls.clear()
    pack.answer = {ids[k]: v for k, v in after.items()}
    b = snaps.take_snapshot(crm, "given", D1)
    old, new = {ids[k]: v for k, v in before.items()}, pack.answer
    expected = Counter(
        (old.get(c, "(none)"), new.get(c, "(none)")) for c in old.keys() | new.keys()
    )
    report = snaps.movement(crm, a.id, b.id)
    cells = Counter(
        {(r["from"], k): v for r in report["rows"] for k, v in r.items() if k not in ("from", "total") and v}
    )  # fmt: skip
    assert cells == expected
    assert all(
        r["total"] == sum(n for (f, _), n in expected.items() if f == r["from"])
        for r in report["rows"]
    )
    changed = {c for c in old.keys() | new.keys() if old.get(c) != new.get(c)}
    announced = [ch for call in recorder.calls for ch in call]
    assert sorted(ch.customer_id for ch in announced) == sorted(changed)
    assert all(
        (ch.from_segment, ch.to_segment) == (old.get(ch.customer_id), new.get(ch.customer_id))
        for ch in announced
    )
    assert b.changed == len(changed) and report["snapshots"]["moved"] == len(changed)
