"""One way to print a segmentation result: table, JSON, CSV or a self-contained HTML page.

Every ``crmkit segment ...`` command calls :func:`emit_report`. ``table``/``json``/``csv``
go through the core's :func:`crmkit.plugin.emit`; ``html`` renders
``segmentation/report.html`` (autoescaped Jinja2, inline CSS, bar charts as inline SVG, no
external assets), so a report can be mailed or archived as one file.

A result is either a list of row dicts, or a mapping with ``rows`` plus anything else worth
showing (fitted parameters, diagnostics, a movement matrix): the extra keys appear in JSON
as they are and in HTML as key/value tables above the rows.

``notes`` are summary lines about the result (``3 customers left out: profiling consent
withdrawn``): printed to stderr for ``table``, ``json`` and ``csv`` (so stdout stays the
data), shown under the title in HTML.

CSV is written through :func:`crmkit.plugin.csv_writer`: a cell a spreadsheet would run as
a formula (a name ``=HYPERLINK(...)``, an external id ``@SUM(1+1)``) gets a leading quote;
crmkit's importers take it off again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import click
from jinja2 import Environment, FileSystemLoader, select_autoescape

import crmkit.plugin as ck
from crmkit.plugin import csv_writer, jsonable

FORMATS = ("table", "json", "csv", "html")
TEMPLATES = Path(__file__).parent / "templates"
#: columns a chart groups rows by when the caller does not say (first one present wins)
LABEL_COLUMNS = ("segment", "class", "tier", "label", "cluster", "quadrant", "level")
#: columns summed per label for a second chart (first one present wins)
VALUE_COLUMNS = ("monetary", "value", "revenue", "margin", "clv", "amount")
#: an HTML page lists at most this many rows (charts always use all of them)
MAX_HTML_ROWS = 2000


@attrs.frozen
class Chart:
    """A bar chart: ``bars`` are ``(label, number)`` in display order."""

    title: str
    bars: tuple[tuple[str, Any], ...]


def chart_of(
    rows: Sequence[Mapping[str, Any]],
    by: str,
    value: str | None = None,
    order: Sequence[str] = (),
) -> Chart:
    """Count of rows per ``by`` label, or the sum of ``value`` per label.

    Bars follow ``order`` (labels not in it follow, in first-seen order)."""
    totals: dict[str, Any] = {label: None for label in order}
    for row in rows:
        label = "" if row.get(by) is None else str(row.get(by))
        add = 1 if value is None else (row.get(value) or 0)
        if isinstance(add, str):
            add = Decimal(add)
        totals[label] = (totals.get(label) or 0) + add
    title = f"customers by {by}" if value is None else f"{value} by {by}"
    return Chart(title, tuple((k, v) for k, v in totals.items() if v is not None))


def auto_charts(rows: Sequence[Mapping[str, Any]], order: Sequence[str] = ()) -> list[Chart]:
    """Customers per label column and, when there is a money column, its sum per label."""
    if not rows:
        return []
    keys = rows[0].keys()
    by = next((c for c in LABEL_COLUMNS if c in keys), None)
    if by is None:
        return []
    charts = [chart_of(rows, by, order=order)]
    value = next((c for c in VALUE_COLUMNS if c in keys), None)
    if value is not None:
        charts.append(chart_of(rows, by, value, order))
    return charts


def _charts(chart: Any, rows: Sequence[Mapping[str, Any]]) -> list[Chart]:
    """``chart``: None (automatic), False (none), a column name, a Chart, a
    ``{"by": ..., "value": ..., "title": ...}`` or ``{"title": ..., "bars": [...]}`` dict,
    or a list of those."""
    if chart is None:
        return auto_charts(rows)
    if chart is False:
        return []
    if isinstance(chart, list | tuple):
        return [c for item in chart for c in _charts(item, rows)]
    if isinstance(chart, Chart):
        return [chart]
    if isinstance(chart, str):
        return [chart_of(rows, chart)]
    if isinstance(chart, Mapping):
        if "bars" in chart:
            bars = chart["bars"]
            bars = bars.items() if isinstance(bars, Mapping) else bars
            return [Chart(str(chart.get("title", "")), tuple((str(k), v) for k, v in bars))]
        made = chart_of(rows, chart["by"], chart.get("value"))
        return [Chart(str(chart.get("title") or made.title), made.bars)]
    raise TypeError(f"emit_report: unsupported chart {chart!r}")


def svg_bar_chart(chart: Chart, width: int = 640) -> dict[str, Any]:
    """Geometry of a horizontal bar chart (the template draws it as inline SVG)."""
    bar_h, gap, label_w, pad = 22, 6, 170, 80
    numbers = [float(v) for _, v in chart.bars]
    top = max((abs(n) for n in numbers), default=0) or 1
    span = width - label_w - pad
    bars = []
    for i, ((label, value), number) in enumerate(zip(chart.bars, numbers, strict=True)):
        y = i * (bar_h + gap)
        bars.append(
            {
                "label": label,
                "value": jsonable(value),
                "y": y,
                "w": round(abs(number) / top * span, 1),
                "text_y": round(y + bar_h * 0.7, 1),
            }
        )
    return {
        "title": chart.title,
        "width": width,
        "height": max(len(bars) * (bar_h + gap), bar_h),
        "bar_h": bar_h,
        "label_w": label_w,
        "bars": bars,
    }


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True)
    )


def _split(rows_or_report: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if isinstance(rows_or_report, Mapping):
        extra = {k: v for k, v in rows_or_report.items() if k != "rows"}
        return list(rows_or_report.get("rows") or []), extra
    return list(rows_or_report), {}


def render_html(
    rows_or_report: Any,
    title: str = "Segmentation report",
    chart: Any = None,
    columns: Sequence[str] | None = None,
    crm: Any = None,
    notes: Sequence[str] = (),
) -> str:
    """The self-contained HTML page of a result (``crm`` lets an integrator override it)."""
    rows, extra = _split(rows_or_report)
    data = [jsonable(r) for r in rows]
    cols = list(columns or (data[0].keys() if data else []))
    blocks = []
    for key, value in extra.items():
        value = jsonable(value)
        if isinstance(value, Mapping):
            items = [(k, _text(v)) for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            blocks.append({"title": key, "table": value, "cols": list(value[0].keys())})
            continue
        else:
            items = [(key, _text(value))]
        blocks.append({"title": key, "pairs": items})
    env = crm.templates if crm is not None else _environment()
    return env.get_template("segmentation/report.html").render(
        title=title,
        notes=list(notes),
        charts=[svg_bar_chart(c) for c in _charts(chart, rows)],
        blocks=blocks,
        columns=cols,
        rows=[[_text(r.get(c)) for c in cols] for r in data[:MAX_HTML_ROWS]],
        total=len(data),
        shown=min(len(data), MAX_HTML_ROWS),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as CSV with a header, every cell neutralised (:func:`crmkit.plugin.csv_writer`)."""
    data = [jsonable(r) for r in rows]
    cols = list(columns or (data[0].keys() if data else []))
    buffer = io.StringIO()
    writer = csv_writer(buffer, lineterminator="\n")
    writer.writerow(cols)
    for row in data:
        writer.writerow([_text(row.get(c)) for c in cols])
    return buffer.getvalue().rstrip("\n")


def render_report(
    rows_or_report: Any,
    fmt: str,
    title: str = "Segmentation report",
    chart: Any = None,
    columns: Sequence[str] | None = None,
    crm: Any = None,
    notes: Sequence[str] = (),
) -> str:
    """The text :func:`emit_report` prints to stdout (``notes`` appear only in HTML)."""
    if fmt == "html":
        return render_html(rows_or_report, title, chart, columns, crm, notes)
    rows, extra = _split(rows_or_report)
    if fmt == "json" and extra:
        return json.dumps(jsonable({**extra, "rows": rows}), ensure_ascii=False, indent=2)
    if fmt == "csv":
        return render_csv(rows, columns)
    return ck.render(rows, fmt, columns)


def emit_report(
    rows_or_report: Any,
    fmt: str,
    title: str = "Segmentation report",
    chart: Any = None,
    columns: Sequence[str] | None = None,
    crm: Any = None,
    notes: Sequence[str] = (),
) -> None:
    """Print a result as ``table``, ``json`` (the core's ``emit``), ``csv`` (neutralised
    cells) or ``html``.

    ``chart`` (HTML only): None draws customers per segment (and the summed value per
    segment when rows have a money column); a column name, ``{"by", "value", "title"}``,
    ``{"title", "bars"}``, a :class:`Chart`, a list of them, or False for none.
    ``notes``: summary lines, on stderr except in HTML (see the module docstring).
    """
    if fmt not in FORMATS:
        raise ValueError(f"emit_report: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows, extra = _split(rows_or_report)
    if fmt == "table" or (fmt == "json" and not extra):
        ck.emit(rows, fmt, columns)
    else:
        click.echo(render_report(rows_or_report, fmt, title, chart, columns, crm, notes))
    if fmt != "html":
        for line in notes:
            click.echo(line, err=True)
