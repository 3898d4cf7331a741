"""`crmkit plugin new` generates a plugin that installs, passes its own tests and works."""

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit.cli import CliState, cli

REPO = Path(__file__).parents[1]


def run(*args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


@pytest.mark.slow
def test_generated_plugin_installs_tests_and_runs(tmp_path):
    generated = CliRunner().invoke(
        cli, ["plugin", "new", "visits", "--dir", str(tmp_path / "crmkit-visits")], obj=CliState()
    )
    assert generated.exit_code == 0, generated.output
    plugin_dir = tmp_path / "crmkit-visits"
    assert (plugin_dir / "crmkit_visits" / "plugin.py").is_file()

    # a fresh virtual environment; no downloads: the test dependencies (pytest, SQLAlchemy...)
    # are made visible from this interpreter, and the core and the plugin are installed into it
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = run(
        str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ).stdout.strip()
    outer = [p for p in site.getsitepackages() if "site-packages" in p]
    (Path(purelib) / "outer_site.pth").write_text("\n".join(outer) + "\n")
    # this interpreter's pip installs into the new environment (--python), building with the
    # setuptools it sees there through outer_site.pth
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    pip += ["--no-deps", "--no-build-isolation", "--no-index"]
    run(*pip, "-e", str(REPO))
    run(*pip, "-e", str(plugin_dir))

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    if os.environ.get("CRMKIT_TEST_DATABASE_URL"):
        environment["CRMKIT_TEST_DATABASE_URL"] = os.environ["CRMKIT_TEST_DATABASE_URL"]
    tests = run(
        str(python),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(plugin_dir / "tests"),
        cwd=plugin_dir,
        env=environment,
    )
    assert " passed" in tests.stdout and "failed" not in tests.stdout

    crmkit_cmd = str(env_dir / "bin" / "crmkit")
    environment["CRMKIT_PLUGINS"] = "visits"
    database = f"sqlite:///{tmp_path / 'crm.db'}"
    listed = run(crmkit_cmd, "plugins", "list", "--format", "csv", env=environment, cwd=tmp_path)
    assert "visits,0.1.0,yes,ok," in listed.stdout
    run(crmkit_cmd, "--database", database, "db", "upgrade", env=environment, cwd=tmp_path)
    import crmkit

    crm = crmkit.open(database, plugins=[])
    customer = crm.customers.add(name="Ada", external_id="C-1")
    crm.close()
    run(
        crmkit_cmd,
        "--database",
        database,
        "visits",
        "add",
        "C-1",
        "Likes mornings",
        env=environment,
        cwd=tmp_path,
    )
    notes = run(
        crmkit_cmd,
        "--database",
        database,
        "visits",
        "list",
        "C-1",
        "--format",
        "csv",
        env=environment,
        cwd=tmp_path,
    )
    assert notes.stdout.strip().endswith(",Likes mornings")
    assert customer.id == 1
    bad = subprocess.run(
        [crmkit_cmd, "--database", database, "visits", "add", "C-404", "x"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: customer 'C-404' not found")
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("name", ["Visits", "1x", "core", "x", "class"])
def test_bad_plugin_names_are_refused(tmp_path, name):
    result = CliRunner().invoke(
        cli, ["plugin", "new", name, "--dir", str(tmp_path / "p")], obj=CliState()
    )
    assert result.exit_code == 1
    assert not (tmp_path / "p").exists()
