"""The schemes a snapshot can store: ``rfm``, ``abc``, ``pyramid`` and every industry pack.

Each scheme turns (crm, as_of, scope) into rows with ``customer_id`` and ``segment``;
customers who withdrew profiling consent are never among them (:mod:`.profiling`).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from crmkit.plugin import ValidationError

from . import rfm
from .profiling import count_left_out
from .settings import rfm_map, settings_of

Classifier = Callable[[Any, dt.date, dict[str, str]], list[dict[str, Any]]]


def rfm_rows(
    crm: Any, as_of: dt.date, scope: dict[str, str], bins: int | None = None
) -> list[dict[str, Any]]:
    """RFM rows with named segments; bins and map from the settings (``bins`` overrides)."""
    bins = bins or settings_of(crm)["rfm_bins"]
    return rfm.name_segments(rfm.rfm_scores(crm, as_of, scope, bins), bins, rfm_map(crm))


def _abc(crm: Any, as_of: dt.date, scope: dict[str, str]) -> list[dict[str, Any]]:
    from .abc import abc_classes

    cfg = settings_of(crm)
    classes = [(k, Decimal(str(v))) for k, v in cfg["abc_thresholds"].items()] + [("C", None)]
    rows = abc_classes(crm, as_of, scope, cfg["abc_measure"], classes)
    return [{**r, "segment": r["class"]} for r in rows]


def _pyramid(crm: Any, as_of: dt.date, scope: dict[str, str]) -> list[dict[str, Any]]:
    from .pyramid import value_pyramid

    cfg = settings_of(crm)
    tiers = [(k, Decimal(str(v))) for k, v in cfg["pyramid_shares"].items()]
    rows = value_pyramid(crm, as_of, scope, cfg["pyramid_measure"], [*tiers, ("small", None)])
    return [{**r, "segment": r["tier"]} for r in rows]


def _analysis(name: str) -> Classifier | None:
    """ABC and pyramid come from their analysis modules when those are installed."""
    if importlib.util.find_spec(f"crmkit_segmentation.{name}") is None:
        return None
    return {"abc": _abc, "pyramid": _pyramid}[name]


def builtin(crm: Any) -> dict[str, Classifier]:
    found: dict[str, Classifier] = {"rfm": rfm_rows}
    for name in ("abc", "pyramid"):
        fn = _analysis(name)
        if fn is not None:
            found[name] = fn
    return found


def names(crm: Any) -> list[str]:
    from .packs import all_packs

    return [*builtin(crm), *sorted(all_packs(crm))]


def check_scheme(crm: Any, scheme: str) -> None:
    if scheme not in names(crm):
        raise ValidationError(
            f"segmentation: unknown scheme {scheme!r}; known schemes: {', '.join(names(crm))}"
        )


def classify(
    crm: Any, scheme: str, as_of: dt.date, scope: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """Rows (``customer_id``, ``segment``, ...) of ``scheme``, the parameters it used and
    how many customers it left out because they withdrew profiling consent."""
    from .packs import all_packs, run_pack_counted

    own = builtin(crm)
    if scheme in own:
        rows = own[scheme](crm, as_of, scope)
        return rows, params_of(crm, scheme), count_left_out(crm, as_of, scope)
    if scheme in all_packs(crm):
        rows, left_out = run_pack_counted(crm, scheme, as_of, scope)
        return rows, params_of(crm, scheme), left_out
    check_scheme(crm, scheme)
    raise AssertionError("unreachable")


def params_of(crm: Any, scheme: str) -> dict[str, Any]:
    """The settings a scheme ran with, stored with its snapshot."""
    cfg = settings_of(crm)
    if scheme == "rfm":
        return {"bins": cfg["rfm_bins"], "map": cfg["rfm_map"]}
    if scheme == "abc":
        return {"measure": cfg["abc_measure"], "thresholds": cfg["abc_thresholds"]}
    if scheme == "pyramid":
        return {"measure": cfg["pyramid_measure"], "shares": cfg["pyramid_shares"]}
    return {"pack": scheme}


def known_labels(crm: Any, scheme: str) -> list[str]:
    """Segment names in display order (best first) when the scheme declares them."""
    from .packs import all_packs

    if scheme == "rfm":
        return list(dict.fromkeys(name for name, _, _ in reversed(rfm_map(crm))))
    if scheme == "abc":
        return ["A", "B", "C"]
    if scheme == "pyramid":  # the configured tiers, top first; "small" takes the rest
        return [*settings_of(crm)["pyramid_shares"], "small"]
    pack = all_packs(crm).get(scheme)
    return list(pack.labels) if pack is not None else []
