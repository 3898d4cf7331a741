"""``crmkit staff password``, ``crmkit token ...`` and ``crmkit --as STAFF``, both backends.

The password prompt is checked in a real process on a pseudo-terminal: what the terminal
shows must never contain the password."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import select as sql_select

import crmkit
from crmkit.core import identity
from crmkit.core import tables as t
from crmkit.core.actors import os_user

PASSWORD = "correct horse battery"


def one_error(result: Any) -> str:
    assert result.exit_code == 1, (result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "unexpected" not in result.stderr
    return lines[0].removeprefix("error: ")


def ok(result: Any) -> str:
    assert result.exit_code == 0, (result.output, result.stderr)
    return result.stdout


@pytest.fixture
def cli(cli_runner):
    return lambda args, **kw: cli_runner(args, plugins=[], **kw)


@pytest.fixture
def team(crm: crmkit.CRM) -> crmkit.CRM:
    crm.staff.add("boss", roles=["admin"])
    crm.staff.add("li.na", roles=["sales_rep"])
    return crm


def audit(crm: crmkit.CRM, action: str) -> list[tuple[str, str]]:
    a = t.audit_log.c
    with crm.reading() as connection:
        rows = connection.execute(
            sql_select(a.actor, a.actor_kind).where(a.action == action).order_by(a.id)
        ).all()
    return [tuple(row) for row in rows]


# -- staff password -------------------------------------------------------------------


def test_password_from_standard_input(team, cli):
    out = ok(cli(["staff", "password", "li.na"], input=PASSWORD + "\n"))
    assert out == "password of li.na set; their sessions have ended\n"
    identity.login(team, "li.na", PASSWORD)
    assert audit(team, "staff.password") == [(f"cli:{os_user()}", "cli")]

    short = cli(["staff", "password", "li.na"], input="short\n")
    assert "too short" in one_error(short) and "short\n" not in short.output
    assert "must not be the username" in one_error(
        cli(["staff", "password", "li.na"], input="LI.NA     \n")
    )
    assert "no password on standard input" in one_error(cli(["staff", "password", "li.na"]))
    assert "not found" in one_error(cli(["staff", "password", "nobody"], input=PASSWORD + "\n"))
    # the password is never an argument or option
    assert cli(["staff", "password", "li.na", PASSWORD]).exit_code != 0
    assert cli(["staff", "password", "li.na", "--password", PASSWORD]).exit_code != 0
    identity.login(team, "li.na", PASSWORD)  # unchanged by the refused attempts


def test_password_as_staff(team, cli):
    refused = cli(["--as", "li.na", "staff", "password", "boss"], input=PASSWORD + "\n")
    assert "staff.admin" in one_error(refused)
    ok(cli(["staff", "password", "li.na", "--as", "li.na"], input="my own password\n"))
    ok(cli(["staff", "password", "li.na", "--as", "boss"], input="the admin's choice\n"))
    assert audit(team, "staff.password") == [("li.na", "staff"), ("boss", "staff")]
    identity.login(team, "li.na", "the admin's choice")


def read_until(fd: int, text: str, seen: bytearray, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} on the terminal; it showed {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {text!r}; it showed {bytes(seen)!r}"
            seen.extend(chunk)


def test_password_prompt_on_a_terminal_never_echoes(team, database_url):
    master, slave = pty.openpty()
    env = {**os.environ, "CRMKIT_PLUGINS": ""}
    env.pop("CRMKIT_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from crmkit.cli import main; main()",
         "--database", database_url, "staff", "password", "li.na"],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    try:
        read_until(master, "New password for li.na", seen)
        os.write(master, PASSWORD.encode() + b"\n")
        read_until(master, "Repeat it", seen)
        os.write(master, PASSWORD.encode() + b"\n")
        read_until(master, "their sessions have ended", seen)
        assert process.wait(60) == 0, bytes(seen)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    shown = bytes(seen).decode()
    assert PASSWORD not in shown and "correct" not in shown, shown
    identity.login(team, "li.na", PASSWORD)


# -- tokens -----------------------------------------------------------------------------


def test_token_create_shows_it_once(team, cli):
    args = ["token", "create", "--staff", "li.na", "--scopes", "customers.read,orders.write"]
    out = ok(cli([*args, "--expires", "2027-01-31", "--name", "web shop"]))
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("created API token 1 for li.na (scopes: customers.read, ")
    assert "expires: 2027-01-31 23:59" in lines[0]
    text = lines[1]
    assert text.startswith("crm_") and len(text) >= 40
    assert lines[2] == "This token is shown only once: store it now (crmkit keeps only its hash)."
    actor = identity.token_actor(team, text)
    assert actor.scopes == {"customers.read", "orders.write"}
    assert actor.username == "li.na"

    for fmt in ("table", "json", "csv"):
        listed = ok(cli(["token", "list", "--format", fmt]))
        assert text not in listed and text[12:20] not in listed
        assert f"crm_{text[4:12]}" in listed
    rows = json.loads(ok(cli(["token", "list", "--staff", "li.na", "--format", "json"])))
    assert [(r["id"], r["name"], r["scopes"], r["active"]) for r in rows] == [
        (1, "web shop", "customers.read,orders.write", True)
    ]
    assert rows[0]["last_used_at"] != ""  # token_actor above used it
    assert ok(cli(["token", "revoke", "1"])) == "revoked API token 1 of li.na\n"
    rows = json.loads(ok(cli(["token", "list", "--format", "json"])))
    assert rows[0]["active"] is False and rows[0]["revoked_at"]
    assert audit(team, "token.create") == [(f"cli:{os_user()}", "cli")]
    assert audit(team, "token.revoke") == [(f"cli:{os_user()}", "cli")]
    with team.reading() as connection:
        entries = json.dumps([list(r) for r in connection.execute(sql_select(t.audit_log))],
                             default=str)  # fmt: skip
    assert text not in entries and text[4:] not in entries


def test_token_create_json_and_mistakes(team, cli):
    base = ["token", "create", "--staff", "boss", "--scopes", "*"]
    created = json.loads(ok(cli([*base, "--expires", "never", "--format", "json"])))
    assert created["token"].startswith("crm_") and created["expires_at"] == "never"
    assert identity.token_actor(team, created["token"]).username == "boss"
    assert "unknown scope 'customers.reed'" in one_error(
        cli(["token", "create", "--staff", "li.na", "--scopes", "customers.reed",
             "--expires", "never"])
    )  # fmt: skip
    assert "already have expired" in one_error(cli([*base, "--expires", "2020-01-01"]))
    assert "not an ISO date" in one_error(cli([*base, "--expires", "soon"]))
    assert "--expires" in one_error(cli(base))  # an expiry must be chosen
    assert "not found" in one_error(
        cli(["token", "create", "--staff", "nobody", "--scopes", "*", "--expires", "never"])
    )
    assert "no API token 99" in one_error(cli(["token", "revoke", "99"]))


# -- --as and the default actor -----------------------------------------------------------


def test_as_staff_is_refused_what_they_may_not_do(team, cli):
    args = ["token", "create", "--staff", "li.na", "--scopes", "*", "--expires", "never"]
    message = one_error(cli(["--as", "li.na", *args]))
    assert message.startswith("li.na may not add and change staff, passwords and API tokens")
    assert "staff.admin" in message
    assert "may not" in one_error(cli([*args, "--as", "li.na"]))  # after the command too
    assert "may not" in one_error(cli(args, env={"CRMKIT_AS": "li.na"}))
    assert audit(team, "token.create") == []
    ok(cli(["--as", "boss", *args]))
    assert audit(team, "token.create") == [("boss", "staff")]
    # li.na may list her own tokens, not the others'
    assert "li.na" in ok(cli(["token", "list", "--as", "li.na"]))
    assert "staff.admin" in one_error(cli(["token", "list", "--staff", "boss", "--as", "li.na"]))
    assert "not found" in one_error(cli(["--as", "nobody", "token", "list"]))
    team.staff.deactivate("boss")
    assert "deactivated" in one_error(cli(["--as", "boss", "token", "list"]))


def test_as_a_sales_rep_cannot_erase_a_customer(team, cli):
    customer = team.customers.add(name="Zhang Wei", type="person", owner="li.na")
    message = one_error(cli(["--as", "li.na", "customer", "erase", str(customer.id), "--yes"]))
    assert "customers.erase" in message and "may not" in message
    assert team.customers.get(customer.id).name == "Zhang Wei"


def test_default_actor_is_the_cli_operator(team, cli):
    ok(cli(["token", "create", "--staff", "li.na", "--scopes", "*", "--expires", "never"]))
    ok(cli(["staff", "add", "wang.wu", "--role", "sales_rep"]))
    a = t.audit_log.c
    with team.reading() as connection:
        actors = set(connection.execute(sql_select(a.actor, a.actor_kind)).all())
    assert actors == {(f"cli:{os_user()}", "cli"), (f"python:{os_user()}", "python")}
