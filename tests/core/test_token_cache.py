"""The server worker's API-token cache (crmkit.core.identity.TokenCache), both backends:
a change made through the same CRM (revocation, deactivation, a role change) applies at
once; one made by another process applies once the cache's seconds have passed; expiry
is checked on every use; a cached token costs no query."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import event

import crmkit
from crmkit.core import identity
from crmkit.errors import Unauthenticated


@pytest.fixture
def cached(crm: crmkit.CRM) -> identity.TokenCache:
    crm.staff.add("boss", roles=["admin"])
    crm.staff.add("li.na", roles=["sales_rep"])
    cache = identity.TokenCache(crm)
    yield cache
    cache.close()


def _statements(crm: crmkit.CRM) -> list[str]:
    seen: list[str] = []
    event.listen(crm.engine, "before_cursor_execute", lambda c, cur, s, *a: seen.append(s))
    return seen


def test_a_cached_token_costs_no_query(cached):
    crm = cached.crm
    text, info = identity.create_token(crm, "li.na", scopes=["customers.read"])
    first = cached.actor(text, request_id="r1")
    seen = _statements(crm)
    again = cached.actor(text, request_id="r2")
    assert seen == []
    assert (again.name, again.token_id, again.scopes, again.request_id) == (
        f"token:{info.id}:li.na", info.id, frozenset({"customers.read"}), "r2"
    )  # fmt: skip
    assert first.request_id == "r1"
    assert identity.list_tokens(crm)[0].last_used_at is not None
    for bad in ("crm_unknown", "not a token", "", None):
        with pytest.raises(Unauthenticated):
            cached.actor(bad)


def test_changes_through_the_same_crm_apply_at_once(cached):
    crm = cached.crm
    revoked, info = identity.create_token(crm, "li.na", scopes=["*"])
    staff_token, _ = identity.create_token(crm, "li.na", scopes=["*"])
    boss_token, _ = identity.create_token(crm, "boss", scopes=["*"])
    for text in (revoked, staff_token, boss_token):
        cached.actor(text)
    identity.revoke_token(crm, info.id)
    with pytest.raises(Unauthenticated):
        cached.actor(revoked)
    assert cached.actor(staff_token).roles == ("sales_rep",)
    crm.staff.update("li.na", roles=["manager"])
    assert cached.actor(staff_token).roles == ("manager",)
    crm.staff.deactivate("boss")
    with pytest.raises(Unauthenticated):
        cached.actor(boss_token)


def test_changes_by_another_process_apply_within_the_lifetime(cached, make_crm):
    crm = cached.crm
    cached.seconds = 0.3
    text, info = identity.create_token(crm, "li.na", scopes=["*"])
    cached.actor(text)
    other = make_crm()  # another process's CRM: its writes do not reach this cache
    identity.revoke_token(other, info.id)
    cached.actor(text)  # still within the cache's lifetime
    time.sleep(0.35)
    with pytest.raises(Unauthenticated):
        cached.actor(text)


def test_expiry_is_checked_on_every_use(cached):
    crm = cached.crm
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
    text, _ = identity.create_token(crm, "li.na", scopes=["*"], expires_at=soon)
    cached.actor(text)
    time.sleep(0.6)
    with pytest.raises(Unauthenticated):
        cached.actor(text)
