"""Personal columns (export and idempotent erasure), merging two customers and catching up
after the plugin was off."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

import sqlalchemy as sa
from crmkit_segmentation import plugin as seg_plugin
from crmkit_segmentation import snapshots as snaps
from crmkit_segmentation.tables import memberships, snapshots

from crmkit.plugin import customers, metadata

AS_OF = dt.date(2024, 3, 31)


def seed(crm) -> list[int]:
    ids = [crm.customers.add(name=name).id for name in ("Ann", "Bo", "Cy")]
    crm.orders.add_many(
        {
            "customer_id": cid,
            "occurred_at": dt.datetime(2024, 1 + k, 5 + i, tzinfo=dt.UTC),
            "amount": Decimal(10 * (i + 1)),
        }
        for i, cid in enumerate(ids)
        for k in range(i + 1)
    )
    return ids


def test_memberships_are_personal_exported_and_erased_idempotently(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    ids = seed(crm)
    personal = [
        c.name for c in metadata.tables["segmentation_memberships"].c if c.info.get("personal")
    ]
    assert personal == ["segment"]
    a = snaps.take_snapshot(crm, "rfm", AS_OF)
    b = snaps.take_snapshot(crm, "abc", AS_OF)
    export = crm.customers.export(ids[0])["plugins"]["segmentation"]
    with crm.reading() as conn:
        stored = conn.execute(
            sa.select(memberships.c.snapshot_id, memberships.c.segment).where(
                memberships.c.customer_id == ids[0]
            )
        ).all()
    # every personal value stored is in the export
    assert sorted((s["snapshot_id"], s["segment"]) for s in export["segments"]) == sorted(
        (sid, seg) for sid, seg in stored
    )
    assert {s["snapshot_id"] for s in export["segments"]} == {a.id, b.id}
    json.dumps(export)  # JSON-ready
    customer = crm.customers.get(ids[0])
    with crm.transaction() as ctx:  # a re-run of an erasure (to complete it) changes nothing
        seg_plugin.crmkit_erase_personal_data(ctx, customer)
        seg_plugin.crmkit_erase_personal_data(ctx, customer)
    with crm.reading() as conn:
        left = conn.scalar(sa.select(sa.func.count()).where(memberships.c.customer_id == ids[0]))
        kept = conn.scalar(sa.select(sa.func.count()).select_from(memberships))
    assert left == 0 and kept == 4  # the others keep theirs
    with crm.reading() as conn:  # the export hook only reads ctx.connection
        ctx = SimpleNamespace(connection=conn)
        assert seg_plugin.crmkit_export_personal_data(ctx=ctx, customer=customer) is None
    crm.customers.erase(ids[1])
    assert snaps.current_segments(crm, [ids[1]]) == {ids[1]: {}}


def test_merge_drops_the_merged_memberships(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    kept, merged, _ = seed(crm)
    first = snaps.take_snapshot(crm, "rfm", AS_OF)
    before = snaps.current_segments(crm, [kept])[kept]
    with crm.transaction() as ctx:
        answers = crm.call(
            "crmkit_merge_customers",
            ctx=ctx,
            kept=crm.customers.get(kept),
            merged=crm.customers.get(merged),
        )
    summary = next(a for a in answers if a)
    assert summary["memberships_dropped"] == 1
    assert f"customer {kept}" in summary["note"]
    json.dumps(summary)
    # kept's memberships stay as computed; the next snapshot recomputes kept
    assert snaps.current_segments(crm, [merged, kept]) == {merged: {}, kept: before} != {}
    assert snaps.get_snapshot(crm, first.id).customers == 2
    with crm.transaction() as ctx:  # nothing more to move: None
        again = crm.call(
            "crmkit_merge_customers",
            ctx=ctx,
            kept=crm.customers.get(kept),
            merged=crm.customers.get(merged),
        )
    assert not any(again)


def test_catch_up_drops_memberships_of_customers_merged_meanwhile(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    kept, merged, other = seed(crm)
    snaps.take_snapshot(crm, "rfm", AS_OF)
    snaps.take_snapshot(crm, "rfm", AS_OF)
    with crm.transaction() as ctx:  # merged while the plugin was off: the hook never ran
        ctx.connection.execute(
            customers.update().where(customers.c.id == merged).values(merged_into=kept)
        )
    with crm.transaction() as ctx:
        said = [a for a in crm.call("crmkit_catch_up", ctx=ctx, since=None) if a]
    assert said == ["dropped 2 segment memberships of customers merged or erased meanwhile"]
    with crm.reading() as conn:
        left = dict(
            conn.execute(
                sa.select(memberships.c.customer_id, sa.func.count()).group_by(
                    memberships.c.customer_id
                )
            ).all()
        )
        assert conn.scalar(sa.select(sa.func.count()).select_from(snapshots)) == 2
    assert left == {kept: 2, other: 2}
    with crm.transaction() as ctx:  # idempotent: a second run finds nothing
        assert not any(crm.call("crmkit_catch_up", ctx=ctx, since=None))


def test_merge_through_the_core_then_the_next_snapshot_recomputes(make_crm) -> None:
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    kept, merged, other = seed(crm)
    first = snaps.take_snapshot(crm, "rfm", AS_OF)
    assert first.customers == 3
    result = crm.customers.merge(kept, merged, prefer={"name": "kept"})
    assert result.moved["segmentation"]["memberships_dropped"] == 1
    assert snaps.current_segments(crm, [merged]) == {merged: {}}
    second = snaps.take_snapshot(crm, "rfm", AS_OF)
    assert second.customers == 2  # kept with the joined orders, and the other customer
    with crm.reading() as conn:
        stored = set(
            conn.scalars(
                sa.select(memberships.c.customer_id).where(memberships.c.snapshot_id == second.id)
            )
        )
    assert stored == {kept, other}


def test_merge_with_a_withdrawal_leaves_the_kept_customer_out(make_crm) -> None:
    """Consent merges to the more restrictive answer: the kept customer is no longer profiled."""
    crm = make_crm(plugins=["segmentation"], settings={"segmentation": {"rfm_bins": 2}})
    kept, merged, _ = seed(crm)
    crm.customers.set_consent(merged, "profiling", False)
    crm.customers.merge(kept, merged, prefer={"name": "kept"})
    snap = snaps.take_snapshot(crm, "rfm", AS_OF)
    assert (snap.customers, snap.left_out) == (1, 1)
    assert snaps.current_segments(crm, [kept]) == {kept: {}}
