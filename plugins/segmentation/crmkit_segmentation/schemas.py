"""Request and response shapes of segmentation's HTTP API (``/api/v1/segmentation``).

The server decodes query strings and JSON bodies into the request classes (an unknown
field, a wrong type or a missing required field is a 422 before a handler runs) and the
OpenAPI document is generated from these classes. Money is a decimal string, dates
``YYYY-MM-DD``, times ISO 8601 with an offset.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import attrs


@attrs.define
class AnalysisRun:
    """``POST /analyses/{kind}``: the options of ``crmkit segment <kind>``. Each kind takes
    only its own options (another one is a 422 naming it):

    * ``rfm``: bins, snapshot
    * ``abc``: measure, classes, discount_rate, relationships, summary, snapshot
    * ``pyramid``: measure, tiers, discount_rate, relationships, summary, snapshot
    * ``matrix``: measure, months, potential_attribute, current_split, potential_split,
      relationships, summary
    * ``clusters``: k, attributes, seed, members
    * ``breakdown``: dimensions, age_bands, months
    * ``clv``: time_unit, horizon, discount_rate, margin, sample, seed
    * an industry pack's name: snapshot

    ``snapshot: true`` also saves the result as a snapshot (``segmentation.snapshot``); it
    uses the configured settings, so it takes no other option.
    """

    #: ignore orders after this day
    as_of: dt.date
    #: customer filter, e.g. {"region": "North", "attributes.tier": "gold"}
    scope: dict[str, str] = attrs.field(factory=dict)
    bins: int | None = None
    #: revenue, margin or clv
    measure: str | None = None
    #: cumulative % limits, e.g. "A=80,B=95,C"
    classes: str | None = None
    #: % of customers per tier, e.g. "vip=1,major=4,ordinary=15,small"
    tiers: str | None = None
    #: yearly rate (ABC/pyramid clv measure; CLV discounting)
    discount_rate: Decimal | None = None
    #: label (class, tier, quadrant) -> relationship level
    relationships: dict[str, str] = attrs.field(factory=dict)
    summary: bool = False
    months: int | None = None
    potential_attribute: str | None = None
    current_split: Decimal | None = None
    potential_split: Decimal | None = None
    k: int | None = None
    attributes: list[str] = attrs.field(factory=list)
    seed: int | None = None
    members: bool = False
    #: industry, occupation, age_band, region
    dimensions: list[str] = attrs.field(factory=list)
    age_bands: list[int] = attrs.field(factory=list)
    #: day, week or month
    time_unit: str | None = None
    horizon: float | None = None
    margin: float | None = None
    sample: int | None = None
    snapshot: bool = False


@attrs.define
class AnalysisResult:
    """An analysis: its rows (per customer, or per class/tier/cluster with a summary), the
    customers left out for withdrawn profiling consent, and its figures (clusters: k and
    silhouettes; CLV: the fitted models)."""

    kind: str
    as_of: dt.date
    scope: dict[str, str]
    left_out_profiling: int
    rows: list[dict[str, Any]]
    figures: dict[str, Any] = attrs.field(factory=dict)
    #: the snapshot saved with ``snapshot: true``
    snapshot_id: int | None = None


@attrs.define
class SnapshotQuery:
    """``GET /snapshots``: oldest first."""

    scheme: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class SnapshotOut:
    """A saved snapshot (``customers``: how many it classified)."""

    id: int
    scheme: str
    as_of: dt.date
    created_at: dt.datetime
    params: dict[str, Any]
    customers: int


@attrs.define
class SegmentCount:
    segment: str
    customers: int


@attrs.define
class SnapshotDetail:
    """A snapshot with the number of customers in each of its segments (of those the
    actor may see)."""

    id: int
    scheme: str
    as_of: dt.date
    created_at: dt.datetime
    params: dict[str, Any]
    customers: int
    segments: list[SegmentCount]


@attrs.define
class MembersQuery:
    """``GET /segments/{segment}/members``: the campaign list of ``crmkit segment export``:
    the segment's customers who granted the campaign consent purpose (erased, merged and
    profiling-withdrawn customers never), of those the actor may see."""

    #: rfm, abc, pyramid or a pack name
    scheme: str
    #: default: the scheme's latest snapshot
    snapshot: int | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.define
class Member:
    customer_id: int
    external_id: str | None
    name: str
    email: str | None
    phone: str | None
    region: str | None
    city: str | None
    segment: str
    snapshot_id: int
