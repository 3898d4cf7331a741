"""Plugin commands on the shared click group: per run, per enabled plugin."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli


class Greeter:
    """A test plugin adding one top-level command."""

    @staticmethod
    @crmkit.hookimpl
    def crmkit_register_commands(cli):
        @cli.command("greet-test")
        def greet():
            "Say hello."
            print("hello")


def run(args, plugins=None, **kwargs):
    return CliRunner().invoke(cli, args, obj=CliState(plugins=plugins), **kwargs)


def test_a_plugins_command_exists_only_in_runs_that_enable_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    greeter = Greeter()
    try:
        enabled = run(["--database", url, "greet-test"], plugins=[greeter])
        assert enabled.exit_code == 0, enabled.output
        assert "hello" in enabled.output
        # the same process, a later run without the plugin: the command is unknown
        disabled = run(["--database", url, "greet-test"], plugins=[])
        assert disabled.exit_code != 0
        assert "No such command 'greet-test'" in disabled.output
        listing = run(["--database", url, "--help"], plugins=[])
        assert "greet-test" not in listing.output
        assert "greet-test" in run(["--database", url, "--help"], plugins=[greeter]).output
    finally:
        cli.commands.pop("greet-test", None)


def test_plugins_list_and_db_upgrade_follow_the_runs_plugins(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgraded = run(["--database", url, "db", "upgrade"], plugins=[])
    assert upgraded.exit_code == 0, upgraded.output
    assert "loyalty" not in upgraded.output  # only the core's branch when no plugin is enabled
    listed = run(["--database", url, "plugins", "list", "--format", "json"], plugins=[])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert rows and all(row["enabled"] == "no" for row in rows)


def test_config_given_before_help_decides_which_plugin_commands_are_listed(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    installed = crmkit.plugins.installed()
    if "loyalty" not in installed:
        pytest.skip("needs the loyalty plugin installed")
    config = tmp_path / "crmkit.toml"
    config.write_text('database = "sqlite:///x.db"\nplugins = []\n', encoding="utf-8")
    without = CliRunner().invoke(cli, ["--config", str(config), "--help"], obj=CliState())
    assert without.exit_code == 0
    assert "loyalty" not in without.output
    config.write_text('database = "sqlite:///x.db"\nplugins = ["loyalty"]\n', encoding="utf-8")
    with_loyalty = CliRunner().invoke(cli, ["--config", str(config), "--help"], obj=CliState())
    assert "loyalty" in with_loyalty.output
