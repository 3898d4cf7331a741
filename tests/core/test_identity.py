"""Identity (crmkit.core.identity): passwords, sign-in with back-off, sessions, API tokens.
Both backends; times are driven through the functions' ``now`` argument."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

import crmkit
from crmkit.core import identity
from crmkit.core import tables as t
from crmkit.core.actors import Actor
from crmkit.errors import (
    Conflict,
    CrmError,
    Forbidden,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    ValidationError,
)

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"
ADMIN_PASSWORD = "admin staple 2026"


def at(seconds: float = 0, **delta: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds, **delta)


@pytest.fixture
def team(crm: crmkit.CRM) -> crmkit.CRM:
    crm.staff.add("boss", roles=["admin"])
    crm.staff.add("wang.lei", roles=["manager"])
    crm.staff.add("li.na", roles=["sales_rep"], manager="wang.lei")
    identity.set_password(crm, "li.na", PASSWORD, now=T0)
    identity.set_password(crm, "boss", ADMIN_PASSWORD, now=T0)
    return crm


def audit_rows(crm: crmkit.CRM) -> list[dict]:
    with crm.reading() as connection:
        return [dict(r._mapping) for r in connection.execute(select(t.audit_log))]


def failures(crm: crmkit.CRM) -> dict[str, int]:
    f = t.login_failures.c
    with crm.reading() as connection:
        rows = connection.execute(select(f.key, func.count()).group_by(f.key)).all()
    return dict(rows)


# -- passwords ------------------------------------------------------------------------


def test_hash_and_verify():
    first, second = identity.hash_password(PASSWORD), identity.hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and first != second  # salted
    assert identity.verify_password(first, PASSWORD)
    assert not identity.verify_password(first, PASSWORD + " ")
    assert not identity.verify_password("not a hash", PASSWORD)
    assert not identity.verify_password("", PASSWORD)
    assert not identity.needs_rehash(first)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert identity.verify_password(weak, PASSWORD)
    assert identity.needs_rehash(weak)


def test_set_password_rules_and_audit(team):
    crm = team
    for bad, why in [("short", "too short"), ("Li.Na", "too short"), ("li.na     ", "username")]:
        with pytest.raises(ValidationError, match=why) as caught:
            identity.set_password(crm, "li.na", bad)
        assert caught.value.field == "password"
    crm.staff.add("a.long.username", roles=[])
    with pytest.raises(ValidationError, match="must not be the username"):
        identity.set_password(crm, "a.long.username", "A.Long.Username")
    with pytest.raises(NotFound):
        identity.set_password(crm, "nobody", PASSWORD)

    with crm.reading() as connection:
        row = connection.execute(select(t.staff).where(t.staff.c.username == "li.na")).one()
    assert identity.verify_password(row.password_hash, PASSWORD)
    assert row.password_changed_at == T0
    entries = [e for e in audit_rows(crm) if e["action"] == "staff.password"]
    assert [(e["entity_id"], e["changes"]) for e in entries] == [
        (str(row.id), {"password": [None, "changed"]}),
        (str(crm.staff.get("boss").id), {"password": [None, "changed"]}),
    ]


def test_set_password_needs_staff_admin_unless_ones_own(team):
    crm = team
    rep = crm.staff.actor("li.na")
    with crm.acting_as(rep):
        with pytest.raises(Forbidden, match="staff.admin"):
            identity.set_password(crm, "boss", "li.na owns the boss now")
        # even for someone who does not exist: the refusal comes first
        with pytest.raises(Forbidden):
            identity.set_password(crm, "nobody", "whatever it is 1")
        identity.set_password(crm, "li.na", "a brand new password", now=at(60))
    # a token of li.na is not li.na signed in: changing a password needs staff.admin
    with crm.acting_as(rep.through_token(1, {"*"})), pytest.raises(Forbidden):
        identity.set_password(crm, "li.na", "another new password")
    with crm.acting_as(crm.staff.actor("boss")):
        identity.set_password(crm, "li.na", "set by the admin 1", now=at(120))
    entries = [e for e in audit_rows(crm) if e["action"] == "staff.password"]
    assert [e["actor"] for e in entries][-2:] == ["li.na", "boss"]
    identity.login(crm, "li.na", "set by the admin 1", now=at(180))


def test_password_change_ends_the_members_sessions(team):
    crm = team
    mine = identity.login(crm, "li.na", PASSWORD, now=at(1))
    other = identity.login(crm, "boss", ADMIN_PASSWORD, now=at(1))
    identity.set_password(crm, "li.na", "a completely new one", now=at(2))
    with pytest.raises(Unauthenticated):
        identity.session_actor(crm, mine.session_token, now=at(3))
    assert identity.session_actor(crm, other.session_token, now=at(3)).actor.username == "boss"


# -- sign-in -----------------------------------------------------------------------------


def test_login_success(team):
    crm = team
    result = identity.login(crm, "li.na", PASSWORD, address="10.0.0.7", now=at(5))
    assert result.actor == crm.staff.actor("li.na")
    assert result.expires_at == at(5, hours=12)
    assert len(result.session_token) >= 40 and len(result.csrf_token) >= 40
    info = identity.session_actor(crm, result.session_token, request_id="r-1", now=at(6))
    assert info.actor == crm.staff.actor("li.na", request_id="r-1")
    assert info.csrf_token == result.csrf_token
    with crm.reading() as connection:
        stored = connection.execute(select(t.sessions)).one()
    assert stored.id == info.session_id != result.session_token  # only the hash is stored
    assert (stored.address, stored.created_at, stored.expires_at) == (
        "10.0.0.7",
        at(5),
        at(5, hours=12),
    )
    login_entry = [e for e in audit_rows(crm) if e["action"] == "auth.login"]
    assert [(e["actor"], e["actor_kind"], e["entity_id"]) for e in login_entry] == [
        ("li.na", "staff", str(crm.staff.get("li.na").id))
    ]


def test_every_failure_says_the_same(team):
    crm = team
    crm.staff.add("no.password", roles=["manager"])
    crm.staff.add("gone", roles=["manager"])
    identity.set_password(crm, "gone", "gone but not forgotten")
    crm.staff.deactivate("gone")
    attempts = [
        ("li.na", "wrong password 1"),  # wrong password
        ("nobody", PASSWORD),  # no such account
        ("no.password", ""),  # no password set
        ("gone", "gone but not forgotten"),  # deactivated, right password
        ("", ""),
        ("x" * 5000, PASSWORD),
        ("nul\x00name", PASSWORD),
    ]
    for number, (username, password) in enumerate(attempts):
        with pytest.raises(Unauthenticated) as caught:
            identity.login(crm, username, password, address=f"10.0.0.{number}", now=at(number))
        assert type(caught.value) is Unauthenticated
        assert str(caught.value) == "wrong username or password"
    with crm.reading() as connection:
        assert connection.scalar(select(func.count()).select_from(t.sessions)) == 0


def test_login_refuses_to_run_inside_a_transaction(team):
    """Its failures must be recorded although it raises: never in a transaction that the
    failure rolls back."""
    crm = team
    with pytest.raises(CrmError, match="never inside a transaction"), crm.transaction():
        identity.login(crm, "li.na", "wrong password 1")
    assert failures(crm) == {}


def test_rehash_at_sign_in(team):
    crm = team
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with crm.transaction() as ctx:
        ctx.connection.execute(
            update(t.staff).where(t.staff.c.username == "li.na").values(password_hash=weak)
        )
    identity.login(crm, "li.na", PASSWORD, now=at(1))
    with crm.reading() as connection:
        stored = connection.scalar(
            select(t.staff.c.password_hash).where(t.staff.c.username == "li.na")
        )
    assert stored != weak and not identity.needs_rehash(stored)
    assert identity.verify_password(stored, PASSWORD)


# -- back-off -------------------------------------------------------------------------------


def fail(crm: crmkit.CRM, username: str, *, address: str | None, when: dt.datetime) -> None:
    with pytest.raises(Unauthenticated) as caught:
        identity.login(crm, username, "wrong guess!", address=address, now=when)
    assert type(caught.value) is Unauthenticated, caught.value


def refused(crm, username, password, *, address, when) -> int:
    with pytest.raises(TooManyAttempts) as caught:
        identity.login(crm, username, password, address=address, now=when)
    assert "too many failed sign-ins" in str(caught.value)
    return caught.value.retry_after


def test_back_off_per_account(team):
    crm = team
    for i in range(5):  # each from another address: only the account's count grows
        fail(crm, "li.na", address=f"10.1.0.{i}", when=at(0))
    assert failures(crm)["account:li.na"] == 5
    # the right password is refused without being checked, and the refusal is not counted
    assert refused(crm, "li.na", PASSWORD, address="10.9.9.9", when=at(0.5)) == 1
    assert failures(crm)["account:li.na"] == 5
    # 2^(n-5) seconds after the last failure: n=5 -> 1s, n=6 -> 2s, n=7 -> 4s ...
    fail(crm, "li.na", address="10.2.0.1", when=at(1))
    assert refused(crm, "li.na", PASSWORD, address="10.9.9.9", when=at(2)) == 1
    fail(crm, "li.na", address="10.2.0.2", when=at(3))
    assert refused(crm, "li.na", PASSWORD, address="10.9.9.9", when=at(3)) == 4
    assert refused(crm, "li.na", PASSWORD, address="10.9.9.9", when=at(6.5)) == 1
    # other accounts are not affected
    identity.login(crm, "boss", ADMIN_PASSWORD, address="10.9.9.9", now=at(4))
    # after the wait: a success clears the account's failures
    identity.login(crm, "li.na", PASSWORD, address="10.9.9.9", now=at(7))
    assert "account:li.na" not in failures(crm)
    fail(crm, "li.na", address="10.3.0.1", when=at(8))  # counting starts again


def test_parallel_guesses_are_counted_before_any_password_is_checked(team):
    """Twelve guesses at once: five are checked, the rest wait (none slips through while the
    first ones are still hashing)."""
    crm = team

    def guess(number: int) -> str:
        try:
            identity.login(crm, "li.na", f"guess {number}!", address=f"10.7.0.{number}", now=T0)
        except TooManyAttempts:
            return "wait"
        except Unauthenticated:
            return "wrong"
        return "in"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(guess, range(12)))
    assert sorted(outcomes) == ["wait"] * 7 + ["wrong"] * 5
    assert failures(crm)["account:li.na"] == 5


def test_back_off_caps_at_fifteen_minutes_and_forgets_old_failures(team):
    crm = team
    for i in range(20):
        with crm.transaction() as ctx:  # failures recorded straight in the table
            ctx.connection.execute(t.login_failures.insert(), {"key": "account:li.na", "at": at(i)})
    assert refused(crm, "li.na", PASSWORD, address=None, when=at(20)) == 15 * 60 - 1
    # 15 minutes after the first failure it no longer counts: 19 left, still backed off
    # until 15 minutes after the last one
    assert refused(crm, "li.na", PASSWORD, address=None, when=at(15 * 60)) == 19
    # once every failure is older than the window, sign-in works
    identity.login(crm, "li.na", PASSWORD, now=at(15 * 60 + 20))


def test_back_off_per_address(team):
    crm = team
    for i in range(5):  # five different accounts from one address
        fail(crm, f"guess{i}", address="203.0.113.9", when=at(0))
    assert failures(crm)["address:203.0.113.9"] == 5
    assert refused(crm, "li.na", PASSWORD, address="203.0.113.9", when=at(0.2)) == 1
    # the account itself is fine from elsewhere
    identity.login(crm, "li.na", PASSWORD, address="198.51.100.1", now=at(0.3))
    # a success does not clear the address's failures
    identity.login(crm, "li.na", PASSWORD, address="203.0.113.9", now=at(1.5))
    assert failures(crm)["address:203.0.113.9"] == 5


def test_unknown_accounts_back_off_like_known_ones(team):
    """The back-off must not tell which accounts exist."""
    crm = team
    for name in ("li.na", "ghost"):
        for i in range(5):
            fail(crm, name, address=f"10.4.{len(name)}.{i}", when=at(0))
        assert refused(crm, name, "anything at all", address="10.5.0.1", when=at(0.5)) == 1


# -- sessions --------------------------------------------------------------------------------


def last_seen(crm: crmkit.CRM) -> dt.datetime:
    with crm.reading() as connection:
        return connection.scalar(select(t.sessions.c.last_seen_at))


def test_session_idle_expiry_and_last_seen(team):
    crm = team
    token = identity.login(crm, "li.na", PASSWORD, now=T0).session_token
    identity.session_actor(crm, token, now=at(30))
    assert last_seen(crm) == T0  # touched at most once a minute
    identity.session_actor(crm, token, now=at(minutes=59))
    assert last_seen(crm) == at(minutes=59)
    # idle 60 minutes is still fine; a second more is not
    identity.session_actor(crm, token, now=at(minutes=119))
    with pytest.raises(Unauthenticated, match="sign in again"):
        identity.session_actor(crm, token, now=at(minutes=179, seconds=1))
    with pytest.raises(Unauthenticated):  # and the session is gone for good
        identity.session_actor(crm, token, now=at(minutes=120))


def test_session_absolute_expiry(team):
    crm = team
    crm.config.server.session_idle_minutes = 30
    token = identity.login(crm, "li.na", PASSWORD, now=T0).session_token
    for minute in range(20, 12 * 60, 20):  # in use all day, never idle
        identity.session_actor(crm, token, now=at(minutes=minute))
    with pytest.raises(Unauthenticated):
        identity.session_actor(crm, token, now=at(hours=12))


def test_session_of_deactivated_staff_and_bad_cookies(team):
    crm = team
    token = identity.login(crm, "li.na", PASSWORD, now=T0).session_token
    for bad in ("", None, "x" * 500, token[:-1], "crm_" + token):
        with pytest.raises(Unauthenticated):
            identity.session_actor(crm, bad, now=at(1))
    crm.staff.deactivate("li.na")
    with pytest.raises(Unauthenticated):
        identity.session_actor(crm, token, now=at(2))
    crm.staff.activate("li.na")
    with pytest.raises(Unauthenticated):  # deleted, not merely suspended
        identity.session_actor(crm, token, now=at(3))


def test_login_rotates_the_session(team):
    crm = team
    first = identity.login(crm, "li.na", PASSWORD, now=T0)
    second = identity.login(crm, "li.na", PASSWORD, previous_session=first.session_token, now=at(1))
    assert second.session_token != first.session_token
    assert second.csrf_token != first.csrf_token
    with pytest.raises(Unauthenticated):
        identity.session_actor(crm, first.session_token, now=at(2))
    assert identity.session_actor(crm, second.session_token, now=at(2)).actor.username == "li.na"
    # a second browser (no cookie presented) keeps its own session
    third = identity.login(crm, "li.na", PASSWORD, now=at(3))
    identity.session_actor(crm, second.session_token, now=at(4))
    identity.session_actor(crm, third.session_token, now=at(4))


def test_sign_in_prunes_ended_sessions_and_old_failures(team):
    crm = team
    old = identity.login(crm, "li.na", PASSWORD, now=T0).session_token
    other = identity.login(crm, "boss", ADMIN_PASSWORD, now=T0).session_token
    fail(crm, "ghost", address="10.6.0.1", when=at(1))
    fresh = identity.login(crm, "li.na", PASSWORD, now=at(minutes=30)).session_token
    fail(crm, "ghost", address="10.6.0.1", when=at(minutes=50))
    with crm.reading() as connection:
        assert len(connection.execute(select(t.sessions)).all()) == 3  # nothing ended yet
    identity.login(crm, "li.na", PASSWORD, now=at(minutes=61))  # the first one is idle
    with crm.reading() as connection:
        ids = set(connection.scalars(select(t.sessions.c.id)))
        left = list(connection.scalars(select(t.login_failures.c.at)))
    assert identity._sha256(old) not in ids  # ended: idle for over an hour
    assert identity._sha256(fresh) in ids
    assert identity._sha256(other) in ids  # another member's sessions are theirs to end
    assert left == [at(minutes=50)] * 2  # account and address; the older pair is gone


def test_logout(team):
    crm = team
    token = identity.login(crm, "li.na", PASSWORD, now=T0).session_token
    assert identity.logout(crm, token) is True
    with pytest.raises(Unauthenticated):
        identity.session_actor(crm, token, now=at(1))
    assert identity.logout(crm, token) is False
    assert identity.logout(crm, None) is False
    assert [e["actor"] for e in audit_rows(crm) if e["action"] == "auth.logout"] == ["li.na"]


# -- API tokens ---------------------------------------------------------------------------


def test_token_create_list_and_use(team):
    crm = team
    text, info = identity.create_token(
        crm,
        "li.na",
        scopes=["customers.read", "orders.*", "customers.read"],
        expires_at=at(days=30),
        name="web shop",
        now=T0,
    )
    assert text.startswith("crm_") and len(text) >= 40
    assert info.prefix == text[4:12] and info.scopes == ["customers.read", "orders.*"]
    assert (info.staff, info.name, info.active, info.created_by) == (
        "li.na",
        "web shop",
        True,
        crm.actor.name,
    )
    actor = identity.token_actor(crm, text, request_id="req-9", now=at(10))
    rep = crm.staff.actor("li.na")
    assert actor == rep.through_token(info.id, {"customers.read", "orders.*"}).with_request("req-9")
    assert (actor.kind, actor.name) == ("token", f"token:{info.id}:li.na")
    listed = identity.list_tokens(crm, now=at(11))
    assert listed == [attrs_evolve(info, last_used_at=at(10))]
    assert identity.list_tokens(crm, "boss") == []
    with crm.reading() as connection:
        row = connection.execute(select(t.api_tokens)).one()
    assert text not in json.dumps([str(v) for v in row])  # only the hash is stored
    assert row.token_hash == identity._sha256(text)


def attrs_evolve(info, **changes):
    import attrs

    return attrs.evolve(info, **changes)


def test_token_last_used_at_most_once_a_minute(team):
    crm = team
    text, info = identity.create_token(crm, "li.na", scopes=["*"], now=T0)
    for seconds in (5, 30, 64):
        identity.token_actor(crm, text, now=at(seconds))
    assert identity.list_tokens(crm)[0].last_used_at == at(5)
    for seconds in (65, 100, 125):
        identity.token_actor(crm, text, now=at(seconds))
    assert identity.list_tokens(crm)[0].last_used_at == at(125)


def test_tokens_stop_working(team):
    crm = team
    expiring, _ = identity.create_token(crm, "li.na", scopes=["*"], expires_at=at(60), now=T0)
    revoked, revoked_info = identity.create_token(crm, "li.na", scopes=["*"], now=T0)
    deactivated, _ = identity.create_token(crm, "wang.lei", scopes=["*"], now=T0)
    for text in (expiring, revoked, deactivated):
        identity.token_actor(crm, text, now=at(30))
    assert identity.revoke_token(crm, revoked_info.id, now=at(40)).revoked_at == at(40)
    crm.staff.deactivate("wang.lei")
    for text in (expiring, revoked, deactivated, "crm_unknown", "not a token", "", None):
        with pytest.raises(Unauthenticated, match="unknown, expired or revoked API token"):
            identity.token_actor(crm, text, now=at(61))
    by_id = {info.id: info for info in identity.list_tokens(crm, now=at(61))}
    assert [info.active for info in by_id.values()] == [False, False, False]
    assert by_id[revoked_info.id].revoked_at == at(40)
    # revoking again changes nothing and records nothing more
    identity.revoke_token(crm, revoked_info.id, now=at(70))
    assert identity.list_tokens(crm, "li.na")[0].revoked_at == at(40)
    assert [e["action"] for e in audit_rows(crm)].count("token.revoke") == 1
    with pytest.raises(NotFound):
        identity.revoke_token(crm, 999)
    with pytest.raises(Conflict, match="deactivated"):
        identity.create_token(crm, "wang.lei", scopes=["*"])


def test_token_scopes_narrow_the_staff_member(team):
    crm = team
    crm.staff.update("wang.lei", roles=["manager"])
    text, _ = identity.create_token(crm, "wang.lei", scopes=["customers.read"], now=T0)
    actor = identity.token_actor(crm, text, now=at(1))
    with crm.acting_as(actor):
        crm.authorise("customers.read")
        with pytest.raises(Forbidden, match="token's scopes"):
            crm.authorise("customers.erase")  # the manager could; the token cannot
    with crm.acting_as(crm.staff.actor("wang.lei")):
        crm.authorise("customers.erase")
    # a scope never widens the roles: li.na's "*" token is still a sales rep
    rep_text, _ = identity.create_token(crm, "li.na", scopes=["*"], now=T0)
    with crm.acting_as(identity.token_actor(crm, rep_text, now=at(1))):
        with pytest.raises(Forbidden, match="roles: sales_rep"):
            crm.authorise("customers.erase")
        with pytest.raises(Forbidden):
            identity.create_token(crm, "li.na", scopes=["*"])


def test_token_validation_and_permissions(team):
    crm = team
    for scopes in ([], "customers.read", ["customers.reed"], ["nothing.*"], [""], [7]):
        with pytest.raises(ValidationError) as caught:
            identity.create_token(crm, "li.na", scopes=scopes)
        assert caught.value.field == "scopes"
    with pytest.raises(ValidationError, match="already have expired"):
        identity.create_token(crm, "li.na", scopes=["*"], expires_at=at(-1), now=T0)
    with pytest.raises(ValidationError, match="at most 100"):
        identity.create_token(crm, "li.na", scopes=["*"], name="n" * 101)
    with pytest.raises(NotFound):
        identity.create_token(crm, "nobody", scopes=["*"])
    _, mine = identity.create_token(crm, "li.na", scopes=["customers.*"])
    _, theirs = identity.create_token(crm, "boss", scopes=["*"])
    rep = crm.staff.actor("li.na")
    with crm.acting_as(rep):
        with pytest.raises(Forbidden):
            identity.create_token(crm, "li.na", scopes=["*"])
        assert [i.id for i in identity.list_tokens(crm)] == [mine.id]  # their own only
        assert [i.id for i in identity.list_tokens(crm, "li.na")] == [mine.id]
        with pytest.raises(Forbidden):
            identity.list_tokens(crm, "boss")
        with pytest.raises(Forbidden):
            identity.revoke_token(crm, theirs.id)
    with crm.acting_as(crm.staff.actor("boss")):
        assert [i.id for i in identity.list_tokens(crm)] == [theirs.id, mine.id]


def test_no_secret_in_the_audit_log_or_tables(team):
    crm = team
    session = identity.login(crm, "li.na", PASSWORD, address="10.0.0.1", now=at(1))
    token, info = identity.create_token(crm, "li.na", scopes=["*"], now=at(2))
    identity.revoke_token(crm, info.id, now=at(3))
    identity.set_password(crm, "li.na", "the second password", now=at(4))
    with pytest.raises(Unauthenticated):
        identity.login(crm, "li.na", "a wrong password", now=at(5))
    with crm.reading() as connection:
        hashes = list(connection.scalars(select(t.staff.c.password_hash)))
    entries = audit_rows(crm)
    assert {"staff.password", "auth.login", "token.create", "token.revoke"} <= {
        e["action"] for e in entries
    }
    text = json.dumps(entries, default=str)
    secrets = [PASSWORD, ADMIN_PASSWORD, "the second password", "a wrong password", token,
               token[4:], session.session_token, session.csrf_token, *filter(None, hashes)]  # fmt: skip
    for secret in secrets:
        assert secret not in text
    assert Actor.operator("python").name in {e["actor"] for e in entries}
