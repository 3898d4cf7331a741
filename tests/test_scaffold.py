"""`crmkit plugin new` generates a plugin that installs, passes its own tests and works."""

import ast
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from crmkit.hooks import API_VERSION
from crmkit.testing import BACKENDS, CHROMIUM, run_cli

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

    # plugin.py is imported whenever the plugin is enabled, even for `crmkit --help`: it
    # loads no database, template or web code, nor its own SQL and commands, until used
    probe = """
import json, sys
import click
import crmkit_visits.plugin as plugin
cli = click.Group("crmkit")
plugin.crmkit_register_commands(cli)
listed = cli.commands["visits"]
print(json.dumps([sorted(sys.modules), type(listed).__name__, listed.get_short_help_str(200)]))
import crmkit_visits.cli
print(json.dumps(crmkit_visits.cli.group.help))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), *sys.path])}
    lines = run(sys.executable, "-c", probe, env=env).stdout.splitlines()
    modules, kind, short_help = json.loads(lines[0])
    heavy = {"sqlalchemy", "alembic", "jinja2", "starlette", "crmkit_visits.notes",
             "crmkit_visits.cli", "crmkit_visits.tables"} & set(modules)  # fmt: skip
    assert not heavy, heavy
    assert kind == "LazyCommand"
    assert short_help == json.loads(lines[1]) == "Record store visits"

    # the generated code is lint-clean under its own ruff settings
    ruff = [sys.executable, "-m", "ruff"]
    run(*ruff, "check", "--no-cache", ".", cwd=plugin_dir)
    run(*ruff, "format", "--no-cache", "--check", ".", cwd=plugin_dir)


def authoring_steps():
    """The shell blocks of "Installing crmkit to write a plugin" in docs/plugin-authoring.md."""
    text = (REPO / "docs" / "plugin-authoring.md").read_text()
    section = text.split("\n## Installing crmkit to write a plugin\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, re.M | re.S)


#: the network parts of the walkthrough, replaced: pip installs without downloading. The
#: dependencies are taken from this environment through a .pth file (and so is pytest, which
#: therefore has no script of its own in the new environment); the packages are built with
#: this environment's setuptools instead of one downloaded into an isolated build (the old
#: setuptools Python 3.11's venv bundles cannot build them without downloading `wheel`).
OFFLINE = """
set -euo pipefail
bridge() {
    purelib=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf '%s\\n' OUTER_SITE > "$purelib/outer_site.pth"
    if [ -d "$purelib/setuptools" ]; then python -m pip uninstall -q -y setuptools; fi
}
pip() { bridge; python -m pip "$@" -q --no-deps --no-build-isolation --no-index; }
pytest() { python -m pytest "$@"; }
"""

#: step 5 starts with this edit of tables.py, which the document describes in prose
ADD_TOPIC = """
python - <<'END'
from pathlib import Path
tables = Path("../crmkit-visits/crmkit_visits/tables.py")
old = 'Column("author", Text),'
tables.write_text(tables.read_text().replace(old, old + '\\n    Column("topic", Text),'))
END
"""


def walkthrough_script(steps):
    """One bash script of the documented steps, each after an ``@@ step N`` line."""
    setup, new, postgres, try_it, revision = steps
    clone, rest = setup.split("\n", 1)
    assert clone == "git clone <crmkit-repository-url> crmkit"  # done by copying this tree
    example = "postgresql://postgres@localhost:5432/postgres"
    assert f"CRMKIT_TEST_DATABASE_URL={example}" in postgres
    server = os.environ.get("CRMKIT_TEST_DATABASE_URL")
    postgres = (
        postgres.replace(example, server)
        if server
        else "echo PostgreSQL run left out: CRMKIT_TEST_DATABASE_URL is not set\n"
    )
    outer = "\n".join(p for p in site.getsitepackages() if "site-packages" in p)
    script = OFFLINE.replace("OUTER_SITE", outer)
    for number, step in enumerate([rest, new, postgres, try_it, ADD_TOPIC + revision], 1):
        script += f"echo '@@ step {number}'\n{step}"
    return script


def pytest_outcomes(output):
    """{test id: PASSED/FAILED/SKIPPED/...} from ``pytest -v`` output."""
    found = re.findall(r"^tests/test_plugin\.py::(\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL)",
                       output, re.M)  # fmt: skip
    return dict(found)


PLUGIN_TESTS = (
    "test_migrations_match_tables", "test_orders_are_counted_per_customer",
    "test_new_customers_get_the_welcome_note", "test_command_adds_and_lists_notes",
    "test_empty_note_is_refused_and_nothing_changes", "test_export_and_erasure",
    "test_customer_360_section_in_a_browser",
)  # fmt: skip


def walkthrough_env(tmp_path):
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "python").symlink_to(sys.executable)  # `python -m venv` in the document
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("CRMKIT_", "VIRTUAL_ENV"))
    }
    environment["PATH"] = f"{shims}{os.pathsep}{environment['PATH']}"
    environment["PYTEST_ADDOPTS"] = "-v -p no:cacheprovider -p no:randomly"
    if Path(CHROMIUM).exists() or os.environ.get("CRMKIT_REQUIRE_BROWSER") == "1":
        environment["CRMKIT_REQUIRE_BROWSER"] = "1"  # the browser test must run, not skip
    if os.environ.get("CRMKIT_CHROMIUM"):
        environment["CRMKIT_CHROMIUM"] = os.environ["CRMKIT_CHROMIUM"]
    return environment


@pytest.mark.slow
def test_plugin_authoring_walkthrough_in_a_fresh_venv(tmp_path):
    """docs/plugin-authoring.md, run: crmkit into a fresh venv (python -m venv, pip install
    -e ".[test]"); a generated plugin installed with its [test] extra passes its own tests
    (drift, order event, browser; SQLite, and PostgreSQL when configured), works in a CRM,
    and `crmkit db revision --autogenerate` follows a table change. Left out: the git clone
    (this tree is copied) and downloads (see OFFLINE)."""
    shutil.copytree(REPO, tmp_path / "crmkit", ignore=shutil.ignore_patterns(
        ".venv", ".git", "artifacts", "*.egg-info", "__pycache__", ".ruff_cache", "*.db",
    ))  # fmt: skip
    environment = walkthrough_env(tmp_path)
    done = run("bash", "-c", walkthrough_script(authoring_steps()), cwd=tmp_path, env=environment)
    steps = dict(re.findall(r"^@@ step (\d)\n(.*?)(?=^@@ step |\Z)", done.stdout, re.M | re.S))

    assert "Usage: crmkit" in steps["1"]
    assert "wrote 10 files to crmkit-visits" in steps["2"]
    assert 'next: pip install -e "crmkit-visits[test]"' in steps["2"]
    on_sqlite = pytest_outcomes(steps["2"])
    for test in PLUGIN_TESTS:
        assert on_sqlite.get(f"{test}[sqlite]") == "PASSED", (test, steps["2"])
        assert on_sqlite.get(f"{test}[postgresql]") == "SKIPPED", (test, steps["2"])
    if os.environ.get("CRMKIT_TEST_DATABASE_URL"):
        on_both = pytest_outcomes(steps["3"])
        for test in PLUGIN_TESTS:
            for backend in BACKENDS:
                assert on_both.get(f"{test}[{backend}]") == "PASSED", (test, steps["3"])
    assert "plugins enabled: visits" in steps["4"]
    assert "note added to Ada Lovelace" in steps["4"]
    assert "Prefers calls in the morning" in steps["4"] and "wrote ada.html" in steps["4"]
    assert "visits0002_notes_have_a_topic.py (visits0002, after visits0001)" in steps["5"]
    revision = tmp_path / "crmkit-visits/crmkit_visits/migrations/versions"
    assert (
        "add_column(sa.Column('topic', sa.Text()" in next(revision.glob("visits0002_*")).read_text()
    )
    assert re.search(r"^upgraded .* -> .*visits0002", steps["5"], re.M), steps["5"]
    after = pytest_outcomes(steps["5"])
    assert after.get("test_migrations_match_tables[sqlite]") == "PASSED", steps["5"]
    assert not re.search(r"\bfailed\b|\bFAILED\b|\bERROR\b", done.stdout), done.stdout

    # the installed command in the same environment: a mistake is one line, no traceback
    crmkit_cmd = str(tmp_path / "crmkit" / ".venv" / "bin" / "crmkit")
    where = {"env": environment, "cwd": tmp_path / "visits-try"}
    listed = run(crmkit_cmd, "plugins", "list", "--format", "csv", **where)
    assert "visits,0.1.0,yes,ok," in listed.stdout
    bad = subprocess.run([crmkit_cmd, "visits", "add", "C-404", "x"], capture_output=True,
                         text=True, **where)  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: customer 'C-404' not found")
    assert "Traceback" not in bad.stderr


def test_distribution_name_spells_underscores_as_dashes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(["plugin", "new", "hotel_stays"])
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "wrote 10 files to crmkit-hotel-stays\n" in result.output
    project = tomllib.loads((tmp_path / "crmkit-hotel-stays" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "crmkit-hotel-stays"
    assert project["project"]["entry-points"]["crmkit"] == {
        "hotel_stays": "crmkit_hotel_stays.plugin"
    }
    assert (tmp_path / "crmkit-hotel-stays" / "crmkit_hotel_stays" / "plugin.py").is_file()


def declared_api(module_file):
    for node in ast.parse(module_file.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CRMKIT_API":
            return ast.literal_eval(node.value)
    return None


def test_plugin_list_matches_each_plugins_package():
    """docs/plugins.md lists every bundled plugin and the example's as they declare
    themselves: distribution, entry point, CRMKIT_API, and a README that exists."""
    text = (REPO / "docs" / "plugins.md").read_text()
    rows = re.findall(
        r"^\| `(\w+)` \| `([\w-]+)` \| [^|]+ \| `([^`]+)` \| \[[^]]+\]\(\.\./([^)]+)\) \|$",
        text,
        re.M,
    )
    bundled = {p.parent.name for p in (REPO / "plugins").glob("*/pyproject.toml")}
    assert {row[0] for row in rows} == bundled | {"hotel_rooms"}
    for name, distribution, api, link in rows:
        readme = REPO / link
        assert readme.is_file(), link
        project = tomllib.loads((readme.parent / "pyproject.toml").read_text())["project"]
        assert project["name"] == distribution and distribution.startswith("crmkit-")
        module = project["entry-points"]["crmkit"][name]
        assert declared_api(readme.parent / (module.replace(".", "/") + ".py")) == api, name


@pytest.mark.parametrize("name", ["Visits", "1x", "core", "x", "class"])
def test_bad_plugin_names_are_refused(tmp_path, name):
    result = run_cli(["plugin", "new", name, "--dir", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("description", ['Record "store" visits', "a\\\\b", "two\nlines"])
def test_descriptions_that_would_break_the_generated_files_are_refused(tmp_path, description):
    result = run_cli(["plugin", "new", "visits", "--dir", str(tmp_path / "p"),
                      "--description", description])  # fmt: skip
    assert result.exit_code == 1
    assert "--description may not contain" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "p").exists()
