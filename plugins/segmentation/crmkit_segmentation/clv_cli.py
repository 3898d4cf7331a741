"""``crmkit segment clv``: fit BG/NBD + Gamma-Gamma and stream every customer's CLV."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from crmkit.plugin import ValidationError, csv_writer

from .analyses_cli import as_of_option, scope_option
from .profiling import notes
from .scope import parse_scope

if TYPE_CHECKING:
    from . import clv

#: clv.TIME_UNIT_DAYS's keys; numpy and scipy load only when ``segment clv`` runs
TIME_UNITS = ("day", "week", "month")

COLUMNS = (
    "customer",
    "x",
    "t_x",
    "T",
    "expected_purchases",
    "p_alive",
    "expected_spend",
    "clv",
    "historical_clv",
)
PER_CUSTOMER = ("x", "t_x", "T", "expected_purchases", "p_alive", "expected_spend", "clv")


def _json(model: clv.Model, chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    """The JSON object, written chunk by chunk so memory stays bounded."""
    head = json.dumps(model.header(), indent=2, ensure_ascii=False)
    yield head[: -len("\n}")] + ',\n  "customers": {'
    sep = "\n"
    for rows in chunks:
        parts = []
        for row in rows:
            body = {k: row[k] for k in (*PER_CUSTOMER, "historical_clv")}
            body = {k: str(v) if k.endswith(("spend", "clv")) else v for k, v in body.items()}
            key = json.dumps(row["customer"], ensure_ascii=False)
            parts.append(f"{sep}    {key}: {json.dumps(body, ensure_ascii=False)}")
            sep = ",\n"
        if parts:
            yield "".join(parts)
    yield "\n  }\n}\n"


def _csv(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    """CSV with a header; cells that a spreadsheet would run as a formula (an external id
    ``=HYPERLINK(...)``) are neutralised by :func:`crmkit.plugin.csv_writer`."""
    buffer = io.StringIO()
    writer = csv_writer(buffer, lineterminator="\n")
    writer.writerow(("customer_id", *COLUMNS))
    for rows in chunks:
        for row in rows:
            writer.writerow([row["customer_id"], *(row[c] for c in COLUMNS)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _table(model: clv.Model, chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    h = model.header()
    bg, gg = h["bgnbd"], h["gamma_gamma"]
    yield (
        f"as of {h['as_of']}, time unit {h['time_unit']}, horizon {h['horizon']:g}, "
        f"discount rate {h['discount_rate']:g}/year, margin {h['margin']:g} "
        f"({h['margin_source']})\n"
        f"fitted on {h['fitted_on']} of {h['customers_in_scope']} customers\n"
        + "".join(f"{line}\n" for line in notes(h["left_out_profiling"]))
        + f"BG/NBD      r={bg['r']:.4g} alpha={bg['alpha']:.4g} a={bg['a']:.4g} b={bg['b']:.4g} "
        f"log-likelihood {bg['log_likelihood']:.2f} ({bg['iterations']} iterations, "
        f"gradient {bg['gradient_norm']:.1e})\n"
        f"Gamma-Gamma p={gg['p']:.4g} q={gg['q']:.4g} gamma={gg['gamma']:.4g} "
        f"log-likelihood {gg['log_likelihood']:.2f} ({gg['iterations']} iterations, "
        f"gradient {gg['gradient_norm']:.1e})\n"
    )
    widths = [max(len(c), 20 if c == "customer" else 12) for c in COLUMNS]
    yield "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()
    yield "  ".join("-" * w for w in widths)
    for rows in chunks:
        lines = []
        for row in rows:
            cells = [str(row[c]) for c in COLUMNS]
            cells[0] = cells[0] if len(cells[0]) <= widths[0] else cells[0][: widths[0] - 1] + "…"
            lines.append("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())
        if lines:
            yield "\n".join(lines)


def _html(model: clv.Model, chunks: Iterator[list[dict[str, Any]]], crm: Any) -> Iterator[str]:
    """The HTML report: fit, CLV per P(alive) band (every customer), first rows (bounded)."""
    from decimal import Decimal

    from .output import MAX_HTML_ROWS, Chart, render_report

    h = model.header()
    bands = ("0-0.25", "0.25-0.5", "0.5-0.75", "0.75-1")
    counts, sums = dict.fromkeys(bands, 0), dict.fromkeys(bands, Decimal(0))
    listed: list[dict[str, Any]] = []
    scored = 0
    for rows in chunks:
        for row in rows:
            band = bands[min(int(float(row["p_alive"]) * 4), 3)]
            counts[band] += 1
            sums[band] += Decimal(str(row["clv"]))
            scored += 1
            if len(listed) < MAX_HTML_ROWS:
                listed.append({"customer_id": row["customer_id"], **{c: row[c] for c in COLUMNS}})
    report = {
        "fit": {k: v for k, v in h.items() if k not in ("bgnbd", "gamma_gamma")},
        "BG/NBD": h["bgnbd"],
        "Gamma-Gamma": h["gamma_gamma"],
        "customers": {"scored": scored, "listed below": len(listed)},
        "rows": listed,
    }
    charts = [
        Chart("customers by P(alive)", tuple(counts.items())),
        Chart("CLV by P(alive)", tuple(sums.items())),
    ]
    title = f"Lifetime value as of {h['as_of']}"
    left = notes(h["left_out_profiling"])
    yield render_report(report, "html", title=title, chart=charts, crm=crm, notes=left)


def add_commands(segment: click.Group) -> None:
    """Add ``clv`` to the ``segment`` group."""
    from crmkit.plugin import format_option, pass_crm

    @segment.command("clv")
    @as_of_option
    @scope_option
    @click.option(
        "--time-unit",
        type=click.Choice(TIME_UNITS),
        default="week",
        show_default=True,
    )
    @click.option("--horizon", type=float, help="In time units; default one year.")
    @click.option(
        "--discount-rate", type=float, default=0.10, show_default=True, help="Annual rate."
    )
    @click.option(
        "--margin",
        type=float,
        help="Share of spend that is margin; default observed from order costs.",
    )
    @click.option(
        "--sample",
        type=int,
        default=50_000,
        show_default=True,
        help="Fit on at most this many customers (seeded uniform sample).",
    )
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--chunk-size", type=int, default=10_000, show_default=True)
    @format_option("table", "json", "csv", "html")
    @pass_crm
    def clv_cmd(
        crm, as_of, scope, time_unit, horizon, discount_rate, margin, sample, seed, chunk_size, fmt
    ):
        """Lifetime value: BG/NBD purchases and P(alive), Gamma-Gamma spend, discounted CLV."""
        if chunk_size < 1:
            raise ValidationError(f"--chunk-size must be at least 1, got {chunk_size}")
        from . import access, clv

        owners = access.visible_owners(crm, access.RUN)
        settings = clv.Settings(time_unit, horizon, discount_rate, margin)
        model = clv.fit_model(
            crm, as_of.date(), parse_scope(scope), settings, sample, seed, chunk_size
        )
        chunks = (access.keep_visible(crm, c, owners) for c in clv.score(crm, model, chunk_size))
        if fmt == "json":
            parts = _json(model, chunks)
        elif fmt == "csv":
            parts = _csv(chunks)
        elif fmt == "html":
            parts = _html(model, chunks, crm)
        else:
            parts = _table(model, chunks)
        for part in parts:
            click.echo(part, nl=fmt == "table")
        if fmt in ("json", "csv"):  # in the header of table and HTML; JSON has the number too
            for line in notes(model.left_out):
                click.echo(line, err=True)
