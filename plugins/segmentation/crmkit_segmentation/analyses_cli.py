"""``crmkit segment rfm|abc|pyramid|matrix|clusters|breakdown``: the value analyses.

Each command but ``rfm`` (whose rows come from :func:`.schemes.rfm_rows`) has a
``*_report`` function returning JSON-ready rows (or, for clusters, a mapping with ``rows``
and the fit's figures), so other front ends can reuse it; the command only parses options
and hands the result to :func:`.output.emit_report`. The ``--as-of`` and ``--scope``
options every segmentation command takes are defined here once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from crmkit.plugin import ValidationError, jsonable

from . import access
from .abc import abc_classes
from .analyses import (
    DEFAULT_DISCOUNT_RATE,
    MEASURES,
    cumulative_bands,
    parse_bands,
    parse_pairs,
    relationship_map,
    summarise,
)
from .breakdown import DEFAULT_AGE_BANDS, DEFAULT_DIMENSIONS, DIMENSIONS, market_breakdown
from .matrix import QUADRANTS, value_matrix
from .output import FORMATS, Chart, auto_charts, emit_report
from .profiling import count_left_out, notes
from .pyramid import value_pyramid
from .schemes import known_labels, rfm_rows
from .scope import add_months, as_of_end, parse_scope
from .settings import settings_of

Rows = list[dict[str, Any]]


def left_out_notes(
    crm: Any, as_of: dt.date, scope: Mapping[str, str] | None, months: int | None = None
) -> list[str]:
    """The summary line counting the customers an analysis left out because they withdrew
    profiling consent (none when nobody was); ``months``: only orders of the last months.
    ``as_of`` may be the datetime click parsed."""
    as_of = as_of.date() if isinstance(as_of, dt.datetime) else as_of
    start = as_of_end(add_months(as_of, -months)) if months else None
    return notes(count_left_out(crm, as_of, scope, start))


def rfm_report(
    crm: Any, as_of: dt.date, scope: Mapping[str, str] | None = None, bins: int | None = None
) -> Rows:
    """RFM rows (``segmentation.run``; only the customers the actor may see)."""
    owners = access.visible_owners(crm, access.RUN)
    return access.keep_visible(crm, rfm_rows(crm, as_of, dict(scope or {}), bins), owners)


def _bands(text: str | None, default: Any, option: str) -> list[tuple[str, Decimal | None]]:
    return list(default) if not text else parse_bands(text, option)


def abc_report(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    *,
    measure: str | None = None,
    classes: str | None = None,
    discount_rate: Decimal = DEFAULT_DISCOUNT_RATE,
    relationships: Mapping[str, str] | None = None,
    summary: bool = False,
) -> Rows:
    """ABC rows (or one row per class with ``summary``); ``classes`` like ``"A=80,B=95,C"``.

    Without ``measure`` or ``classes``, the ``abc_measure`` and ``abc_thresholds`` settings
    apply (the same ones snapshots use). Needs ``segmentation.run``; the rows are those of
    customers the actor may see, the summary counts everyone.
    """
    owners = access.visible_owners(crm, access.RUN)
    cfg = settings_of(crm)
    measure = measure or cfg["abc_measure"]
    configured = [(k, Decimal(str(v))) for k, v in cfg["abc_thresholds"].items()] + [("C", None)]
    bands = _bands(classes, configured, "--classes")
    rows = abc_classes(
        crm, as_of, scope, measure, bands, discount_rate=discount_rate, relationships=relationships
    )
    if summary:
        labels = [label for label, _ in cumulative_bands(bands, cumulative=True, option="")]
        rows = summarise(rows, "class", labels, relationship_map("abc", labels, relationships))
    else:
        rows = access.keep_visible(crm, rows, owners)
    return jsonable(rows)


def pyramid_report(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    *,
    measure: str | None = None,
    tiers: str | None = None,
    discount_rate: Decimal = DEFAULT_DISCOUNT_RATE,
    relationships: Mapping[str, str] | None = None,
    summary: bool = False,
) -> Rows:
    """Pyramid rows (or one row per tier); ``tiers`` like ``"vip=1,major=4,ordinary=15,small"``.

    Without ``measure`` or ``tiers``, the ``pyramid_measure`` and ``pyramid_shares`` settings
    apply (the same ones snapshots use). Needs ``segmentation.run``; the rows are those of
    customers the actor may see, the summary counts everyone.
    """
    owners = access.visible_owners(crm, access.RUN)
    cfg = settings_of(crm)
    measure = measure or cfg["pyramid_measure"]
    configured = [(k, Decimal(str(v))) for k, v in cfg["pyramid_shares"].items()]
    bands = _bands(tiers, [*configured, ("small", None)], "--tiers")
    rows = value_pyramid(
        crm, as_of, scope, measure, bands, discount_rate=discount_rate, relationships=relationships
    )
    if summary:
        labels = [label for label, _ in bands]
        levels = relationship_map("pyramid", labels, relationships)
        rows = summarise(rows, "tier", labels, levels)
    else:
        rows = access.keep_visible(crm, rows, owners)
    return jsonable(rows)


def matrix_report(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    *,
    summary: bool = False,
    **options: Any,
) -> Rows:
    """Matrix rows (see :func:`.matrix.value_matrix` for ``options``), or one per quadrant.
    Needs ``segmentation.run``; rows of customers the actor may see, summaries of everyone."""
    owners = access.visible_owners(crm, access.RUN)
    rows = value_matrix(crm, as_of, scope, **options)
    if summary:
        levels = relationship_map("matrix", QUADRANTS, options.get("relationships"))
        out = []
        for quadrant in QUADRANTS:
            mine = [r for r in rows if r["quadrant"] == quadrant]
            out.append(
                {
                    "quadrant": quadrant,
                    "customers": len(mine),
                    "current": sum((r["current"] for r in mine), Decimal(0)),
                    "potential": sum((r["potential"] for r in mine), Decimal(0)),
                    "relationship": levels[quadrant],
                }
            )
        rows = out
    else:
        rows = access.keep_visible(crm, rows, owners)
    return jsonable(rows)


def clusters_report(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    *,
    members: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """``{left_out_profiling, k, silhouette, silhouette_by_k, features, rows}``: profiles, or
    members; ``left_out_profiling`` counts the customers left out for withdrawn profiling
    consent. Needs ``segmentation.run``; members are those the actor may see."""
    from .clusters import cluster_customers  # numpy/scipy only when clustering

    owners = access.visible_owners(crm, access.RUN)
    result = cluster_customers(crm, as_of, scope, **options)
    return jsonable(
        {
            "left_out_profiling": count_left_out(crm, as_of, scope),
            "k": result.k,
            "silhouette": result.silhouette,
            "silhouette_by_k": result.silhouette_by_k,
            "features": list(result.features),
            "rows": access.keep_visible(crm, result.members, owners)
            if members
            else result.profiles,
        }
    )


def breakdown_report(
    crm: Any,
    as_of: dt.date,
    scope: Mapping[str, str] | None = None,
    dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
    **options: Any,
) -> Rows:
    """Breakdown rows (``dimension, group, customers, orders, revenue, margin, ...``):
    company-wide figures (``segmentation.run``)."""
    access.visible_owners(crm, access.RUN)
    return jsonable(
        market_breakdown(crm, as_of, scope, dimensions or DEFAULT_DIMENSIONS, **options)
    )


# -- options ------------------------------------------------------------------------------


def as_of_option(func: Any) -> Any:
    """``--as-of DATE``, the day every segmentation command computes for."""
    return click.option(
        "--as-of",
        "as_of",
        required=True,
        type=click.DateTime(["%Y-%m-%d"]),
        help="Ignore orders after this date (YYYY-MM-DD).",
    )(func)


def scope_option(func: Any) -> Any:
    """``--scope field=value`` (repeatable), the customers a command looks at."""
    return click.option(
        "--scope", multiple=True, help="field=value filter, e.g. region=North (ANDed)"
    )(func)


def _common(func: Any) -> Any:
    return as_of_option(scope_option(func))


def _decimal(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValidationError(f"{option} {value!r}: expected a number, e.g. 0.10") from None


def _value_options(func: Any) -> Any:
    func = click.option(
        "--relationship",
        multiple=True,
        help="label=level (basic, reactive, accountable, proactive, partnership).",
    )(func)
    func = click.option("--summary", is_flag=True, help="One row per class with totals.")(func)
    func = click.option(
        "--discount-rate",
        default=str(DEFAULT_DISCOUNT_RATE),
        show_default=True,
        help="Yearly rate compounding past margin for --measure clv.",
    )(func)
    return click.option(
        "--measure",
        type=click.Choice(MEASURES),
        default=None,
        help="revenue, margin or clv = historical CLV (margin compounded to as-of); "
        "default: the abc_measure / pyramid_measure setting.",
    )(func)


def _day(as_of: dt.datetime) -> str:
    return as_of.date().isoformat()


def add_commands(segment: click.Group) -> None:
    """Add ``rfm``, ``abc``, ``pyramid``, ``matrix``, ``clusters`` and ``breakdown`` to
    ``segment``."""
    from crmkit.plugin import format_option, pass_crm

    @segment.command("rfm")
    @as_of_option
    @scope_option
    @click.option("--bins", type=click.IntRange(2, 100), help="Score bins [setting rfm_bins: 5].")
    @format_option(*FORMATS)
    @pass_crm
    def rfm_cmd(crm, as_of, scope, bins, fmt):
        "RFM scores (quintiles by default) computed in SQL, named through the RFM map."
        filters = parse_scope(scope)
        rows = rfm_report(crm, as_of.date(), filters, bins)
        chart = auto_charts(rows, known_labels(crm, "rfm")) if fmt == "html" else None
        title = f"RFM as of {_day(as_of)}"
        left = left_out_notes(crm, as_of, filters)
        emit_report(rows, fmt, title=title, chart=chart, crm=crm, notes=left)

    @segment.command("abc")
    @_common
    @_value_options
    @click.option(
        "--classes",
        help="Cumulative % limits, last takes the rest, e.g. A=80,B=95,C "
        "[default: the abc_thresholds setting].",
    )
    @format_option(*FORMATS)
    @pass_crm
    def abc_cmd(crm, as_of, scope, measure, discount_rate, summary, relationship, classes, fmt):
        "ABC classes by cumulative share of value, computed in SQL."
        filters = parse_scope(scope)
        rows = abc_report(
            crm,
            as_of.date(),
            filters,
            measure=measure,
            classes=classes,
            discount_rate=_decimal(discount_rate, "--discount-rate"),
            relationships=parse_pairs(relationship, "--relationship"),
            summary=summary,
        )
        measure = measure or settings_of(crm)["abc_measure"]
        title = f"ABC by {measure} as of {_day(as_of)}"
        emit_report(rows, fmt, title=title, crm=crm, notes=left_out_notes(crm, as_of, filters))

    @segment.command("pyramid")
    @_common
    @_value_options
    @click.option(
        "--tiers",
        help="% of customers per tier, top first, e.g. vip=1,major=4,ordinary=15,small "
        "[default: the pyramid_shares setting].",
    )
    @format_option(*FORMATS)
    @pass_crm
    def pyramid_cmd(crm, as_of, scope, measure, discount_rate, summary, relationship, tiers, fmt):
        "Value pyramid: tiers by share of customers ranked by value, computed in SQL."
        filters = parse_scope(scope)
        rows = pyramid_report(
            crm,
            as_of.date(),
            filters,
            measure=measure,
            tiers=tiers,
            discount_rate=_decimal(discount_rate, "--discount-rate"),
            relationships=parse_pairs(relationship, "--relationship"),
            summary=summary,
        )
        measure = measure or settings_of(crm)["pyramid_measure"]
        title = f"Value pyramid by {measure} as of {_day(as_of)}"
        emit_report(rows, fmt, title=title, crm=crm, notes=left_out_notes(crm, as_of, filters))

    @segment.command("matrix")
    @_common
    @click.option(
        "--measure", type=click.Choice(("revenue", "margin")), default="revenue", show_default=True
    )
    @click.option("--months", default=12, show_default=True, help="Current-value window.")
    @click.option(
        "--potential-attribute",
        default="potential_value",
        show_default=True,
        help="Customer attribute with the estimated yearly wallet.",
    )
    @click.option("--current-split", help="High current value above this [median].")
    @click.option("--potential-split", help="High potential above this [median].")
    @click.option("--relationship", multiple=True, help="quadrant=level.")
    @click.option("--summary", is_flag=True, help="One row per quadrant with totals.")
    @format_option(*FORMATS)
    @pass_crm
    def matrix_cmd(
        crm, as_of, scope, measure, months, potential_attribute, current_split,
        potential_split, relationship, summary, fmt,
    ):  # fmt: skip
        "Current × potential value quadrants with a relationship level each."
        filters = parse_scope(scope)
        rows = matrix_report(
            crm,
            as_of.date(),
            filters,
            summary=summary,
            measure=measure,
            months=months,
            potential_attribute=potential_attribute,
            current_split=_decimal(current_split, "--current-split"),
            potential_split=_decimal(potential_split, "--potential-split"),
            relationships=parse_pairs(relationship, "--relationship"),
        )
        title = f"Value matrix as of {_day(as_of)}"
        emit_report(rows, fmt, title=title, crm=crm, notes=left_out_notes(crm, as_of, filters))

    @segment.command("clusters")
    @_common
    @click.option("--k", "k", type=int, help="Number of clusters [chosen by silhouette, 2..8].")
    @click.option("--attribute", multiple=True, help="Numeric custom attribute to add.")
    @click.option(
        "--seed", default=0, show_default=True, help="Random seed (same seed, same result)."
    )
    @click.option("--members", is_flag=True, help="List each customer's cluster instead.")
    @format_option(*FORMATS)
    @pass_crm
    def clusters_cmd(crm, as_of, scope, k, attribute, seed, members, fmt):
        "k-means clusters on standardised RFM (+ attributes), with a profile of each."
        report = clusters_report(
            crm,
            as_of.date(),
            parse_scope(scope),
            members=members,
            k=k,
            attributes=attribute,
            seed=seed,
        )
        title = f"Clusters (k={report['k']}) as of {_day(as_of)}"
        chart = None if members else {"title": "customers per cluster", "bars": [
            (f"cluster {p['cluster']}", p["customers"]) for p in report["rows"]
        ]}  # fmt: skip
        left = notes(report["left_out_profiling"])
        emit_report(report, fmt, title=title, chart=chart, crm=crm, notes=left)

    @segment.command("breakdown")
    @_common
    @click.option(
        "--by",
        "dimensions",
        multiple=True,
        type=click.Choice(DIMENSIONS),
        help="Dimension (repeat) [industry, occupation, age_band, region].",
    )
    @click.option(
        "--age-bands",
        default=",".join(map(str, DEFAULT_AGE_BANDS)),
        show_default=True,
        help="Band lower bounds in years.",
    )
    @click.option("--months", type=int, help="Only orders of the last N months [all].")
    @format_option(*FORMATS)
    @pass_crm
    def breakdown_cmd(crm, as_of, scope, dimensions, age_bands, months, fmt):
        "Customers, orders, revenue and margin by industry, occupation, age band, region."
        try:
            bands = [int(x) for x in age_bands.split(",") if x.strip()]
        except ValueError:
            raise ValidationError(
                f"--age-bands {age_bands!r}: expected whole years, e.g. 18,25,35"
            ) from None
        filters = parse_scope(scope)
        rows = breakdown_report(
            crm,
            as_of.date(),
            filters,
            list(dimensions),
            age_bands=bands,
            months=months,
        )
        charts = [
            Chart(
                f"revenue by {d}",
                tuple((r["group"], Decimal(r["revenue"])) for r in rows if r["dimension"] == d),
            )
            for d in dict.fromkeys(r["dimension"] for r in rows)
        ]
        title = f"Market breakdown as of {_day(as_of)}"
        left = left_out_notes(crm, as_of, filters, months)
        emit_report(rows, fmt, title=title, chart=charts, crm=crm, notes=left)
