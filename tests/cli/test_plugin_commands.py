"""Plugin commands on the shared click group: per run, per enabled plugin."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import crmkit
from crmkit.cli import CliState, cli, hoist_global_options

REPO = Path(__file__).parents[2]


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


# -- a disabled plugin's command says how to enable the plugin ---------------------------------


def needs_installed(*names):
    missing = [n for n in names if n not in crmkit.plugins.installed()]
    if missing:
        pytest.skip(f"needs the plugins {missing} installed")


def test_a_disabled_plugins_command_says_how_to_enable_it(tmp_path, monkeypatch):
    needs_installed("loyalty")
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    config = tmp_path / "crmkit.toml"
    config.write_text(f'database = "sqlite:///{tmp_path / "x.db"}"\nplugins = []\n')
    result = run(["--config", str(config), "loyalty", "status"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: plugin 'loyalty' is installed but not enabled; to enable it, add 'loyalty' to "
        f"plugins in {config} (or set CRMKIT_PLUGINS=loyalty for one run), then run "
        "'crmkit db upgrade' for its tables\n"
    )
    assert "No such command" not in result.output
    # an unknown command that is no plugin's is still click's usage error
    unknown = run(["--config", str(config), "warranty", "list"])
    assert unknown.exit_code == 2 and "No such command 'warranty'" in unknown.output


def test_a_plugin_disabled_by_the_environment_variable_says_so(tmp_path):
    needs_installed("complaints", "segmentation")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = run(["--database", url, "segment", "list"], env={"CRMKIT_PLUGINS": "complaints"})
    assert result.exit_code == 1
    assert result.stderr == (
        "error: plugin 'segmentation' is installed but not enabled; to enable it, add it to "
        "CRMKIT_PLUGINS (now 'complaints'): CRMKIT_PLUGINS=complaints,segmentation, then run "
        "'crmkit db upgrade' for its tables\n"
    )


def test_a_plugin_enabled_by_the_environment_but_not_installed_names_the_variable(tmp_path):
    config = tmp_path / "crmkit.toml"
    config.write_text(f'database = "sqlite:///{tmp_path / "x.db"}"\nplugins = []\n')
    result = run(["--config", str(config), "warranty", "list"], env={"CRMKIT_PLUGINS": "warranty"})
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: plugin 'warranty' is enabled in the environment variable CRMKIT_PLUGINS but not "
        "installed"
    )
    assert str(config) not in result.stderr


# -- --config and --database after the command ---------------------------------------------------


def test_global_options_work_after_any_command(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./crmkit.toml: only the options say where things are
    config = tmp_path / "shop.toml"
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    init = run(["init", "--config", str(config), "--database", url, "--plugins", ""])
    assert init.exit_code == 0, init.output
    assert f"wrote {config}" in init.output and config.is_file()
    upgraded = run(["db", "upgrade", "--config", str(config)])
    assert upgraded.exit_code == 0, upgraded.output
    assert run(["customer", "add", "--name", "Li Na", f"--config={config}"]).exit_code == 0
    listed = run(
        ["customer", "list", "--format", "csv", "--database", url], env={"CRMKIT_PLUGINS": ""}
    )
    assert listed.exit_code == 0, listed.output
    assert "Li Na" in listed.output.splitlines()[1].split(",")
    # the last one given wins
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run(["--database", other, "db", "upgrade", "--database", url]).exit_code == 0
    assert not (tmp_path / "other.db").exists()


def test_global_options_after_a_plugin_command_choose_its_plugins(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)

    class Waver:  # commands are added once per plugin and process: a plugin of its own
        @staticmethod
        @crmkit.hookimpl
        def crmkit_register_commands(cli):
            @cli.command("wave-test")
            @click.option("--times", type=int, default=1)
            @click.pass_context
            def wave(ctx, times):
                "Wave, and say which config file this run reads."
                click.echo(f"{'wave ' * times}{ctx.find_object(CliState).config}")

    try:
        config = tmp_path / "crmkit.toml"
        config.write_text(f'database = "sqlite:///{tmp_path / "x.db"}"\nplugins = []\n')
        waved = run(["wave-test", "--config", str(config), "--times", "2"], plugins=[Waver])
        assert waved.exit_code == 0, waved.output
        assert waved.output == f"wave wave {config}\n"
        # the config given after the command decides which plugins' commands exist
        needs_installed("loyalty")
        config.write_text(f'database = "sqlite:///{tmp_path / "x.db"}"\nplugins = ["loyalty"]\n')
        helped = run(["loyalty", "--help", "--config", str(config)])
        assert helped.exit_code == 0, helped.output
        assert "Loyalty programs" in helped.output
    finally:
        cli.commands.pop("wave-test", None)


@pytest.mark.parametrize(
    ("args", "hoisted"),
    [
        (["customer", "list", "--config", "a.toml"], ["--config", "a.toml", "customer", "list"]),
        (["db", "upgrade", "--database=sqlite://"], ["--database=sqlite://", "db", "upgrade"]),
        (
            ["--config", "a", "x", "--config", "b", "--", "--database", "d"],
            ["--config", "a", "--config", "b", "x", "--", "--database", "d"],
        ),
        (["x", "--config"], ["x", "--config"]),  # no value: click says so
    ],
)
def test_hoist_global_options(args, hoisted):
    assert hoist_global_options(args) == hoisted


# -- make install -----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_makefiles_editable_install_of_a_plugin_is_quiet(tmp_path):
    """The pip command `make install` runs prints no setuptools "be careful with folders"."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("needs make")
    env_dir = tmp_path / "venv"
    recipe = subprocess.run(
        [make, "--no-print-directory", "-n", "-B", f"VENV={env_dir}", "install"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    words = shlex.split(next(line for line in recipe.splitlines() if " -e " in line))
    environment = dict(os.environ)
    while "=" in words[0] and not words[0].startswith("-"):  # VAR=value before the command
        key, _, value = words.pop(0).partition("=")
        environment[key] = value
    assert words[:4] == [str(env_dir / "bin" / "python"), "-m", "pip", "install"], words
    flags = [w for w in words[4:] if w.startswith("-") and w != "-e"]
    # one plugin, copied so the build leaves nothing in the repository, into an empty
    # environment through this pip (a recent one: it shows build-backend warnings)
    plugin = tmp_path / "loyalty"
    skip = shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "tests")
    shutil.copytree(REPO / "plugins" / "loyalty", plugin, ignore=skip)
    venv.EnvBuilder(with_pip=False).create(env_dir)
    pip = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install"]
    done = subprocess.run(
        [*pip, *flags, "--no-deps", "-e", str(plugin)],
        env=environment, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "careful with folders" not in done.stdout + done.stderr, done.stderr
