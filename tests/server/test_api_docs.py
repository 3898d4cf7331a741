"""docs/api.md's endpoint list is what ``python -m crmkit.server.apidoc`` generates from the
OpenAPI document of the core's routes; every core route is in it."""

from __future__ import annotations

import subprocess
import sys

from crmkit.server import apidoc
from crmkit.server.api import core_routes


def test_api_doc_is_fresh() -> None:
    text = apidoc.DOC.read_text(encoding="utf-8")
    assert text == apidoc.updated(text, apidoc.render()), (
        "docs/api.md is out of date: run python -m crmkit.server.apidoc"
    )
    done = subprocess.run(
        [sys.executable, "-m", "crmkit.server.apidoc", "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_every_core_route_is_listed() -> None:
    generated = apidoc.render()
    for route in core_routes():
        path = "/api/v1" + apidoc_path(route.path)
        assert f"| {route.method} | `{path}` |" in generated, (route.method, path)


def test_only_the_generated_part_is_replaced() -> None:
    stale = f"# API\n\nguide\n\n{apidoc.BEGIN}\nold list\n{apidoc.END}\n\n## After\n"
    fresh = apidoc.updated(stale, apidoc.render())
    assert fresh.startswith("# API\n\nguide\n\n")
    assert fresh.endswith("\n## After\n")
    assert "old list" not in fresh
    assert apidoc.updated(fresh, apidoc.render()) == fresh
    assert apidoc.updated(fresh.replace("List customers", "List clients"), apidoc.render()) == fresh


def apidoc_path(path: str) -> str:
    import re

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}", r"{\1}", path)
