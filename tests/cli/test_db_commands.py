"""``crmkit db downgrade`` asks before dropping data and ends every bad target in one clear
message; ``crmkit db current | head -1`` ends quietly. Both backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect

import crmkit
from crmkit.core import migrate


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def revisions(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(migrate.current_revisions(engine))
    finally:
        engine.dispose()


def one_error(result: Any) -> str:
    """The single ``error:`` line of a failed run (no traceback, no 'unexpected')."""
    assert result.exit_code == 1, (result.output, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    return errors[0].removeprefix("error: ")


CORE_C0005_TABLES = {"audit_log", "sessions", "api_tokens", "login_failures", "idempotency_keys"}


def test_downgrade_asks_and_refuses_without_an_answer(make_crm, cli_runner, database_url):
    crm = make_crm(plugins=["loyalty"])
    crm.customers.add(name="Li Na")
    before_tables, before_revisions = tables(database_url), revisions(database_url)
    # no terminal and no --yes: nothing to answer on, so it refuses
    refused = cli_runner(["db", "downgrade", "crmkit@-1"], plugins=["loyalty"])
    assert one_error(refused) == (
        "downgrade not confirmed: no answer (no terminal to ask on?); nothing was changed; "
        "add --yes to downgrade without asking"
    )
    assert "core: c0005 -> c0004: drops tables " in refused.stderr
    for name in CORE_C0005_TABLES | {"customers.version", "staff.password_hash"}:
        assert name in refused.stderr
    assert "Downgrade and drop this data? [y/N]" in refused.stderr
    # answered no
    cancelled = cli_runner(["db", "downgrade", "crmkit@-1"], plugins=["loyalty"], input="n\n")
    assert one_error(cancelled) == "downgrade cancelled; nothing was changed"
    assert (tables(database_url), revisions(database_url)) == (before_tables, before_revisions)
    # answered yes
    done = cli_runner(["db", "downgrade", "crmkit@-1"], plugins=["loyalty"], input="y\n")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("downgraded to crmkit@-1; now at ")
    assert revisions(database_url) == {"c0004", "loyalty0006"}
    assert tables(database_url) == before_tables - CORE_C0005_TABLES


def test_downgrade_base_with_yes_removes_every_table_plugins_first(
    make_crm, cli_runner, database_url
):
    crm = make_crm(plugins=["loyalty", "complaints"])
    crm.customers.add(name="Li Na")
    crm.close()
    result = cli_runner(["db", "downgrade", "base", "--yes"], plugins=["loyalty", "complaints"])
    assert result.exit_code == 0, result.stderr
    listed = result.stderr.splitlines()
    branches = [line.split(":")[0].strip() for line in listed if " -> " in line]
    assert branches == ["plugin complaints", "plugin loyalty", "core"]  # the core goes last
    assert "customers (1 row)" in result.stderr
    assert result.stdout == "downgraded to base; now at base (no tables)\n"
    assert revisions(database_url) == set()
    assert tables(database_url) <= {"alembic_version"}
    # and back up again
    again = cli_runner(["db", "upgrade"], plugins=["loyalty", "complaints"])
    assert again.exit_code == 0, again.stderr


def test_downgrade_to_where_it_is_does_nothing(make_crm, cli_runner):
    make_crm()
    result = cli_runner(["db", "downgrade", "c0005"], plugins=[])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "nothing to downgrade: the database is already at c0005\n"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "core@base",
            "cannot downgrade to 'core@base': there is no branch 'core' (the core's branch is "
            "called crmkit); the branches are crmkit (the core), complaints, loyalty; "
            "e.g. 'crmkit@base' or 'crmkit@-1'",
        ),
        (
            "heads",
            "cannot downgrade to 'heads': that is the newest revision, not below where the "
            "database is; 'crmkit db upgrade' goes up",
        ),
        (
            "nosuch",
            "cannot downgrade to 'nosuch': that is no revision of the core nor of an enabled "
            "plugin's branch (crmkit (the core), complaints, loyalty); 'crmkit db current' "
            "lists the revisions",
        ),
        (
            "c0001",
            "cannot downgrade to 'c0001': it drops the core's table workflow_instances, which "
            "table complaints still refers to; remove the plugins' tables first ('crmkit db "
            "downgrade complaints@base'), or every table with 'base'; nothing was changed",
        ),
        (
            "crmkit@base",
            "cannot downgrade to 'crmkit@base': it drops the core's table customers, which "
            "table complaints still refers to",
        ),
        (
            "-1",
            "cannot downgrade to '-1': a relative step is ambiguous with 3 branches; name the "
            "branch, e.g. 'crmkit@-1'",
        ),
        ("loyalty@+1", "cannot downgrade to 'loyalty@+1': that is not below where the database"),
        ("", "cannot downgrade to '': that is no revision or branch; give a revision"),
    ],
)
def test_bad_targets_end_in_one_clear_message_and_change_nothing(
    make_crm, cli_runner, database_url, target, message
):
    make_crm(plugins=["loyalty", "complaints"])
    before = (tables(database_url), revisions(database_url))
    result = cli_runner(["db", "downgrade", target, "--yes"], plugins=["loyalty", "complaints"])
    assert one_error(result).startswith(message)
    assert (tables(database_url), revisions(database_url)) == before


def test_base_refused_while_a_disabled_plugins_tables_refer_to_the_core(
    make_crm, cli_runner, database_url
):
    make_crm(plugins=["loyalty"])
    before = tables(database_url)
    result = cli_runner(["db", "downgrade", "base", "--yes"], plugins=[])
    assert "it belongs to a plugin that is not enabled (its revisions loyalty0006 are set " in (
        one_error(result)
    )
    assert tables(database_url) == before
    # a disabled plugin's revision stays recorded through a downgrade of the core
    done = cli_runner(["db", "downgrade", "crmkit@-1", "--yes"], plugins=[])
    assert done.exit_code == 0, done.stderr
    assert revisions(database_url) == {"c0004", "loyalty0006"}


# -- a closed pipe ------------------------------------------------------------


def _console_script() -> str:
    script = Path(sys.executable).with_name("crmkit")
    found = str(script) if script.exists() else shutil.which("crmkit")
    assert found, "the crmkit console script is not installed"
    return found


@pytest.mark.parametrize("reader", [["head", "-1"], ["true"]])
def test_a_closed_pipe_ends_quietly(tmp_path, reader):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crmkit.open(url, plugins=[], upgrade=True).close()
    env = {**os.environ, "CRMKIT_PLUGINS": ""}
    writer = subprocess.Popen(
        [_console_script(), "--database", url, "db", "current"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    head = subprocess.run(reader, stdin=writer.stdout, capture_output=True, text=True, timeout=60)
    assert writer.stdout is not None and writer.stderr is not None
    writer.stdout.close()  # only head holds the pipe's reading end now
    stderr = writer.stderr.read().decode()
    writer.wait(timeout=60)
    if reader[0] == "head":
        assert head.stdout == "current: c0005\n"
    assert stderr == ""  # no "BrokenPipeError", no traceback, no "error: unexpected"
    assert writer.returncode in (0, 1)
