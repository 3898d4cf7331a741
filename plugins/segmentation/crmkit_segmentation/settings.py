"""The ``[segmentation]`` table of crmkit.toml: defaults, validation, typed accessors."""

from __future__ import annotations

from typing import Any

import crmkit

from .rfm import DEFAULT_SEGMENT_MAP

RuleMap = tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]


def map_to_toml(segment_map: RuleMap) -> list[dict[str, Any]]:
    """An R×F rule map as TOML-friendly tables ``{segment, r = [lo, hi], f = [lo, hi]}``."""
    return [{"segment": s, "r": list(r), "f": list(f)} for s, r, f in segment_map]


RETAIL_NAMES = {
    "champions": "best customers",
    "loyal": "loyal regulars",
    "potential loyalists": "rising regulars",
    "new": "first-time shoppers",
    "promising": "recent one-timers",
    "need attention": "average shoppers",
    "about to sleep": "drifting",
    "at risk": "lapsing regulars",
    "can't lose": "lapsing best customers",
    "hibernating": "dormant",
    "lost": "lost",
}

DEFAULTS: dict[str, Any] = {
    # RFM: scores 1..rfm_bins (5 = quintiles); the R×F map names the segments, first match wins
    "rfm_bins": 5,
    "rfm_map": map_to_toml(DEFAULT_SEGMENT_MAP),
    # ABC on cumulative share of the measure: A up to 80 %, B up to 95 %, C the rest
    "abc_measure": "revenue",
    "abc_thresholds": {"A": 0.80, "B": 0.95},
    # value pyramid: share of customers from the top; "small" is the rest
    "pyramid_measure": "revenue",
    "pyramid_shares": {"vip": 0.01, "major": 0.04, "ordinary": 0.15},
    # campaign lists include only customers who granted this consent purpose
    "campaign_consent": "marketing",
    # schemes the demo data hook snapshots after `crmkit demo`
    "demo_snapshot_schemes": ["rfm", "abc", "pyramid"],
    # packs
    "retail_map": map_to_toml(tuple((RETAIL_NAMES[s], r, f) for s, r, f in DEFAULT_SEGMENT_MAP)),
    "travel_window_days": 365,
    "travel_night_categories": ["hotel", "room", "nights"],
    "travel_mile_categories": ["flight", "air", "miles"],
    "travel_tiers": [
        {"tier": "platinum", "trips": 50, "nights": 60, "miles": 100000},
        {"tier": "gold", "trips": 25, "nights": 30, "miles": 50000},
        {"tier": "silver", "trips": 10, "nights": 10, "miles": 25000},
    ],
    "b2b_window_days": 365,
    "b2b_trend_band": 0.10,
    "finance_assets_attribute": "assets_held",
    "finance_products_attribute": "products_held",
    "finance_asset_bands": [
        {"band": "private", "min": 1000000},
        {"band": "affluent", "min": 100000},
        {"band": "mass", "min": 0},
    ],
    "finance_cross_sold_min": 3,
}

MEASURES = ("revenue", "margin", "clv")
TRAVEL_TIER_KEYS = {"tier", "trips", "nights", "miles"}


def parse_map(raw: Any, key: str, scale: int = 5) -> RuleMap:
    """Check a TOML rule map and return it as rule tuples; it must cover every R×F cell."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{key} must be a non-empty list of {{segment, r, f}} tables")
    rules = []
    for i, rule in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(rule, dict) or set(rule) != {"segment", "r", "f"}:
            raise ValueError(f"{where} must have exactly the keys segment, r, f")
        name = rule["segment"]
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}.segment must be a non-empty name")
        ranges = []
        for axis in ("r", "f"):
            lo_hi = rule[axis]
            if (
                not isinstance(lo_hi, list | tuple)
                or len(lo_hi) != 2
                or not all(isinstance(v, int) and 1 <= v <= scale for v in lo_hi)
                or lo_hi[0] > lo_hi[1]
            ):
                raise ValueError(f"{where}.{axis} must be [low, high] with 1 <= low <= high <= 5")
            ranges.append((lo_hi[0], lo_hi[1]))
        rules.append((name, ranges[0], ranges[1]))
    for r in range(1, scale + 1):
        for f in range(1, scale + 1):
            if not any(a <= r <= b and c <= f <= d for _, (a, b), (c, d) in rules):
                raise ValueError(f"{key} has no rule for R={r}, F={f}; add a rule covering it")
    return tuple(rules)


def _shares(raw: Any, key: str, names: tuple[str, ...] | None = None) -> None:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{key} must be a table of name = share")
    if names is not None and list(raw) != list(names):
        raise ValueError(f"{key} must have the keys {', '.join(names)} in this order")
    for name, share in raw.items():
        if not isinstance(share, int | float) or isinstance(share, bool) or not 0 < share < 1:
            raise ValueError(f"{key}.{name} must be a share between 0 and 1, got {share!r}")


def validate(values: dict[str, Any]) -> None:
    """Refuse settings that do not make sense, with a ``ValueError`` naming the key."""
    _check_rfm(values)
    _check_value_schemes(values)
    if not isinstance(values["campaign_consent"], str) or not values["campaign_consent"]:
        raise ValueError("campaign_consent must be a consent purpose such as 'marketing'")
    _check_packs(values)


def _check_rfm(values: dict[str, Any]) -> None:
    bins = values["rfm_bins"]
    if not isinstance(bins, int) or isinstance(bins, bool) or not 2 <= bins <= 100:
        raise ValueError(f"rfm_bins must be an integer from 2 to 100, got {bins!r}")
    parse_map(values["rfm_map"], "rfm_map")
    parse_map(values["retail_map"], "retail_map")


def _check_value_schemes(values: dict[str, Any]) -> None:
    """ABC and the value pyramid: measures, thresholds and shares."""
    for key in ("abc_measure", "pyramid_measure"):
        if values[key] not in MEASURES:
            raise ValueError(f"{key} must be one of {', '.join(MEASURES)}, got {values[key]!r}")
    _shares(values["abc_thresholds"], "abc_thresholds", ("A", "B"))
    a, b = values["abc_thresholds"]["A"], values["abc_thresholds"]["B"]
    if not a < b:
        raise ValueError(f"abc_thresholds: A ({a}) must be below B ({b})")
    _shares(values["pyramid_shares"], "pyramid_shares")
    if sum(values["pyramid_shares"].values()) >= 1:
        raise ValueError("pyramid_shares must add up to less than 1 (the rest is 'small')")


def _check_packs(values: dict[str, Any]) -> None:
    """The travel, b2b and finance packs' settings."""
    for key in ("travel_window_days", "b2b_window_days", "finance_cross_sold_min"):
        if not isinstance(values[key], int) or values[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {values[key]!r}")
    band = values["b2b_trend_band"]
    if not isinstance(band, int | float) or not 0 <= band < 1:
        raise ValueError(f"b2b_trend_band must be a share from 0 to 1, got {band!r}")
    for i, tier in enumerate(values["travel_tiers"]):
        if not isinstance(tier, dict) or "tier" not in tier or not set(tier) <= TRAVEL_TIER_KEYS:
            raise ValueError(f"travel_tiers[{i}] needs 'tier' and some of trips, nights, miles")
    for i, band_row in enumerate(values["finance_asset_bands"]):
        if not isinstance(band_row, dict) or set(band_row) != {"band", "min"}:
            raise ValueError(f"finance_asset_bands[{i}] must have exactly 'band' and 'min'")
    mins = [b["min"] for b in values["finance_asset_bands"]]
    if mins != sorted(mins, reverse=True) or mins[-1] != 0:
        raise ValueError("finance_asset_bands must go from the highest 'min' down to 0")


def spec() -> crmkit.SettingsSpec:
    return crmkit.SettingsSpec("segmentation", DEFAULTS, validate)


def settings_of(crm: Any) -> dict[str, Any]:
    """This plugin's settings (the defaults when the plugin is used without being enabled)."""
    return {**DEFAULTS, **(getattr(crm, "settings", {}) or {}).get("segmentation", {})}


def rfm_map(crm: Any, key: str = "rfm_map") -> RuleMap:
    return parse_map(settings_of(crm)[key], key)
