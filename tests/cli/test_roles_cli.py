"""``crmkit roles``: every role's grants, the core's, the plugins' and the config's."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def configured(tmp_path):
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path / "crm.db"}"\n'
        "plugins = []\n"
        "[roles.sales_rep]\n"
        'grants = ["customers.read:own", "orders.*:team"]\n'
        "[roles.auditor]\n"
        'grants = ["audit.read"]\n',
        encoding="utf-8",
    )
    return config


def test_roles_lists_configured_and_default_grants(cli_runner, configured):
    assert cli_runner(["--config", str(configured), "db", "upgrade"]).exit_code == 0
    result = cli_runner(["--config", str(configured), "roles", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    rep = {r["permission"]: r["scope"] for r in rows if r["role"] == "sales_rep"}
    # the file replaces the default role's grants; a pattern grants every match
    assert rep == {"customers.read": "own", "orders.read": "team", "orders.write": "team"}
    assert {r["permission"] for r in rows if r["role"] == "auditor"} == {"audit.read"}
    assert [r["scope"] for r in rows if r["role"] == "auditor"] == ["-"]  # not customer-scoped
    manager = {r["permission"] for r in rows if r["role"] == "manager"}
    assert "customers.erase" in manager and "staff.admin" not in manager
    admin = {r["permission"] for r in rows if r["role"] == "admin"}
    assert "staff.admin" in admin and admin >= manager


def test_an_unknown_role_is_one_line(cli_runner, configured):
    assert cli_runner(["--config", str(configured), "db", "upgrade"]).exit_code == 0
    result = cli_runner(["--config", str(configured), "roles", "--role", "nobody"])
    assert result.exit_code == 1
    assert (
        result.stderr.startswith("error: no role 'nobody'; roles: ")
        and "sales_rep" in result.stderr
    )


def test_an_unknown_permission_in_the_config_is_refused(cli_runner, tmp_path):
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path / "crm.db"}"\nplugins = []\n'
        '[roles.sales_rep]\ngrants = ["customers.reed:own"]\n',
        encoding="utf-8",
    )
    result = cli_runner(["--config", str(config), "roles"])
    assert result.exit_code == 1
    assert "grants unknown permission 'customers.reed'" in result.stderr
    assert "Traceback" not in result.output
