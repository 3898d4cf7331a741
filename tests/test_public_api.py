"""The public plugin API is drawn, used, and documented.

Plugins (their packages and tests) and examples/hotel import from crmkit only
the public surface: ``crmkit``, ``crmkit.plugin`` and ``crmkit.testing``; never a
crmkit internal and never another plugin's package. The core (crmkit/core)
imports neither the command line nor any plugin.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import crmkit
import crmkit.plugin as ck
from crmkit import apiref

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"crmkit", "crmkit.plugin", "crmkit.testing"}


def _plugin_roots() -> list[tuple[str, Path]]:
    """(own package name, folder) of every bundled plugin and of the hotel example."""
    roots = []
    for pyproject in sorted(
        [*ROOT.glob("plugins/*/pyproject.toml"), *ROOT.glob("examples/**/pyproject.toml")]
    ):
        folder = pyproject.parent
        packages = sorted(p.name for p in folder.glob("crmkit_*") if (p / "__init__.py").exists())
        for package in packages:
            roots.append((package, folder))
    return roots


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            if node.module == "crmkit":  # `from crmkit import core` is an internal too
                for alias in node.names:
                    if alias.name not in crmkit.__all__ and alias.name not in ("plugin", "testing"):
                        yield node.lineno, f"crmkit.{alias.name}"


def _attribute_uses(path: Path) -> Iterator[tuple[int, str]]:
    """``crmkit.<name>`` attribute chains on the imported ``crmkit`` module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "crmkit"
        ):
            yield node.lineno, f"crmkit.{node.attr}"


def _violations(package: str, folder: Path) -> list[str]:
    found = []
    own = (package, f"{package}.")
    for path in sorted(folder.rglob("*.py")):
        if ".venv" in path.parts or "build" in path.parts:
            continue
        where = path.relative_to(folder.parent)
        for line, module in _imports(path):
            if not module.startswith("crmkit") or module.startswith(own) or module in PUBLIC:
                continue
            if module.startswith("crmkit_"):
                found.append(f"{where}:{line}: imports another plugin's package {module}")
            else:
                found.append(f"{where}:{line}: imports crmkit internal {module}")
        for line, chain in _attribute_uses(path):
            name = chain.removeprefix("crmkit.")
            if name not in crmkit.__all__ and name not in ("plugin", "testing", "__version__"):
                found.append(f"{where}:{line}: uses crmkit internal {chain}")
    return found


@pytest.mark.parametrize(("package", "folder"), _plugin_roots(), ids=lambda v: str(v))
def test_plugins_and_examples_import_only_the_public_api(package, folder):
    problems = _violations(package, folder)
    assert not problems, "import only crmkit, crmkit.plugin, crmkit.testing:\n" + "\n".join(
        problems
    )


def test_the_walk_finds_every_plugin_and_the_example():
    names = {package for package, _ in _plugin_roots()}
    assert {"crmkit_loyalty", "crmkit_complaints", "crmkit_knowledgebase"} <= names
    assert {"crmkit_segmentation", "crmkit_hotel_rooms"} <= names


def test_the_walk_catches_an_internal_import(tmp_path):
    package = tmp_path / "crmkit_bad"
    package.mkdir()
    (package / "plugin.py").write_text(
        "import crmkit\nfrom crmkit.core.tables import orders\nimport crmkit_loyalty.ledger\n"
        "x = crmkit.core\nfrom crmkit.plugin import Order\nfrom crmkit_bad import tables\n"
    )
    problems = _violations("crmkit_bad", tmp_path)
    assert len(problems) == 3, problems
    assert "crmkit internal crmkit.core.tables" in problems[0]


def test_the_core_imports_neither_the_cli_nor_a_plugin():
    problems = []
    for path in sorted((ROOT / "crmkit" / "core").rglob("*.py")):
        for line, module in _imports(path):
            if module == "crmkit.cli" or module.startswith(("crmkit.cli.", "crmkit_")):
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not problems, "\n".join(problems)


def test_no_crmkit_module_imports_a_plugin_package():
    problems = []
    for path in sorted((ROOT / "crmkit").rglob("*.py")):
        for line, module in _imports(path):
            if module.startswith("crmkit_"):
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not problems, "\n".join(problems)


def test_every_public_name_resolves_and_is_grouped_once():
    grouped = [name for names in ck.GROUPS.values() for name in names]
    assert grouped == ck.__all__
    assert len(set(grouped)) == len(grouped)
    for name in ck.__all__:
        assert getattr(ck, name) is not None


def test_the_crmkit_package_is_a_subset_of_the_plugin_api():
    assert set(crmkit.__all__) - {"__version__"} <= set(ck.__all__)


def test_the_cli_helpers_load_lazily():
    import subprocess
    import sys

    code = (
        "import sys, crmkit.plugin as ck; assert 'crmkit.cli' not in sys.modules; "
        "ck.pass_crm; assert 'crmkit.cli' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_api_reference_in_the_plugin_guide_is_fresh():
    text = apiref.GUIDE.read_text(encoding="utf-8")
    assert apiref.current_section(text) == apiref.render(), (
        "docs/plugin-guide.md's API reference is out of date: run python -m crmkit.apiref --write"
    )


def test_every_public_name_is_documented():
    assert "(undocumented)" not in apiref.render()
