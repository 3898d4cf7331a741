"""The HTML report: every grouping's table with inline SVG bar charts (no scripts, no
external assets), rendered with the plugin's ``complaints/report.html`` template."""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import escape

from crmkit_complaints.service import ComplaintService

REPORT_COLUMNS = [
    "group",
    "complaints",
    "open",
    "surveys",
    "csat",
    "nps",
    "sla_compliance",
    "mean_first_response_business_h",
    "mean_first_response_wall_h",
    "mean_resolution_business_h",
    "mean_resolution_wall_h",
]


def bar_chart(rows: list[dict[str, Any]], label: str, value: str, title: str) -> str:
    """A horizontal bar chart as inline SVG (no scripts, no external assets)."""
    width, bar_h, left = 520, 22, 150
    values = [float(r[value] or 0) for r in rows]
    top = max(values, default=0) or 1
    height = 30 + bar_h * len(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (row, v) in enumerate(zip(rows, values, strict=True)):
        y = 26 + i * bar_h
        w = (width - left - 60) * v / top
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="12">{escape(str(row[label]))}</text>'
            f'<rect class="bar" data-label="{escape(str(row[label]))}" data-value="{v:g}" '
            f'x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 6}" fill="#3a7bd5"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12">{v:g}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def report_html(svc: ComplaintService, as_of: dt.datetime | None = None) -> str:
    """The report by category, department, channel and month, with inline SVG charts."""
    blocks = []
    for by in ("category", "department", "channel", "month"):
        rows = svc.report(by, as_of=as_of)
        chart = bar_chart(rows, by, "complaints", f"Complaints by {by}")
        surveyed = [r for r in rows if r["csat"] is not None]
        if surveyed:
            chart += bar_chart(surveyed, by, "csat", f"Mean CSAT (1-5) by {by}")
        blocks.append({"by": by, "rows": rows, "chart": chart})
    return svc.crm.templates.get_template("complaints/report.html").render(
        blocks=blocks, columns=REPORT_COLUMNS
    )
