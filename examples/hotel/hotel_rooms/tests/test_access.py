"""The hotel plugin on the shared server: its permissions per role (Python API), the audit
entry of a preference change, and its routes on a live ``crmkit serve``; both backends."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from crmkit.plugin import Forbidden, NotFound
from crmkit.testing import run_cli

HERE = Path(__file__).resolve().parents[1]


@pytest.fixture
def rooms(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(HERE))
    import crmkit_hotel_rooms.plugin

    return crmkit_hotel_rooms.plugin


@pytest.fixture
def hotel(make_crm: Any, rooms: Any) -> Any:
    crm = make_crm(plugins=[rooms])
    for username, role in (("desk", "technical_support"), ("rep", "sales_rep"),
                           ("other", "sales_rep"), ("books", "cost_accounting")):  # fmt: skip
        crm.staff.add(username, roles=[role])
    guest = crm.customers.add(name="Li Na", owner="rep")
    return SimpleNamespace(crm=crm, guest=guest.id, service=rooms.service)


def as_(crm: Any, username: str) -> Any:
    return crm.acting_as(crm.staff.actor(username))


def test_permissions_per_role(hotel: Any) -> None:
    crm, svc, guest = hotel.crm, hotel.service, hotel.guest
    with as_(crm, "desk"):
        assert svc.prefer(crm, guest, floor="high")["updated_by"] == "desk"
    with as_(crm, "rep"):  # the guest's owner
        assert svc.prefer(crm, guest, pillow="firm")["floor"] == "high"
    with as_(crm, "other"):  # another rep's guest looks like no guest
        with pytest.raises(NotFound):
            svc.profile(crm, guest)
        with pytest.raises(NotFound):
            svc.prefer(crm, guest, bed="twin")
    with as_(crm, "books"):
        assert svc.profile(crm, guest)["pillow"] == "firm"  # reads every guest
        with pytest.raises(Forbidden) as refused:
            svc.prefer(crm, guest, bed="twin")
        assert refused.value.permission == "hotel_rooms.write"
    assert svc.profile(crm, guest)["bed"] is None


def audit_entries(crm: Any, action: str) -> list[Any]:
    if hasattr(crm, "audit_log"):
        return [e for e in crm.audit_log.list(action=action) if e.action == action]
    table = sa.Table("audit_log", sa.MetaData(), autoload_with=crm.engine)
    with crm.reading() as connection:
        rows = connection.execute(
            sa.select(table).where(table.c.action == action).order_by(table.c.id.desc())
        )
        return [SimpleNamespace(**r._mapping) for r in rows]


def test_a_change_is_audited_with_before_and_after(hotel: Any) -> None:
    crm, svc, guest = hotel.crm, hotel.service, hotel.guest
    with as_(crm, "desk"):
        svc.prefer(crm, guest, floor="high", quiet=True)
        svc.prefer(crm, guest, floor="low")
    latest, first = audit_entries(crm, "room_preferences.update")
    assert (first.actor, first.customer_id) == ("desk", guest)
    assert first.changes == {"floor": [None, "high"], "quiet": [None, True]}
    assert latest.changes == {"floor": ["high", "low"]}


def test_routes_on_a_live_server(hotel: Any, database_url: str, live_server: Any) -> None:
    crm, guest = hotel.crm, hotel.guest

    def token(username: str) -> str:
        args = ["token", "create", "--staff", username, "--scopes", "*", "--expires", "never"]
        made = run_cli([*args, "--format", "json"], database=database_url, plugins=[])
        assert made.exit_code == 0, made.output
        return json.loads(made.output)["token"]

    server = live_server(database_url, env={
        "CRMKIT_PLUGINS": "", "CRMKIT_EXTRA_PLUGINS": "crmkit_hotel_rooms.plugin",
        "PYTHONPATH": str(HERE)})  # fmt: skip
    path = f"/api/v1/hotel_rooms/guests/{guest}"
    with (
        server.client(headers={"Authorization": f"Bearer {token('desk')}"}) as desk,
        server.client(headers={"Authorization": f"Bearer {token('other')}"}) as other,
    ):
        got = desk.get(path)
        assert got.status_code == 200, got.text
        assert got.json() == {"customer_id": guest, "preferences": None,
                              "stays": {"count": 0, "nights": 0}}  # fmt: skip
        first = got.headers["etag"]
        changed = desk.patch(f"{path}/preferences", json={"floor": "high"},
                             headers={"If-Match": first})  # fmt: skip
        assert changed.status_code == 200, changed.text
        assert changed.json()["preferences"]["floor"] == "high"
        assert changed.headers["etag"] != first
        stale = desk.patch(f"{path}/preferences", json={"floor": "low"},
                           headers={"If-Match": first})  # fmt: skip
        assert stale.status_code == 412
        bad = desk.patch(f"{path}/preferences", json={"floor": "roof"},
                         headers={"If-Match": changed.headers["etag"]})  # fmt: skip
        assert bad.status_code == 422 and bad.json()["field"] == "floor"
        assert other.get(path).status_code == 404
        assert desk.get("/api/v1/hotel_rooms/guests/999999").status_code == 404
    assert hotel.service.profile(crm, guest)["floor"] == "high"
    (entry,) = audit_entries(crm, "room_preferences.update")
    assert entry.actor.endswith(":desk") and entry.request_id
