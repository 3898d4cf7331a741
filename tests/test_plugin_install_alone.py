"""Each shipped plugin installs alone on the core, in a fresh virtual environment, and works.

The core and one plugin are installed non-editable (wheels built from this checkout, as a user
gets them from an index) with pip ``--no-deps --no-index``; third-party libraries (SQLAlchemy, numpy ...) come
from this interpreter's site-packages through a ``.pth`` file, as in ``test_scaffold.py`` --
but through a filtered copy that leaves out this checkout's own crmkit distributions, so the
new environment sees exactly the one plugin under test.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import site
import sqlite3
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "tests", "*.db")

# plugin -> (a read command after `crmkit demo`, text its CSV output must hold)
COMMANDS = {
    "loyalty": (["loyalty", "programs", "list", "--format", "csv"], "retail-club,"),
    "complaints": (["complaints", "list", "--format", "csv"], ",delivery,"),
    "knowledgebase": (["kb", "search", "refund", "--format", "csv"], "refund-policy,"),
    "segmentation": (["segment", "rfm", "--as-of", "2030-01-01", "--format", "csv"], "monetary"),
}


def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def outer_libraries(root: Path) -> Path:
    """A folder linking every library of this interpreter except crmkit's own distributions."""
    root.mkdir()
    for packages in (p for p in site.getsitepackages() if "site-packages" in p):
        for entry in Path(packages).iterdir():
            lowered = entry.name.lower()
            if lowered.startswith(("crmkit", "__editable__", "_crmkit")) or entry.suffix == ".pth":
                continue
            if not (root / entry.name).exists():
                (root / entry.name).symlink_to(entry)
    return root


def fresh_environment(tmp_path: Path) -> Path:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = run(
        str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ).stdout.strip()
    libraries = outer_libraries(tmp_path / "outer-libraries")
    (Path(purelib) / "outer_site.pth").write_text(f"{libraries}\n")
    return env_dir


def source_copy(source: Path, target: Path) -> Path:
    """Build from a copy: an in-tree build would write build/ into the shared checkout."""
    shutil.copytree(source, target, ignore=SKIP)
    return target


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The core and the shipped plugins built once (per test process) into wheels, as a
    package index would serve them; built from copies so nothing is written to the checkout."""
    root = tmp_path_factory.mktemp("wheels")
    core = root / "src" / "crmkit"
    core.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, core / name)
    shutil.copytree(REPO / "crmkit", core / "crmkit", ignore=SKIP)
    sources = [core] + [source_copy(REPO / "plugins" / n, root / "src" / n) for n in COMMANDS]
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "-w", str(root / "dist"), *map(str, sources))  # fmt: skip
    found = {w.name.split("-")[0]: w for w in (root / "dist").glob("*.whl")}
    return {"core": found["crmkit"], **{n: found[f"crmkit_{n}"] for n in COMMANDS}}


@pytest.mark.slow
@pytest.mark.parametrize("plugin", sorted(COMMANDS))
def test_plugin_installs_alone_on_the_core(plugin, tmp_path, wheels):
    env_dir = fresh_environment(tmp_path)
    python = str(env_dir / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q"]
    run(*pip, "--no-deps", "--no-index", str(wheels["core"]), str(wheels[plugin]))

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    work = tmp_path / "work"  # no crmkit.toml here: every installed plugin is enabled
    work.mkdir()

    def crmkit(*args: str) -> str:
        return run(str(env_dir / "bin" / "crmkit"), *args, env=environment, cwd=work).stdout

    # installed, not linked to this checkout; the other shipped plugins are absent
    probe = (
        f"import importlib.util as u, crmkit, crmkit_{plugin} as p; print(crmkit.__file__); "
        f"print(p.__file__); print([n for n in {sorted(COMMANDS)!r} if u.find_spec('crmkit_' + n)])"
    )
    where = run(python, "-c", probe, env=environment, cwd=work).stdout.splitlines()
    assert all(line.startswith(str(env_dir)) for line in where[:2]), where
    assert where[2] == repr([plugin])

    database = f"sqlite:///{work / 'x.db'}"
    upgraded = crmkit("--database", database, "db", "upgrade")
    assert "upgraded" in upgraded and plugin in upgraded, upgraded

    listed = list(csv.DictReader(io.StringIO(crmkit("plugins", "list", "--format", "csv"))))
    assert [(r["name"], r["enabled"], r["status"]) for r in listed] == [(plugin, "yes", "ok")]
    assert listed[0]["version"] == "0.1.0"

    crmkit("--database", database, "demo", "--customers", "30")
    command, expected = COMMANDS[plugin]
    output = crmkit("--database", database, *command)
    assert expected in output, output


@pytest.mark.slow
def test_uninstalling_a_plugin_leaves_the_core_and_the_others_working(tmp_path, wheels):
    env_dir = fresh_environment(tmp_path)
    python = str(env_dir / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    run(*pip, "install", "-q", "--no-deps", "--no-index",
        *(str(wheels[n]) for n in ("core", "loyalty", "complaints")))  # fmt: skip

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    work = tmp_path / "work"
    work.mkdir()
    config = work / "crmkit.toml"
    config.write_text('database = "sqlite:///crm.db"\nplugins = ["complaints", "loyalty"]\n')

    def crmkit(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(env_dir / "bin" / "crmkit"), *args],
            capture_output=True, text=True, env=environment, cwd=work, timeout=300,
        )  # fmt: skip
        assert result.returncode == code, f"{args}\n{result.stdout}\n{result.stderr}"
        return result

    crmkit("db", "upgrade")
    crmkit("demo", "--customers", "20")
    run(*pip, "uninstall", "-y", "-q", "crmkit-complaints")

    listed = crmkit("plugins", "list", "--format", "csv").stdout
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(listed))}
    assert rows["complaints"]["status"] == "missing: enabled in the config but not installed"
    assert (rows["loyalty"]["enabled"], rows["loyalty"]["status"]) == ("yes", "ok")
    refused = crmkit("db", "current", code=1)
    assert refused.stderr.startswith("error: plugin 'complaints' is enabled in")
    assert "Traceback" not in refused.stderr

    config.write_text('database = "sqlite:///crm.db"\nplugins = ["loyalty"]\n')
    current = crmkit("db", "current").stdout
    assert "set aside: complaints" in current and "at head" in current
    assert "retail-club," in crmkit("loyalty", "programs", "list", "--format", "csv").stdout
    assert "  complaints " not in crmkit("--help").stdout
    with sqlite3.connect(work / "crm.db") as db:  # its tables and rows stay
        assert db.execute("SELECT count(*) FROM complaints").fetchone() == (6,)
        assert db.execute("SELECT count(*) FROM customers").fetchone() == (20,)
