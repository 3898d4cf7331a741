"""Printing records as a table, JSON (an array of objects) or CSV (with a header row)."""

from __future__ import annotations

import io
import json
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import click

from crmkit.core.csvcells import csv_writer
from crmkit.core.serialize import jsonable

FORMATS = ("table", "json", "csv")


def format_option(*formats: str, default: str = "table") -> Callable[[Any], Any]:
    """``--format table|json|csv`` (or the given choices)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(formats or FORMATS),
        default=default,
        show_default=True,
        help="Output format.",
    )


def render(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> str:
    """Render ``rows`` (dicts) in ``fmt``; ``columns`` picks and orders the table/CSV columns.

    CSV goes through :func:`~crmkit.core.csvcells.csv_writer`: a cell a
    spreadsheet would run as a formula gets a leading ``'`` (``crmkit import``
    takes it off again); plain numbers, negative ones too, stay as they are.
    """
    data = [jsonable(r) for r in rows]
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2)
    cols = list(columns or (data[0].keys() if data else []))
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(cols)
        for row in data:
            writer.writerow(["" if row.get(c) is None else _cell(row.get(c)) for c in cols])
        return buffer.getvalue().rstrip("\n")
    if not data:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in cols] for row in data]
    widths = [max(_width(str(c)), *(_width(r[i]) for r in cells)) for i, c in enumerate(cols)]
    widths = [min(w, 40) for w in widths]
    lines = ["  ".join(_pad(str(c), w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(_pad(_clip(v, w), w) for v, w in zip(row, widths, strict=True)).rstrip()
        )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _width(text: str) -> int:
    """Columns a terminal gives ``text``: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def _clip(value: str, width: int) -> str:
    if _width(value) <= width:
        return value
    out, used = [], 0
    for ch in value:
        size = _width(ch)
        if used + size > width - 1:
            break
        out.append(ch)
        used += size
    return "".join(out) + "…"


def emit(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> None:
    """Print ``rows`` in ``fmt`` (table, json or csv) to stdout; see :func:`render`."""
    click.echo(render(rows, fmt, columns))
