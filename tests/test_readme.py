"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_python_quickstart_runs(capsys):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart: the Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "199.00" in printed
    assert "Present the products that meet the need" in printed
