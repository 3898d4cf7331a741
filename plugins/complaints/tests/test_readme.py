"""The README's walk-through runs as written with the installed ``crmkit`` script."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
CODE = re.compile(r"C-[A-Za-z0-9_-]{16}")


def walkthrough() -> tuple[str, list[tuple[str, list[str]]]]:
    """The section's crmkit.toml and its (command, expected output lines) pairs."""
    section = README.read_text(encoding="utf-8").split("## One complaint's whole life", 1)[1]
    section = section.split("\n## ", 1)[0]
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    console = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    steps: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line.rstrip())
    return toml, [(cmd, _trim(out)) for cmd, out in steps]


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1]:
        lines = lines[:-1]
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line; a line '...' in the README stands for any number of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


def test_readme_walkthrough_runs_with_the_installed_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("crmkit")
    assert script.exists(), f"the crmkit console script is not installed next to {sys.executable}"
    toml, steps = walkthrough()
    assert len(steps) > 20 and all(cmd.startswith("crmkit ") for cmd, _ in steps)
    (tmp_path / "crmkit.toml").write_text(toml, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMKIT_")}
    codes: dict[str, str] = {}  # README tracking code -> the one this run got
    for cmd, expected in steps:
        for readme_code, real in codes.items():
            cmd = cmd.replace(readme_code, real)
        args = shlex.split(cmd)
        done = subprocess.run(
            [str(script), *args[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        actual = _trim([line.rstrip() for line in (done.stdout + done.stderr).splitlines()])
        for readme_code, real in zip(
            CODE.findall("\n".join(expected)), CODE.findall("\n".join(actual)), strict=False
        ):
            codes.setdefault(readme_code, real)
        for readme_code, real in codes.items():
            actual = [line.replace(real, readme_code) for line in actual]
        assert matches(expected, actual), f"$ {cmd}\n" + "\n".join(actual)
        assert (done.returncode != 0) == expected[0].startswith("error:"), cmd
    assert (tmp_path / "status.html").read_text(encoding="utf-8").count("Ann Agent") == 1


def test_readme_lists_the_complaint_facts_as_the_code_documents_them() -> None:
    import attrs
    from crmkit_complaints.hookspecs import ComplaintFacts

    section = README.read_text(encoding="utf-8").split("### ComplaintFacts", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| `[^|]*` \| (.*) \|$", section, re.M)
    assert rows == [(f.name, f.metadata["doc"]) for f in attrs.fields(ComplaintFacts)]
