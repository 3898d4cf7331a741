"""`crmkit plugin new` generates a plugin that installs, passes its own tests and works."""

import ast
import os
import re
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from crmkit.hooks import API_VERSION
from crmkit.testing import CHROMIUM, run_cli

REPO = Path(__file__).parents[1]
#: what a generated plugin may import from crmkit (the public API)
PUBLIC = {"crmkit", "crmkit.plugin", "crmkit.testing"}


def run(*args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def generate(tmp_path, name="visits", *extra):
    target = tmp_path / f"crmkit-{name}"
    result = run_cli(["plugin", "new", name, "--dir", str(target), *extra])
    assert result.exit_code == 0, (result.output, result.stderr)
    return target, result.output


def test_generated_plugin_uses_only_the_public_api_and_is_publishable(tmp_path):
    plugin_dir, output = generate(tmp_path, "visits", "--description", "Record store visits")
    assert f'next: pip install -e "{plugin_dir}[test]" && cd {plugin_dir} && pytest' in output

    imported = set()
    for path in plugin_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
    crmkit_imports = {m for m in imported if m == "crmkit" or m.startswith("crmkit.")}
    assert crmkit_imports <= PUBLIC, crmkit_imports - PUBLIC
    assert {"crmkit.plugin", "crmkit.testing", "crmkit_visits.tables"} <= imported

    plugin = (plugin_dir / "crmkit_visits" / "plugin.py").read_text()
    assert f'CRMKIT_API = ">={API_VERSION},<2"' in plugin
    assert "def crmkit_after_orders_created(" in plugin

    project = tomllib.loads((plugin_dir / "pyproject.toml").read_text())["project"]
    assert project["name"] == "crmkit-visits"
    assert "Framework :: crmkit" in project["classifiers"]
    assert project["optional-dependencies"]["test"] == ["pytest>=8"]
    assert project["entry-points"]["crmkit"] == {"visits": "crmkit_visits.plugin"}

    readme = (plugin_dir / "README.md").read_text()
    assert readme.startswith("# crmkit-visits\n\nRecord store visits\n")
    for told in ("visits_notes", "visits_order_counts", "crmkit_after_orders_created",
                 'pip install -e ".[test]"', "crmkit db revision --autogenerate --plugin visits",
                 "CRMKIT_TEST_DATABASE_URL", "Framework :: crmkit"):  # fmt: skip
        assert told in readme, told

    # the generated code is lint-clean under its own ruff settings
    ruff = [sys.executable, "-m", "ruff"]
    run(*ruff, "check", "--no-cache", ".", cwd=plugin_dir)
    run(*ruff, "format", "--no-cache", "--check", ".", cwd=plugin_dir)


def fresh_venv(tmp_path):
    """A new virtual environment (python -m venv) whose packages come from this one.

    No downloads: this environment's site-packages (pytest, SQLAlchemy, psycopg ...)
    is made visible through a .pth file (``--system-site-packages`` would show the base
    interpreter's, not this venv's); crmkit and the plugin are installed into the new one.
    """
    env_dir = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(env_dir))
    python = env_dir / "bin" / "python"
    purelib = run(
        str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ).stdout.strip()
    outer = [p for p in site.getsitepackages() if "site-packages" in p]
    (Path(purelib) / "outer_site.pth").write_text("\n".join(outer) + "\n")
    return env_dir


def pip_install(env_dir, *targets):
    """This interpreter's pip installs into the new environment (--python), building with
    the setuptools it sees there; the dependencies are already visible, so --no-deps."""
    pip = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install"]
    run(*pip, "-q", "--no-deps", "--no-build-isolation", "--no-index", *targets)


def plugin_tests_env():
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    for passed in ("CRMKIT_TEST_DATABASE_URL", "CRMKIT_REQUIRE_POSTGRES", "CRMKIT_CHROMIUM"):
        if os.environ.get(passed):
            environment[passed] = os.environ[passed]
    if Path(CHROMIUM).exists() or os.environ.get("CRMKIT_REQUIRE_BROWSER") == "1":
        environment["CRMKIT_REQUIRE_BROWSER"] = "1"  # the browser test must run, not skip
    return environment


def outcomes(pytest_output):
    """{test id: PASSED/FAILED/SKIPPED/...} from ``pytest -v`` output."""
    found = re.findall(r"^tests/test_plugin\.py::(\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL)",
                       pytest_output, re.M)  # fmt: skip
    return dict(found)


@pytest.mark.slow
def test_generated_plugin_installs_in_a_fresh_venv_and_passes_its_tests(tmp_path):
    plugin_dir, output = generate(tmp_path)
    env_dir = fresh_venv(tmp_path)
    # the command `crmkit plugin new` prints, in the new environment
    install = re.search(r'pip install -e "(.+?)"', output).group(1)
    assert install == f"{plugin_dir}[test]"
    pip_install(env_dir, "-e", str(REPO), "-e", install)
    python = str(env_dir / "bin" / "python")
    requires = run(
        python, "-c", "import importlib.metadata as m; print(m.requires('crmkit-visits'))"
    )
    assert 'extra == "test"' in requires.stdout

    environment = plugin_tests_env()
    tests = run(python, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:randomly",
                cwd=plugin_dir, env=environment)  # fmt: skip
    found = outcomes(tests.stdout)
    postgres = "PASSED" if os.environ.get("CRMKIT_TEST_DATABASE_URL") else "SKIPPED"
    for test in ("test_migrations_match_tables", "test_orders_are_counted_per_customer",
                 "test_new_customers_get_the_welcome_note", "test_command_adds_and_lists_notes",
                 "test_empty_note_is_refused_and_nothing_changes", "test_export_and_erasure",
                 "test_customer_360_section_in_a_browser"):  # fmt: skip
        assert found.get(f"{test}[sqlite]") == "PASSED", (test, tests.stdout)
        assert found.get(f"{test}[postgresql]") == postgres, (test, tests.stdout)
    assert " failed" not in tests.stdout and " error" not in tests.stdout

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
    assert customer.id == 1
    add = [crmkit_cmd, "--database", database, "visits", "add"]
    run(*add, "C-1", "Likes mornings", env=environment, cwd=tmp_path)
    notes = run(crmkit_cmd, "--database", database, "visits", "list", "C-1", "--format", "csv",
                env=environment, cwd=tmp_path)  # fmt: skip
    assert notes.stdout.strip().endswith(",Likes mornings")
    bad = subprocess.run([*add, "C-404", "x"], capture_output=True, text=True, env=environment,
                         cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: customer 'C-404' not found")
    assert "Traceback" not in bad.stderr

    # a table changes: the drift test fails until `crmkit db revision --autogenerate` writes
    # the revision into the installed (editable) plugin's versions folder
    tables = plugin_dir / "crmkit_visits" / "tables.py"
    tables.write_text(tables.read_text().replace(
        '    Column("author", Text),\n', '    Column("author", Text),\n    Column("topic", Text),\n'
    ))  # fmt: skip
    drift = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "migrations_match"],
        capture_output=True, text=True, cwd=plugin_dir, env=environment,
    )  # fmt: skip
    assert drift.returncode == 1 and "add_column visits_notes.topic" in drift.stdout
    revision = [
        "db",
        "revision",
        "--autogenerate",
        "--plugin",
        "visits",
        "-m",
        "notes have a topic",
    ]
    wrote = run(crmkit_cmd, "--database", database, *revision, env=environment, cwd=tmp_path)
    versions = plugin_dir / "crmkit_visits" / "migrations" / "versions"
    assert f"wrote {versions / 'visits0002_notes_have_a_topic.py'}" in wrote.stdout
    run(crmkit_cmd, "--database", database, "db", "upgrade", env=environment, cwd=tmp_path)
    again = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "migrations_match",
                cwd=plugin_dir, env=environment)  # fmt: skip
    assert " passed" in again.stdout


@pytest.mark.parametrize("name", ["Visits", "1x", "core", "x", "class"])
def test_bad_plugin_names_are_refused(tmp_path, name):
    result = run_cli(["plugin", "new", name, "--dir", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert not (tmp_path / "p").exists()
