"""Reports: counts, CSAT, NPS, SLA compliance and mean times per group as of any moment,
each department's complaints with their root causes, and the HTML report with inline SVG
bar charts (no scripts, no external assets) rendered with ``complaints/report.html``.

Functions named like a ComplaintService method are its bodies; their docstrings are on the
service.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from markupsafe import escape
from sqlalchemy import and_, select

from crmkit.plugin import ValidationError
from crmkit_complaints import records, sla
from crmkit_complaints import tables as t
from crmkit_complaints.records import Complaint

if TYPE_CHECKING:
    from crmkit_complaints.service import ComplaintService

GROUPINGS = ("category", "department", "channel", "month")
MEAN_TIMES = (
    "first_response_business_h",
    "first_response_wall_h",
    "resolution_business_h",
    "resolution_wall_h",
)
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


def report(
    svc: ComplaintService, by: str = "category", *, as_of: dt.datetime | None = None
) -> list[dict[str, Any]]:
    if by not in GROUPINGS:
        raise ValidationError("report by category, department, channel or month")
    if as_of is None:
        as_of = dt.datetime.now(dt.UTC)
    elif as_of.tzinfo is None:
        raise ValidationError("--as-of needs a time zone, e.g. 2026-11-23T09:00+00:00")
    sv = t.surveys
    query = (
        select(t.complaints, sv.c.csat, sv.c.nps)
        .outerjoin(sv, and_(sv.c.complaint_id == t.complaints.c.id, sv.c.at <= as_of))
        .where(t.complaints.c.received_at <= as_of)
        .order_by(t.complaints.c.id)
    )
    with svc.crm.reading() as connection:
        rows = connection.execute(query).all()
        log = sla.pause_log(connection, rows[0].id, rows[-1].id) if rows else {}
    groups: dict[str, list[tuple[Any, Any, Any]]] = defaultdict(list)
    for row in rows:
        c = Complaint(**{k: v for k, v in row._mapping.items() if k not in ("csat", "nps")})
        key = c.received_at.strftime("%Y-%m") if by == "month" else getattr(c, by) or "-"
        groups[key].append((sla.measure(svc, c, log.get(c.id, ()), as_of), row.csat, row.nps))
    return [_group_row(by, key, groups[key]) for key in sorted(groups)]


def _group_row(by: str, key: str, items: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
    """One group's line of the report from its ``(measure, csat, nps)`` items."""
    csats = [x[1] for x in items if x[1] is not None]
    times = [x[0] for x in items]
    kept = [m for m in times if not m["first_response_breached"] | m["resolution_breached"]]
    return {
        by: key,
        "complaints": len(items),
        "open": sum(1 for m in times if m["open"]),
        "surveys": len(csats),
        "csat": round(sum(csats) / len(csats), 2) if csats else None,
        "nps": _nps([x[2] for x in items if x[2] is not None]),
        "sla_compliance": round(len(kept) / len(items), 4),
        **{f"mean_{k}": _mean([m[k] for m in times]) for k in MEAN_TIMES},
    }


def departments(svc: ComplaintService, department: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for c in records.list_complaints(svc.crm, department=department, limit=None):
        rows.append(
            {
                "department": c.department or "-",
                "id": c.id,
                "category": c.category,
                "stage": c.stage,
                "root_cause": c.root_cause,
            }
        )
    return sorted(rows, key=lambda r: (r["department"], r["id"]))


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _nps(scores: list[int]) -> float | None:
    """Net promoter score of 0-10 answers: % promoters (9-10) minus % detractors (0-6)."""
    if not scores:
        return None
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores), 1)


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
    for by in GROUPINGS:
        rows = report(svc, by, as_of=as_of)
        chart = bar_chart(rows, by, "complaints", f"Complaints by {by}")
        surveyed = [r for r in rows if r["csat"] is not None]
        if surveyed:
            chart += bar_chart(surveyed, by, "csat", f"Mean CSAT (1-5) by {by}")
        blocks.append({"by": by, "rows": rows, "chart": chart})
    return svc.crm.templates.get_template("complaints/report.html").render(
        blocks=blocks, columns=REPORT_COLUMNS
    )
