"""Industry packs: named classifications contributed through
``crmkit_segmentation_register_packs``.

A pack is any object (or dict) with ``name``, ``title``, ``description`` and
``classify(crm, as_of, scope) -> rows``, each row a dict with ``customer_id`` and
``segment`` (plus any figures worth showing); ``labels`` (segment names, best first) is
optional. :class:`Pack` is a convenience; another plugin may return plain dicts so it never
imports this package.

Built in: ``retail`` (RFM with retail names), ``travel`` (airline and hotel elite tiers from
trips, nights and miles), ``b2b`` (ABC on this year's revenue with the trend against last
year) and ``finance`` (assets held × products held, from custom attributes).

Customers who withdrew profiling consent are left out: the built-in packs filter them in
SQL (:mod:`.profiling`), and :func:`run_pack` drops any row another plugin's pack returns
for one of them, counting them for the summary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from crmkit.plugin import ConfigError, Money, ValidationError, customers, order_lines, orders

from . import profiling, rfm
from .hookspecs import Pack
from .scope import check_scope, scope_clauses
from .settings import RETAIL_NAMES, rfm_map, settings_of

COUNTED = ("placed", "paid")
#: scheme names of the built-in analyses, which a pack cannot take
RESERVED = ("rfm", "abc", "pyramid")


def _as_pack(obj: Any) -> Pack:
    get = obj.get if isinstance(obj, Mapping) else lambda k, d=None: getattr(obj, k, d)
    name, classify = get("name"), get("classify")
    if not isinstance(name, str) or not name or not callable(classify):
        raise ConfigError(
            f"segmentation: a pack must have a name and a callable classify, got {obj!r}"
        )
    return Pack(
        name, str(get("title") or name), str(get("description") or ""), classify,
        tuple(get("labels") or ()),
    )  # fmt: skip


def all_packs(crm: Any) -> dict[str, Pack]:
    """Every pack: the built-in ones and those other plugins contribute, by name."""
    if crm.has_hook("crmkit_segmentation_register_packs"):
        answers = crm.call("crmkit_segmentation_register_packs")
    else:  # the plugin is used as a library without being enabled
        answers = [BUILTIN]
    found: dict[str, Pack] = {}
    for answer in answers:
        if answer is None:
            continue
        items = answer if isinstance(answer, list | tuple) else [answer]
        for item in items:
            pack = _as_pack(item)
            if pack.name in found:
                raise ConfigError(f"segmentation: two plugins declare the pack {pack.name!r}")
            if pack.name in RESERVED:
                raise ConfigError(
                    f"segmentation: a pack may not be called {pack.name!r}, the name of a "
                    f"built-in scheme ({', '.join(RESERVED)}); rename the pack"
                )
            found[pack.name] = pack
    return dict(sorted(found.items()))


def get_pack(crm: Any, name: str) -> Pack:
    packs = all_packs(crm)
    if name not in packs:
        raise ValidationError(
            f"segmentation: unknown pack {name!r}; known packs: {', '.join(packs) or '(none)'}"
        )
    return packs[name]


def run_pack(
    crm: Any, name: str, as_of: dt.date, scope: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run pack ``name``; every row must name a customer and a segment. Customers who
    withdrew profiling consent are not in the result (see :func:`run_pack_counted`)."""
    return run_pack_counted(crm, name, as_of, scope)[0]


def run_pack_counted(
    crm: Any, name: str, as_of: dt.date, scope: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Pack ``name``'s rows and how many customers were left out because they withdrew
    profiling consent.

    A built-in pack counts the customers it would otherwise have classified; for a pack
    from another plugin the count is the rows it returned for such customers, dropped here.
    """
    pack = get_pack(crm, name)
    rows = list(pack.classify(crm, as_of, dict(scope or {})))
    for row in rows:
        if "customer_id" not in row or not row.get("segment"):
            raise ValidationError(
                f"segmentation: pack {name!r} returned a row without customer_id and segment: "
                f"{row!r}"
            )
    with crm.reading() as conn:
        withdrawn = profiling.withdrawn_ids(conn, (row["customer_id"] for row in rows))
    kept = [row for row in rows if int(row["customer_id"]) not in withdrawn]
    counter = _LEFT_OUT.get(pack.classify)
    left_out = counter(crm, as_of, dict(scope or {})) if counter else len(rows) - len(kept)
    return kept, left_out


# -- shared SQL pieces ---------------------------------------------------------------


def _end(as_of: dt.date) -> dt.datetime:
    return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def _scoped(query: sa.Select, scope: dict[str, str]) -> sa.Select:
    return query.where(*scope_clauses(check_scope(scope)))


def _check_orders(conn: Any, as_of: dt.date) -> None:
    first = conn.execute(sa.select(sa.func.min(orders.c.occurred_at))).scalar()
    if first is None or first >= _end(as_of):
        raise ValidationError(
            f"segmentation: --as-of {as_of.isoformat()} is before the first order; "
            "choose a later date"
        )


def _money(expr: Any) -> Any:
    return sa.type_coerce(expr, Money)


# -- retail ----------------------------------------------------------------------------


def retail(crm: Any, as_of: dt.date, scope: dict[str, str]) -> list[dict[str, Any]]:
    bins = settings_of(crm)["rfm_bins"]
    rows = rfm.rfm_scores(crm, as_of, scope, bins)
    return rfm.name_segments(rows, bins, rfm_map(crm, "retail_map"))


# -- travel ----------------------------------------------------------------------------


def _number(value: Any, customer_id: int, attribute: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0:
        raise ValidationError(
            f"segmentation: customer {customer_id} has {attribute}={value!r}; "
            "expected a non-negative number"
        )
    return number


def travel(crm: Any, as_of: dt.date, scope: dict[str, str]) -> list[dict[str, Any]]:
    """Elite tiers on the last ``travel_window_days``: a tier is reached by trips OR nights
    OR miles (as airline and hotel programmes qualify); no trip in the window is ``lapsed``."""
    cfg = settings_of(crm)
    end = _end(as_of)
    start = end - dt.timedelta(days=cfg["travel_window_days"])
    in_window = orders.c.occurred_at >= start
    category = sa.func.lower(order_lines.c.category)

    def qty(categories: list[str]) -> Any:
        wanted = [c.lower() for c in categories]
        return _money(
            sa.func.coalesce(
                sa.func.sum(
                    sa.case((sa.and_(in_window, category.in_(wanted)), order_lines.c.quantity))
                ),
                0,
            )
        )

    agg = _scoped(
        sa.select(
            orders.c.customer_id.label("cid"),
            sa.func.count(sa.distinct(sa.case((in_window, orders.c.id)))).label("trips"),
            qty(cfg["travel_night_categories"]).label("nights"),
            qty(cfg["travel_mile_categories"]).label("miles"),
        )
        .select_from(
            orders.join(customers, customers.c.id == orders.c.customer_id).outerjoin(
                order_lines, order_lines.c.order_id == orders.c.id
            )
        )
        .where(orders.c.occurred_at < end, orders.c.status.in_(COUNTED))
        .group_by(orders.c.customer_id),
        scope,
    ).subquery()
    query = (
        sa.select(agg, customers.c.attributes)
        .join(customers, customers.c.id == agg.c.cid)
        .where(profiling.allowed(agg.c.cid))
        .order_by(agg.c.cid)
    )
    with crm.reading() as conn:
        _check_orders(conn, as_of)
        found = conn.execute(query).all()
    out = []
    for r in found:
        attributes = r.attributes or {}
        figures = {"trips": int(r.trips), "nights": r.nights, "miles": r.miles}
        for key in ("nights", "miles"):  # counters kept by a booking system win
            if attributes.get(key) not in (None, ""):
                figures[key] = _number(attributes[key], r.cid, key)
        segment = "member" if figures["trips"] else "lapsed"
        for tier in cfg["travel_tiers"]:
            if any(
                k in tier and figures[k] >= Decimal(str(tier[k]))
                for k in ("trips", "nights", "miles")
            ):
                segment = tier["tier"]
                break
        out.append({"customer_id": r.cid, "segment": segment, **figures})
    return out


# -- B2B distributor -------------------------------------------------------------------


def b2b(crm: Any, as_of: dt.date, scope: dict[str, str]) -> list[dict[str, Any]]:
    """ABC on revenue of the last ``b2b_window_days`` (the ``abc_thresholds``), with the trend
    against the window before: ``A growing``, ``B stable``, ``C declining``, ``A new``...
    Customers with revenue only in the earlier window are ``lapsed``, with neither ``dormant``."""
    cfg = settings_of(crm)
    end = _end(as_of)
    window = dt.timedelta(days=cfg["b2b_window_days"])
    this_year = orders.c.occurred_at >= end - window
    last_year = sa.and_(orders.c.occurred_at >= end - 2 * window, ~this_year)

    def revenue(when: Any) -> Any:
        return _money(sa.func.coalesce(sa.func.sum(sa.case((when, orders.c.amount))), 0))

    agg = _scoped(
        sa.select(
            orders.c.customer_id.label("cid"),
            revenue(this_year).label("this_year"),
            revenue(last_year).label("last_year"),
        )
        .select_from(orders.join(customers, customers.c.id == orders.c.customer_id))
        .where(orders.c.occurred_at < end, orders.c.status.in_(COUNTED))
        .group_by(orders.c.customer_id),
        scope,
    ).subquery()
    ranked = (
        sa.select(
            agg.c.cid,
            agg.c.this_year,
            agg.c.last_year,
            _money(
                sa.func.sum(agg.c.this_year).over(
                    order_by=(agg.c.this_year.desc(), agg.c.cid), rows=(None, 0)
                )
            ).label("cumulative"),
            _money(sa.func.sum(agg.c.this_year).over()).label("total"),
        )
        .where(profiling.allowed(agg.c.cid))  # filtered before the window: no share of it
        .order_by(agg.c.cid)
    )
    with crm.reading() as conn:
        _check_orders(conn, as_of)
        found = conn.execute(ranked).all()
    a_share = Decimal(str(cfg["abc_thresholds"]["A"]))
    b_share = Decimal(str(cfg["abc_thresholds"]["B"]))
    band = Decimal(str(cfg["b2b_trend_band"]))
    out = []
    for r in found:
        this, last = r.this_year or Decimal(0), r.last_year or Decimal(0)
        growth = None
        if this <= 0:
            segment = "lapsed" if last > 0 else "dormant"
        else:
            before = (r.cumulative - this) / r.total  # share of revenue above this customer
            cls = "A" if before < a_share else "B" if before < b_share else "C"
            if last <= 0:
                trend = "new"
            else:
                growth = this / last - 1
                trend = "growing" if growth > band else "declining" if growth < -band else "stable"
            segment = f"{cls} {trend}"
        out.append(
            {
                "customer_id": r.cid,
                "segment": segment,
                "this_year": this,
                "last_year": last,
                "growth": None if growth is None else round(growth, 4),
            }
        )
    return out


B2B_LABELS = tuple(f"{c} {t}" for c in "ABC" for t in ("growing", "stable", "new", "declining")) + (
    "lapsed",
    "dormant",
)


# -- financial services ----------------------------------------------------------------


def _products(value: Any, customer_id: int, attribute: str) -> int:
    if isinstance(value, list | tuple):
        return len(value)
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return len([p for p in value.split(",") if p.strip()])
    return int(_number(value, customer_id, attribute))


def finance(crm: Any, as_of: dt.date, scope: dict[str, str]) -> list[dict[str, Any]]:
    """Asset band × product depth from custom attributes (current values: attributes have no
    history, so --as-of only limits the customers to those who existed then)."""
    cfg = settings_of(crm)
    assets_key, products_key = cfg["finance_assets_attribute"], cfg["finance_products_attribute"]
    query = _finance_customers(as_of, scope).where(profiling.allowed(customers.c.id))
    with crm.reading() as conn:
        found = conn.execute(query).all()
    out = []
    for cid, attributes in found:
        attributes = attributes or {}
        if not _has_finance_data(attributes, assets_key, products_key):
            continue  # no banking data for this customer
        assets = _number(attributes.get(assets_key) or 0, cid, assets_key)
        held = _products(attributes.get(products_key) or 0, cid, products_key)
        band = next(b["band"] for b in cfg["finance_asset_bands"] if assets >= Decimal(b["min"]))
        depth = "cross-sold" if held >= cfg["finance_cross_sold_min"] else "under-served"
        out.append(
            {"customer_id": cid, "segment": f"{band} {depth}", "assets": assets, "products": held}
        )
    if not out:
        left = _finance_left_out(crm, as_of, scope)
        because = f" ({profiling.note(left)})" if left else ""
        raise ValidationError(
            f"segmentation: no customer up to {as_of.isoformat()} has the custom attribute "
            f"{assets_key!r} or {products_key!r}{because}; set them (or rename them in "
            "[segmentation] finance_assets_attribute / finance_products_attribute)"
        )
    return out


def _finance_customers(as_of: dt.date, scope: dict[str, str]) -> sa.Select:
    """The customers the finance pack looks at: created by as-of, neither erased nor
    merged into another record, in scope."""
    return _scoped(
        sa.select(customers.c.id, customers.c.attributes)
        .where(
            customers.c.created_at < _end(as_of),
            customers.c.erased_at.is_(None),
            customers.c.merged_into.is_(None),
        )
        .order_by(customers.c.id),
        scope,
    )


def _has_finance_data(attributes: Mapping[str, Any], assets_key: str, products_key: str) -> bool:
    return any(attributes.get(key) not in (None, "") for key in (assets_key, products_key))


def _finance_left_out(crm: Any, as_of: dt.date, scope: dict[str, str]) -> int:
    """Customers the finance pack would classify but for their withdrawn profiling consent."""
    cfg = settings_of(crm)
    keys = cfg["finance_assets_attribute"], cfg["finance_products_attribute"]
    query = _finance_customers(as_of, scope).where(~profiling.allowed(customers.c.id))
    with crm.reading() as conn:
        return sum(_has_finance_data(a or {}, *keys) for _, a in conn.execute(query))


def _orders_left_out(crm: Any, as_of: dt.date, scope: dict[str, str]) -> int:
    return profiling.count_left_out(crm, as_of, scope)


BUILTIN = [
    Pack(
        "retail",
        "Retail (RFM)",
        "RFM scores named for shops: best customers, loyal regulars, lapsing, dormant, ...",
        retail,
        tuple(RETAIL_NAMES.values()),
    ),
    Pack(
        "travel",
        "Travel: airline and hotel",
        "Elite tiers from trips, nights and miles in the last year (order lines by category, "
        "or the custom attributes nights / miles)",
        travel,
        ("platinum", "gold", "silver", "member", "lapsed"),
    ),
    Pack(
        "b2b",
        "B2B distributor",
        "ABC on this year's revenue with the growth trend against last year",
        b2b,
        B2B_LABELS,
    ),
    Pack(
        "finance",
        "Financial services",
        "Assets held × products held (custom attributes assets_held, products_held)",
        finance,
        tuple(
            f"{b} {d}"
            for b in ("private", "affluent", "mass")
            for d in ("cross-sold", "under-served")
        ),
    ),
]

#: how a built-in pack counts the customers it left out for withdrawn profiling consent
_LEFT_OUT = {
    retail: _orders_left_out,
    travel: _orders_left_out,
    b2b: _orders_left_out,
    finance: _finance_left_out,
}
