"""Start-up: what a command imports, so ``crmkit --help`` and a small command stay quick.

Each run is a fresh process (imports are per process) with every installed plugin
enabled; the modules it loaded are read from ``sys.modules`` after the command. The
timings themselves are measured by ``bench/startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import crmkit
from crmkit.cli import LazyCommand
from crmkit.plugins import installed

#: runs the command line, then prints the top-level packages of the loaded modules
RUN = """
import json, sys
from crmkit.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
loaded = sorted({name.split(".")[0] for name in sys.modules} | set(sys.modules))
print("\\n" + json.dumps(loaded))
"""

#: the console script
MAIN = "from crmkit.cli import main; main()"

#: what a help screen must not load: database, migrations, templates, analysis
HEAVY = ("sqlalchemy", "alembic", "mako", "jinja2", "numpy", "scipy", "starlette", "uvicorn")


def loaded_by(args: list[str], folder: Path, database: str | None = None) -> set[str]:
    """The modules a ``crmkit`` run with ``args`` has loaded, every installed plugin enabled."""
    config = folder / "crmkit.toml"
    config.write_text(f'database = "{database or "sqlite:///" + str(folder / "none.db")}"\n')
    env = {**os.environ, "CRMKIT_CONFIG": str(config)}
    env.pop("CRMKIT_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", RUN, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_bundled_plugins_are_installed():
    # the checks below are only worth something with every bundled plugin enabled
    assert {"complaints", "knowledgebase", "loyalty", "segmentation"} <= set(installed())


def test_help_loads_no_database_migration_template_or_analysis_code(tmp_path):
    modules = loaded_by(["--help"], tmp_path)
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))
    # the plugins are loaded (their commands are listed) but none of their command modules
    assert {"crmkit_loyalty.plugin", "crmkit_segmentation.plugin"} <= modules
    commands = {m for m in modules if m.startswith("crmkit_") and m.endswith(("cli", "commands"))}
    assert not commands, commands


def test_help_lists_every_plugins_command_group(tmp_path):
    config = tmp_path / "crmkit.toml"
    config.write_text(f'database = "sqlite:///{tmp_path / "x.db"}"\n')
    env = {**os.environ, "CRMKIT_CONFIG": str(config)}
    env.pop("CRMKIT_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", MAIN, "--help"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {"complaints", "kb", "loyalty", "segment", "customer"} <= listed


def test_customer_list_loads_no_alembic_templates_or_analysis_code(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crmkit.open(url, plugins=None, upgrade=True).close()  # every installed plugin
    modules = loaded_by(["customer", "list", "--limit", "5"], tmp_path, url)
    assert "sqlalchemy" in modules  # it did open the database
    unwanted = {"alembic", "mako", "jinja2", "numpy", "scipy", "starlette", "uvicorn"}
    assert not modules & unwanted, sorted(modules & unwanted)


def test_schema_out_of_date_is_still_refused_from_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    crm = crmkit.open(url, plugins=None, upgrade=True)
    crm.downgrade("loyalty0001")  # behind the loyalty branch's head
    crm.close()
    config = tmp_path / "crmkit.toml"
    config.write_text(f'database = "{url}"\n')
    env = {**os.environ, "CRMKIT_CONFIG": str(config)}
    env.pop("CRMKIT_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", MAIN, "customer", "list"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "run 'crmkit db upgrade'" in done.stderr


@pytest.mark.parametrize("plugin", sorted(installed()))
def test_a_plugins_lazy_command_says_what_its_command_says(plugin):
    """The help ``crmkit --help`` lists (the placeholder's) is the real command's help."""
    module = installed()[plugin].load()
    group = click.Group("crmkit")
    module.crmkit_register_commands(cli=group)
    assert group.commands, f"{plugin} adds no command"
    for name, command in group.commands.items():
        assert isinstance(command, LazyCommand), f"{plugin}: {name} is not a lazy_command"
        real = command.load()
        assert real.name == name
        assert command.help == real.help
        assert command.get_short_help_str() == real.get_short_help_str()


def test_the_audit_commands_limit_is_the_audit_logs():
    from crmkit.cli.audit import MAX_LIMIT
    from crmkit.core import auditlog

    assert MAX_LIMIT == auditlog.MAX_LIMIT


def test_lazy_names_of_the_packages_resolve():
    import crmkit.plugin as ck
    import crmkit.transfer

    for package in (crmkit, ck, crmkit.transfer):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    with pytest.raises(AttributeError):
        crmkit.no_such_name  # noqa: B018


def test_import_crmkit_is_light_and_its_submodules_stay_attributes():
    code = (
        "import sys, crmkit, crmkit.plugin, crmkit_loyalty, crmkit_knowledgebase\n"
        "light = not {'sqlalchemy', 'jinja2'} & set(sys.modules)\n"
        "print(light, crmkit.config.Config.__name__, crmkit_loyalty.tiers.__name__,\n"
        "      crmkit_knowledgebase.service.__name__, crmkit.open.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "Config", "crmkit_loyalty.tiers", "service", "open"]
