"""Running an analysis by name, as ``crmkit segment <kind>`` does (for the HTTP API).

:func:`run_analysis` checks that the options given belong to the kind, then calls the same
report functions the commands call (which authorise ``segmentation.run`` and keep only the
rows of customers the actor may see); ``snapshot`` saves the scheme's result through
:func:`.snapshots.take_snapshot` (``segmentation.snapshot``, audited).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import attrs

from crmkit.plugin import ValidationError, jsonable

from . import access, analyses_cli, profiling
from . import snapshots as snaps
from .analyses import DEFAULT_DISCOUNT_RATE
from .packs import all_packs, run_pack_counted
from .schemas import AnalysisResult, AnalysisRun
from .scope import check_scope

#: the options each kind takes (besides as_of and scope)
OPTIONS: dict[str, tuple[str, ...]] = {
    "rfm": ("bins", "snapshot"),
    "abc": ("measure", "classes", "discount_rate", "relationships", "summary", "snapshot"),
    "pyramid": ("measure", "tiers", "discount_rate", "relationships", "summary", "snapshot"),
    "matrix": ("measure", "months", "potential_attribute", "current_split", "potential_split",
               "relationships", "summary"),
    "clusters": ("k", "attributes", "seed", "members"),
    "breakdown": ("dimensions", "age_bands", "months"),
    "clv": ("time_unit", "horizon", "discount_rate", "margin", "sample", "seed"),
}  # fmt: skip
PACK_OPTIONS = ("snapshot",)


def kinds(crm: Any) -> list[str]:
    return [*OPTIONS, *sorted(all_packs(crm))]


def _given(run: AnalysisRun) -> dict[str, Any]:
    """The options set to something other than their default."""
    defaults = AnalysisRun(as_of=run.as_of)
    return {
        f.name: getattr(run, f.name)
        for f in attrs.fields(AnalysisRun)
        if f.name not in ("as_of", "scope") and getattr(run, f.name) != getattr(defaults, f.name)
    }


def check_options(crm: Any, kind: str, run: AnalysisRun) -> dict[str, Any]:
    """The options given, refused when ``kind`` does not take one of them."""
    if kind in OPTIONS:
        allowed = OPTIONS[kind]
    elif kind in all_packs(crm):
        allowed = PACK_OPTIONS
    else:
        raise ValidationError(
            f"segmentation: unknown analysis {kind!r}; use one of {', '.join(kinds(crm))}",
            field="kind",
        )
    given = _given(run)
    for name in given:
        if name not in allowed:
            raise ValidationError(
                f"segmentation: {kind} takes no option {name!r}; it takes "
                f"{', '.join(allowed) or 'none'}",
                field=name,
            )
    _check_values(run)
    if given.get("snapshot") and len(given) > 1:
        extra = sorted(set(given) - {"snapshot"})[0]
        raise ValidationError(
            f"segmentation: a snapshot uses the configured settings; drop {extra!r} or "
            "run without snapshot",
            field=extra,
        )
    return given


def _refuse(field: str, message: str) -> ValidationError:
    return ValidationError(f"segmentation: {field} {message}", field=field)


def _check_values(run: AnalysisRun) -> None:
    """What the commands' option types check (click ranges), for the HTTP API."""
    if run.bins is not None and not 2 <= run.bins <= 100:
        raise _refuse("bins", f"must be a whole number from 2 to 100, got {run.bins}")
    if run.seed is not None and not 0 <= run.seed < 2**32:
        raise _refuse("seed", f"must be a whole number from 0 to 4294967295, got {run.seed}")
    for name in ("discount_rate", "current_split", "potential_split"):
        value = getattr(run, name)
        if value is not None and not value.is_finite():
            raise _refuse(name, f"must be a number, got {value}")
    for name in ("horizon", "margin"):
        value = getattr(run, name)
        if value is not None and not math.isfinite(value):
            raise _refuse(name, f"must be a finite number, got {value}")


def run_analysis(crm: Any, kind: str, run: AnalysisRun) -> AnalysisResult:
    """Run ``kind`` with ``run``'s options, as the command of the same name does."""
    given = check_options(crm, kind, run)
    scope = check_scope(run.scope)
    as_of = run.as_of
    access.visible_owners(crm, access.RUN)  # refuse before any work
    if run.snapshot:
        crm.authorise(access.SNAPSHOT)
    figures: dict[str, Any] = {}
    left_out = None
    if kind in OPTIONS:
        rows, figures, left_out = _REPORTS[kind](crm, as_of, scope, run)
    else:
        owners = access.visible_owners(crm, access.RUN)
        rows, left_out = run_pack_counted(crm, kind, as_of, scope)
        if run.snapshot:
            snap = snaps.take_snapshot(crm, kind, as_of, scope, rows=rows, left_out=left_out)
            shown = jsonable(access.keep_visible(crm, rows, owners))
            return AnalysisResult(kind, as_of, scope, snap.left_out or 0, shown, {}, snap.id)
        rows = jsonable(access.keep_visible(crm, rows, owners))
    snapshot_id = None
    if given.get("snapshot"):
        snapshot_id = snaps.take_snapshot(crm, kind, as_of, scope).id
    if left_out is None:
        left_out = profiling.count_left_out(crm, as_of, scope)
    return AnalysisResult(kind, as_of, scope, int(left_out), rows, figures, snapshot_id)


Report = tuple[list[dict[str, Any]], dict[str, Any], int | None]


def _rate(run: AnalysisRun) -> Any:
    return DEFAULT_DISCOUNT_RATE if run.discount_rate is None else run.discount_rate


def _rfm(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    return jsonable(analyses_cli.rfm_report(crm, as_of, scope, run.bins)), {}, None


def _abc(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    rows = analyses_cli.abc_report(
        crm, as_of, scope, measure=run.measure, classes=run.classes,
        discount_rate=_rate(run), relationships=run.relationships, summary=run.summary,
    )  # fmt: skip
    return rows, {}, None


def _pyramid(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    rows = analyses_cli.pyramid_report(
        crm, as_of, scope, measure=run.measure, tiers=run.tiers,
        discount_rate=_rate(run), relationships=run.relationships, summary=run.summary,
    )  # fmt: skip
    return rows, {}, None


def _matrix(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    options: dict[str, Any] = {
        "measure": run.measure or "revenue",
        "months": 12 if run.months is None else run.months,
        "current_split": run.current_split,
        "potential_split": run.potential_split,
        "relationships": run.relationships,
    }
    if run.potential_attribute is not None:
        options["potential_attribute"] = run.potential_attribute
    return analyses_cli.matrix_report(crm, as_of, scope, summary=run.summary, **options), {}, None


def _clusters(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    report = analyses_cli.clusters_report(
        crm, as_of, scope, members=run.members, k=run.k, attributes=run.attributes,
        seed=run.seed or 0,
    )  # fmt: skip
    rows = report.pop("rows")
    left_out = report.pop("left_out_profiling")
    return rows, report, left_out


def _breakdown(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    options: dict[str, Any] = {"months": run.months}
    if run.age_bands:
        options["age_bands"] = run.age_bands
    rows = analyses_cli.breakdown_report(crm, as_of, scope, list(run.dimensions), **options)
    return rows, {}, None


def _clv(crm: Any, as_of: dt.date, scope: Mapping[str, str], run: AnalysisRun) -> Report:
    from . import clv

    owners = access.visible_owners(crm, access.RUN)
    settings = clv.Settings(
        run.time_unit or "week",
        run.horizon,
        0.10 if run.discount_rate is None else float(run.discount_rate),
        run.margin,
    )
    sample = 50_000 if run.sample is None else run.sample
    model = clv.fit_model(crm, as_of, dict(scope), settings, sample, run.seed or 0)
    rows = [r for chunk in clv.score(crm, model) for r in access.keep_visible(crm, chunk, owners)]
    return jsonable(rows), jsonable(model.header()), model.left_out


_REPORTS = {
    "rfm": _rfm,
    "abc": _abc,
    "pyramid": _pyramid,
    "matrix": _matrix,
    "clusters": _clusters,
    "breakdown": _breakdown,
    "clv": _clv,
}
