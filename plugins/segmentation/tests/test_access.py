"""Segmentation's permissions per default role (Python API), the rows each role sees, the
audit entry of a snapshot, and the HTTP routes on a live server; both backends."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from crmkit_segmentation import analyses_cli
from crmkit_segmentation import snapshots as snaps

from crmkit.plugin import Forbidden
from crmkit.testing import run_cli

PLUGINS = ["segmentation"]
AS_OF = dt.date(2024, 3, 31)
SETTINGS = {"segmentation": {"rfm_bins": 2}}


@pytest.fixture
def shop(make_crm: Any) -> Any:
    """Staff: ``boss`` (manager), ``lead`` (sales manager of ``rep_a``), ``rep_a`` and
    ``rep_b`` (sales reps), ``books`` (cost accounting), ``support`` (technical support).
    Customers ``a1..a3`` of rep_a, ``b1..b3`` of rep_b, each with orders; every second one
    consents to marketing."""
    crm = make_crm(plugins=PLUGINS, settings=SETTINGS)
    crm.staff.add("boss", roles=["manager"])
    crm.staff.add("lead", roles=["sales_manager"])
    crm.staff.add("rep_a", roles=["sales_rep"], manager="lead")
    crm.staff.add("rep_b", roles=["sales_rep"])
    crm.staff.add("books", roles=["cost_accounting"])
    crm.staff.add("support", roles=["technical_support"])
    ids = {}
    for n, (owner, name) in enumerate(
        [(o, f"{o[-1]}{i}") for o in ("rep_a", "rep_b") for i in (1, 2, 3)]
    ):
        ids[name] = crm.customers.add(name=name, owner=owner, consents={"marketing": n % 2 == 0}).id
        crm.orders.add_many(
            {"customer_id": ids[name], "amount": Decimal(10 * (n + 1)),
             "occurred_at": dt.datetime(2024, 1 + k, 10, tzinfo=dt.UTC)}
            for k in range(n % 3 + 1)
        )  # fmt: skip
    return SimpleNamespace(crm=crm, ids=ids, a={ids["a1"], ids["a2"], ids["a3"]})


def as_(crm: Any, username: str) -> Any:
    return crm.acting_as(crm.staff.actor(username))


def all_members(crm: Any, snapshot_id: int) -> set[int]:
    """Every consenting member of every segment of the snapshot that the actor sees."""
    found: set[int] = set()
    for segment, _ in snaps.segment_counts(crm, snapshot_id):
        rows = snaps.campaign_list(crm, segment, "rfm", snapshot_id)["rows"]
        found |= {r["customer_id"] for r in rows}
    return found


def test_roles_on_snapshots_and_members(shop: Any) -> None:
    crm, ids = shop.crm, shop.ids
    consenting = {ids[n] for n in ("a1", "a3", "b2")}
    for who in ("lead", "rep_a", "books", "support"):
        with as_(crm, who), pytest.raises(Forbidden) as refused:
            snaps.take_snapshot(crm, "rfm", AS_OF)
        assert refused.value.permission == "segmentation.snapshot"
    with as_(crm, "boss"):
        snap = snaps.take_snapshot(crm, "rfm", AS_OF)
        assert all_members(crm, snap.id) == consenting
    with as_(crm, "books"):  # cost accounting reads everyone's segments
        assert all_members(crm, snap.id) == consenting
    with as_(crm, "rep_a"):
        assert [s.id for s in snaps.list_snapshots(crm)] == [snap.id]
        assert all_members(crm, snap.id) == consenting & shop.a
        assert sum(n for _, n in snaps.segment_counts(crm, snap.id)) == 3
    with as_(crm, "rep_b"):
        assert all_members(crm, snap.id) == {ids["b2"]}
        moved = snaps.movement(crm, snap.id, snap.id)  # counts only rep_b's customers
        assert moved["snapshots"]["stayed"] == 3 and moved["snapshots"]["moved"] == 0
    with as_(crm, "boss"):
        assert snaps.movement(crm, snap.id, snap.id)["snapshots"]["stayed"] == 6
    with as_(crm, "lead"):  # a sales manager: the team (rep_a's customers)
        assert all_members(crm, snap.id) == consenting & shop.a
    with as_(crm, "support"), pytest.raises(Forbidden) as refused:
        snaps.list_snapshots(crm)
    assert refused.value.permission == "segmentation.read"


def test_analyses_run_for_managers_and_show_only_visible_customers(shop: Any) -> None:
    crm = shop.crm
    everyone = {r["customer_id"] for r in analyses_cli.rfm_report(crm, AS_OF)}
    assert everyone == set(shop.ids.values())
    with as_(crm, "boss"):
        assert {r["customer_id"] for r in analyses_cli.rfm_report(crm, AS_OF)} == everyone
    with as_(crm, "lead"):
        assert {r["customer_id"] for r in analyses_cli.rfm_report(crm, AS_OF)} == shop.a
        rows = analyses_cli.abc_report(crm, AS_OF)
        assert {r["customer_id"] for r in rows} == shop.a
        summary = analyses_cli.abc_report(crm, AS_OF, summary=True)  # company-wide
        assert sum(r["customers"] for r in summary) == 6
    for who in ("rep_a", "books", "support"):
        with as_(crm, who), pytest.raises(Forbidden) as refused:
            analyses_cli.rfm_report(crm, AS_OF)
        assert refused.value.permission == "segmentation.run"


def audit_entries(crm: Any, action: str) -> list[Any]:
    if hasattr(crm, "audit_log"):
        return [e for e in crm.audit_log.list(action=action) if e.action == action]
    table = sa.Table("audit_log", sa.MetaData(), autoload_with=crm.engine)
    with crm.reading() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.action == action).order_by(table.c.id.desc())
        )
        return [SimpleNamespace(**r._mapping) for r in rows]


def test_a_snapshot_is_audited_once_with_its_counts(shop: Any) -> None:
    crm = shop.crm
    with as_(crm, "boss"):
        first = snaps.take_snapshot(crm, "rfm", AS_OF - dt.timedelta(days=30))
        second = snaps.take_snapshot(crm, "rfm", AS_OF)
    entries = audit_entries(crm, "segmentation.snapshot")
    assert [e.entity_id for e in entries] == [str(second.id), str(first.id)]
    assert entries[0].actor == "boss"
    assert entries[0].changes["customers"] == [None, 6]
    assert entries[0].changes["changed"] == [None, second.changed]
    assert entries[0].changes["scheme"] == [None, "rfm"]
    assert audit_entries(crm, "write") == []  # no write went unaudited


# -- HTTP ------------------------------------------------------------------------------


def token(url: str, username: str) -> str:
    result = run_cli(
        ["token", "create", "--staff", username, "--scopes", "*", "--expires", "never",
         "--format", "json"],
        database=url, plugins=PLUGINS,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["token"]


PREFIX = "/api/v1/segmentation"


def test_http_routes(shop: Any, database_url: str, live_server: Any, tmp_path: Any) -> None:
    crm, ids = shop.crm, shop.ids
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'database = "{database_url}"\nplugins = ["segmentation"]\n\n'
        "[segmentation]\nrfm_bins = 2\n",
        encoding="utf-8",
    )
    server = live_server(config, cwd=tmp_path)
    c = {
        who: server.client(headers={"Authorization": f"Bearer {token(database_url, who)}"})
        for who in ("boss", "lead", "rep_a", "support")
    }
    try:
        body = {"as_of": AS_OF.isoformat(), "bins": 2}
        ran = c["lead"].post(f"{PREFIX}/analyses/rfm", json=body)
        assert ran.status_code == 200, ran.text
        assert {r["customer_id"] for r in ran.json()["rows"]} == shop.a
        assert ran.json()["left_out_profiling"] == 0
        assert c["rep_a"].post(f"{PREFIX}/analyses/rfm", json=body).status_code == 403
        summary = c["lead"].post(f"{PREFIX}/analyses/abc", json={**body, "summary": True})
        assert summary.status_code == 422 and summary.json()["field"] == "bins"
        unknown = c["boss"].post(f"{PREFIX}/analyses/colour", json={"as_of": "2024-03-31"})
        assert unknown.status_code == 422 and unknown.json()["field"] == "kind"
        clusters = c["boss"].post(
            f"{PREFIX}/analyses/clusters", json={"as_of": "2024-03-31", "k": 2}
        )
        assert clusters.status_code == 200, clusters.text
        assert clusters.json()["figures"]["k"] == 2

        snap = {"as_of": AS_OF.isoformat(), "snapshot": True}
        assert c["lead"].post(f"{PREFIX}/analyses/rfm", json=snap).status_code == 403
        saved = c["boss"].post(f"{PREFIX}/analyses/rfm", json=snap)
        assert saved.status_code == 200, saved.text
        snap_id = saved.json()["snapshot_id"]
        listed = c["rep_a"].get(f"{PREFIX}/snapshots")
        assert [s["id"] for s in listed.json()] == [snap_id]
        detail = c["rep_a"].get(f"{PREFIX}/snapshots/{snap_id}")
        assert detail.status_code == 200 and detail.json()["customers"] == 3
        assert c["rep_a"].get(f"{PREFIX}/snapshots/999").status_code == 404
        assert c["support"].get(f"{PREFIX}/snapshots").status_code == 403

        members: set[int] = set()
        for segment in [s["segment"] for s in detail.json()["segments"]]:
            url = f"{PREFIX}/segments/{segment}/members"
            response = c["rep_a"].get(url, params={"scheme": "rfm", "limit": 1})
            while True:
                assert response.status_code == 200, response.text
                assert len(response.json()) <= 1
                members |= {m["customer_id"] for m in response.json()}
                if "next" not in response.links:
                    break
                response = c["rep_a"].get(response.links["next"]["url"])
        assert members == {ids["a1"], ids["a3"]}  # own, consenting
        wrong = c["rep_a"].get(f"{PREFIX}/segments/nothing/members", params={"scheme": "rfm"})
        assert wrong.status_code == 422
    finally:
        for client in c.values():
            client.close()
    assert audit_entries(crm, "segmentation.snapshot")[0].actor.endswith(":boss")


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        ("rfm", {"bins": 0}, "bins"),
        ("rfm", {"bins": 101}, "bins"),
        ("rfm", {"k": 3}, "k"),
        ("clusters", {"seed": -1}, "seed"),
        ("matrix", {"current_split": Decimal("NaN")}, "current_split"),
        ("clv", {"horizon": float("inf")}, "horizon"),
        ("abc", {"snapshot": True, "summary": True}, "summary"),
        ("colour", {}, "kind"),
    ],
)
def test_options_an_analysis_does_not_take_are_refused(
    shop: Any, kind: str, options: dict[str, Any], field: str
) -> None:
    from crmkit_segmentation.schemas import AnalysisRun
    from crmkit_segmentation.service import run_analysis

    from crmkit.plugin import ValidationError

    with pytest.raises(ValidationError) as refused:
        run_analysis(shop.crm, kind, AnalysisRun(as_of=AS_OF, **options))
    assert refused.value.field == field
    assert snaps.list_snapshots(shop.crm) == []
