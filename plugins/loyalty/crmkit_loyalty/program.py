"""Loyalty programs as data: parse and validate a program definition, compute earnings.

A program is a TOML document (or the same shape as a Python dict): identity and
policies at the top, then ``[qualification]``, ``[[tiers]]``, ``[[earn]]`` rules
and ``[[rewards]]``. See the plugin's README for the full format. Parsing never
touches the database; :func:`parse_program` returns a frozen :class:`Program`
or raises :class:`crmkit.ValidationError` naming the file and the field.

Earn rules are typed (``type = "spend"``, ``"campaign"``, ``"nth_order"``,
``"signup"``, ``"birthday"``, ``"referral"``); other plugins add types through
the ``crmkit_loyalty_register_earn_rule_types`` hook. A rule type is a callable
taking the rule's table (a dict, ``type`` included) and returning an object
with any of these methods:

* ``multiplier(order, category) -> Decimal`` — multiplies spend points of the
  part of ``order`` in ``category`` (campaigns);
* ``bonus(order, member) -> int`` — fixed points for this order (``member`` is a
  :class:`MemberView`; ``member.orders_count`` counts earlier earning orders);

and optionally ``name`` (the cause written in the ledger). Raise ``ValueError``
for a bad rule table; the message is reported with the file and rule index.
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import attrs

from crmkit.plugin import ValidationError

MEASURES = ("points", "spend", "orders")
ROUNDINGS = {"down": ROUND_FLOOR, "nearest": ROUND_HALF_UP, "up": ROUND_CEILING}
REVERSAL_POLICIES = ("negative", "clawback")
ONE = Decimal(1)


class RuleError(ValueError):
    """A bad value inside one rule table; ``field`` names the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# -- small converters --------------------------------------------------------


def _decimal(value: Any, field: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
    if isinstance(value, bool | float):
        # TOML floats (1.5) are accepted through their text, never through binary float
        if isinstance(value, bool):
            raise RuleError(field, f"must be a number, not {value!r}")
        value = repr(value)
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise RuleError(field, f"must be a decimal number such as '1.5', not {value!r}") from None
    if not result.is_finite():
        raise RuleError(field, f"must be a finite number, not {value!r}")
    if minimum is not None and result < minimum:
        raise RuleError(field, f"must be at least {minimum}, not {value!r}")
    return result


def _int(value: Any, field: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(field, f"must be a whole number, not {value!r}")
    if minimum is not None and value < minimum:
        raise RuleError(field, f"must be at least {minimum}, not {value!r}")
    return value


def _date(value: Any, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RuleError(field, f"must be a date such as 2026-12-01, not {value!r}") from None


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleError(field, f"must be a non-empty text, not {value!r}")
    return value.strip()


def _multipliers(value: Any, field: str) -> dict[str, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuleError(field, f"must be a table such as {{ books = 2 }}, not {value!r}")
    return {str(k): _decimal(v, f"{field}.{k}") for k, v in value.items()}


def _names(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise RuleError(field, f"must be a list of names, not {value!r}")
    return tuple(_str(v, field) for v in value)


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RuleError(
            f"{where}{unknown[0]}" if where else unknown[0],
            f"is not a known key; known keys: {', '.join(sorted(allowed))}",
        )


# -- entities -----------------------------------------------------------------


@attrs.frozen
class MemberView:
    """What an earn rule may know about the member earning (read-only)."""

    id: int
    customer_id: int
    tier: str | None
    orders_count: int  # earning orders before this one
    enrolled_at: dt.datetime | None = None


@attrs.frozen
class Portion:
    """A part of an order's paid amount, in one product category (None: uncategorised)."""

    amount: Decimal
    category: str | None


def portions(order: Any) -> list[Portion]:
    """Split an order's paid amount over its lines' categories.

    Line totals are scaled to the order's amount (the amount is what was paid,
    after discounts); an order without lines is one uncategorised portion.
    """
    amount = order.amount
    if not order.lines:
        return [Portion(amount, None)]
    lines = [(line.quantity * line.price, line.category) for line in order.lines]
    total = sum((value for value, _ in lines), Decimal(0))
    if not lines or total <= 0:
        return [Portion(amount, None)]
    if total == amount:
        return [Portion(value, category) for value, category in lines]
    return [Portion(amount * value / total, category) for value, category in lines]


@attrs.frozen
class SpendRule:
    """Points per unit of spend: ``rate`` points per ``per`` of currency."""

    rate: Decimal
    per: Decimal = ONE
    rounding: str = "down"
    min_spend: Decimal = Decimal(0)
    category_multipliers: dict[str, Decimal] = attrs.field(factory=dict)
    channel_multipliers: dict[str, Decimal] = attrs.field(factory=dict)
    name: str = "spend"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpendRule:
        _check_keys(data, {"type", "name", "rate", "per", "rounding", "min_spend",
                           "category_multipliers", "channel_multipliers"}, "")  # fmt: skip
        if "rate" not in data:
            raise RuleError("rate", "is required (points per unit of spend, e.g. rate = 1)")
        rounding = data.get("rounding", "down")
        if rounding not in ROUNDINGS:
            raise RuleError("rounding", f"must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
        per = _decimal(data.get("per", 1), "per")
        if per == 0:
            raise RuleError("per", "must be more than 0")
        return cls(
            rate=_decimal(data["rate"], "rate"),
            per=per,
            rounding=rounding,
            min_spend=_decimal(data.get("min_spend", 0), "min_spend"),
            category_multipliers=_multipliers(
                data.get("category_multipliers"), "category_multipliers"
            ),
            channel_multipliers=_multipliers(
                data.get("channel_multipliers"), "channel_multipliers"
            ),
            name=str(data.get("name", "spend")),
        )

    def raw(self, order: Any, parts: list[Portion], factor: Callable[[str | None], Decimal]) -> int:
        """Points for ``order`` (rounded), ``factor(category)`` the other multipliers."""
        if order.amount < self.min_spend or order.amount <= 0:
            return 0
        channel = self.channel_multipliers.get(order.channel or "", ONE)
        unit = self.rate / self.per * channel
        total = Decimal(0)
        for part in parts:
            mult = self.category_multipliers.get(part.category or "", ONE) if part.category else ONE
            total += part.amount * unit * mult * factor(part.category)
        return int(total.to_integral_value(ROUNDINGS[self.rounding]))


@attrs.frozen
class CampaignRule:
    """Multiply spend points between two dates (inclusive), optionally by channel/category."""

    starts: dt.date
    ends: dt.date
    factor: Decimal
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    timezone: str = "UTC"
    name: str = "campaign"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CampaignRule:
        _check_keys(data, {"type", "name", "starts", "ends", "multiplier", "categories",
                           "channels", "timezone"}, "")  # fmt: skip
        for key in ("starts", "ends", "multiplier"):
            if key not in data:
                raise RuleError(key, "is required for a campaign (starts, ends, multiplier)")
        starts, ends = _date(data["starts"], "starts"), _date(data["ends"], "ends")
        if ends < starts:
            raise RuleError("ends", f"{ends} is before starts {starts}")
        timezone = str(data.get("timezone", "UTC"))
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise RuleError("timezone", f"{timezone!r} is not a known time zone") from None
        return cls(
            starts=starts,
            ends=ends,
            factor=_decimal(data["multiplier"], "multiplier"),
            categories=_names(data.get("categories"), "categories"),
            channels=_names(data.get("channels"), "channels"),
            timezone=timezone,
            name=str(data.get("name", "campaign")),
        )

    def active(self, order: Any) -> bool:
        day = order.occurred_at.astimezone(zoneinfo.ZoneInfo(self.timezone)).date()
        if not self.starts <= day <= self.ends:
            return False
        return not self.channels or (order.channel or "") in self.channels

    def multiplier(self, order: Any, category: str | None) -> Decimal:
        if not self.active(order):
            return ONE
        if self.categories and (category or "") not in self.categories:
            return ONE
        return self.factor


@attrs.frozen
class NthOrderRule:
    """A fixed bonus on the member's Nth earning order (or every Nth with ``repeat``)."""

    n: int
    points: int
    repeat: bool = False
    name: str = "nth_order"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NthOrderRule:
        _check_keys(data, {"type", "name", "n", "points", "repeat"}, "")
        for key in ("n", "points"):
            if key not in data:
                raise RuleError(key, "is required for nth_order (n, points)")
        return cls(
            n=_int(data["n"], "n", minimum=1),
            points=_int(data["points"], "points"),
            repeat=bool(data.get("repeat", False)),
            name=str(data.get("name", "nth_order")),
        )

    def bonus(self, order: Any, member: MemberView) -> int:
        k = member.orders_count + 1
        hit = k % self.n == 0 if self.repeat else k == self.n
        return self.points if hit else 0


@attrs.frozen
class FixedBonusRule:
    """signup / birthday / referral: a fixed number of points on an event."""

    kind: str
    points: int
    referee_points: int = 0
    name: str = ""

    @classmethod
    def factory(cls, kind: str) -> Callable[[Mapping[str, Any]], FixedBonusRule]:
        def build(data: Mapping[str, Any]) -> FixedBonusRule:
            allowed = {"type", "name", "points"} | (
                {"referee_points"} if kind == "referral" else set()
            )
            _check_keys(data, allowed, "")
            if "points" not in data:
                raise RuleError("points", f"is required for a {kind} bonus")
            return cls(
                kind=kind,
                points=_int(data["points"], "points"),
                referee_points=_int(data.get("referee_points", 0), "referee_points"),
                name=str(data.get("name", kind)),
            )

        return build


BUILTIN_RULE_TYPES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "spend": SpendRule.from_dict,
    "campaign": CampaignRule.from_dict,
    "nth_order": NthOrderRule.from_dict,
    "signup": FixedBonusRule.factory("signup"),
    "birthday": FixedBonusRule.factory("birthday"),
    "referral": FixedBonusRule.factory("referral"),
}


@attrs.frozen
class Tier:
    name: str
    threshold: Decimal
    discount: Decimal = Decimal(0)  # member discount, a fraction (0.05 = 5%)
    earn_multiplier: Decimal = ONE
    title: str = ""


@attrs.frozen
class RewardSpec:
    code: str
    title: str
    points: int
    stock: int | None = None  # None: unlimited
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    value: Decimal | None = None  # money value for the liability report


@attrs.frozen
class Program:
    """A parsed, validated loyalty program."""

    name: str
    title: str
    point_value: Decimal
    expiry_months: int | None
    reversal_policy: str
    auto_enrol: bool
    measure: str
    window_months: int
    tiers: tuple[Tier, ...]
    rules: tuple[Any, ...]
    rewards: tuple[RewardSpec, ...]
    currency: str | None = None
    description: str = ""
    source: str = "<python>"
    data: dict[str, Any] = attrs.field(factory=dict, eq=False)  # the definition as given
    # rule views and tiers by name, built once: order_points runs once per order of an import
    _views: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False, init=False)

    def _view(self, key: str, build: Callable[[], Any]) -> Any:
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = build()
        return found

    # -- rule views ---------------------------------------------------------
    @property
    def spend_rules(self) -> list[SpendRule]:
        return self._view("spend", lambda: [r for r in self.rules if isinstance(r, SpendRule)])

    @property
    def multiplier_rules(self) -> list[Any]:
        return self._view("mult", lambda: [r for r in self.rules if hasattr(r, "multiplier")])

    @property
    def bonus_rules(self) -> list[Any]:
        return self._view("bonus", lambda: [r for r in self.rules if hasattr(r, "bonus")])

    @property
    def has_plugin_rules(self) -> bool:
        """Does any rule come from another plugin (and may read more of the member)?"""
        builtin = (SpendRule, CampaignRule, NthOrderRule, FixedBonusRule)
        return self._view("plugin", lambda: any(not isinstance(r, builtin) for r in self.rules))

    def fixed(self, kind: str) -> FixedBonusRule | None:
        for rule in self.rules:
            if isinstance(rule, FixedBonusRule) and rule.kind == kind:
                return rule
        return None

    def tier(self, name: str | None) -> Tier | None:
        return self._view("tiers", lambda: {tier.name: tier for tier in self.tiers}).get(name)

    @property
    def base_tier(self) -> str | None:
        return self.tiers[0].name if self.tiers else None

    def tier_for(self, measure: Decimal) -> str | None:
        """The highest tier whose threshold ``measure`` meets."""
        found = self.base_tier
        for tier in self.tiers:
            if measure >= tier.threshold:
                found = tier.name
        return found

    def rank(self, tier: str | None) -> int:
        for i, t in enumerate(self.tiers):
            if t.name == tier:
                return i
        return -1

    def expires_at(self, earned_at: dt.datetime) -> dt.datetime | None:
        if not self.expiry_months:
            return None
        return add_months(earned_at, self.expiry_months)

    # -- earning --------------------------------------------------------------
    def order_points(self, order: Any, member: MemberView) -> list[tuple[str, int]]:
        """``[(rule name, points), ...]`` this order earns for ``member`` (zero rules left out)."""
        tier = self.tier(member.tier)
        tier_mult = tier.earn_multiplier if tier else ONE
        multipliers = self.multiplier_rules
        parts = portions(order)

        def factor(category: str | None) -> Decimal:
            value = tier_mult
            for rule in multipliers:
                value *= rule.multiplier(order, category)
            return value

        earned: list[tuple[str, int]] = []
        for rule in self.spend_rules:
            points = rule.raw(order, parts, factor)
            if points:
                earned.append((rule.name, points))
        for rule in self.bonus_rules:
            points = int(rule.bonus(order, member))
            if points < 0:
                raise ValueError(f"earn rule {rule.name!r} returned negative points {points}")
            if points:
                earned.append((getattr(rule, "name", type(rule).__name__), points))
        return earned


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` plus ``months`` calendar months (the day clamped to the month's end)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day
    if day > 28:  # only the last days of a month can fall off the end of the target month
        day = min(day, 29 if month == 2 and _leap(year) else _DAYS[month - 1])
    return moment.replace(year=year, month=month, day=day)


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# -- parsing --------------------------------------------------------------------

TOP_KEYS = {
    "name", "title", "description", "currency", "point_value", "expiry_months",
    "reversal_policy", "auto_enrol", "qualification", "tiers", "earn", "rewards",
}  # fmt: skip

_T = TypeVar("_T")


@attrs.frozen
class _Definition:
    """A program definition being parsed: the data, where it comes from (named in every
    error) and the earn-rule types known (built-in and from plugins)."""

    data: Mapping[str, Any]
    source: str
    types: dict[str, Callable[[Mapping[str, Any]], Any]]

    def error(self, field: str, message: str) -> ValidationError:
        return ValidationError(f"{self.source}: {field} {message}", field=field)

    def convert(self, convert: Callable[[], _T], where: str = "") -> _T:
        """``convert()``; its RuleError becomes the ValidationError of ``where.<its field>``."""
        try:
            return convert()
        except RuleError as exc:
            field = f"{where}.{exc.field}".rstrip(".") if where else exc.field
            raise self.error(field, str(exc)) from None


def _name(d: _Definition) -> dict[str, Any]:
    try:
        name = _str(d.data.get("name"), "name")
    except RuleError as exc:
        raise d.error("name", str(exc) + " (every program needs a name)") from None
    if not name.replace("-", "").replace("_", "").isalnum():
        raise d.error("name", f"{name!r} may only hold letters, digits, '-' and '_'")
    return {"name": name}


def _point_value(d: _Definition) -> dict[str, Any]:
    value = d.data.get("point_value", "0.01")
    return {"point_value": d.convert(lambda: _decimal(value, "point_value"))}


def _expiry_months(d: _Definition) -> dict[str, Any]:
    expiry = d.data.get("expiry_months")
    if expiry in (None, 0):
        return {"expiry_months": None}
    return {"expiry_months": d.convert(lambda: _int(expiry, "expiry_months", minimum=1))}


def _reversal_policy(d: _Definition) -> dict[str, Any]:
    policy = d.data.get("reversal_policy", "negative")
    if policy not in REVERSAL_POLICIES:
        raise d.error(
            "reversal_policy", f"must be one of {', '.join(REVERSAL_POLICIES)}, not {policy!r}"
        )
    return {"reversal_policy": policy}


def _auto_enrol(d: _Definition) -> dict[str, Any]:
    auto_enrol = d.data.get("auto_enrol", False)
    if not isinstance(auto_enrol, bool):
        raise d.error("auto_enrol", f"must be true or false, not {auto_enrol!r}")
    return {"auto_enrol": auto_enrol}


def _qualification(d: _Definition) -> dict[str, Any]:
    qualification = d.data.get("qualification", {}) or {}
    if not isinstance(qualification, Mapping):
        raise d.error("qualification", "must be a table ([qualification])")
    d.convert(lambda: _check_keys(qualification, {"measure", "window_months"}, "qualification."))
    measure = qualification.get("measure", "points")
    if measure not in MEASURES:
        raise d.error(
            "qualification.measure", f"must be one of {', '.join(MEASURES)}, not {measure!r}"
        )
    window = qualification.get("window_months", 12)
    return {
        "measure": measure,
        "window_months": d.convert(lambda: _int(window, "qualification.window_months", minimum=1)),
    }


def _tier(raw: Any) -> Tier:
    """One ``[[tiers]]`` table (a RuleError names the key)."""
    if not isinstance(raw, Mapping):
        raise RuleError("", "must be a table ([[tiers]])")
    _check_keys(raw, {"name", "title", "threshold", "discount", "earn_multiplier"}, "")
    tier = Tier(
        name=_str(raw.get("name"), "name"),
        title=str(raw.get("title", "")),
        threshold=_decimal(raw.get("threshold", 0), "threshold"),
        discount=_decimal(raw.get("discount", 0), "discount"),
        earn_multiplier=_decimal(raw.get("earn_multiplier", 1), "earn_multiplier"),
    )
    if tier.discount >= 1:
        raise RuleError("discount", f"is a fraction below 1 (0.05 = 5%), not {tier.discount}")
    return tier


def _tiers(d: _Definition) -> dict[str, Any]:
    tiers: list[Tier] = []
    for i, raw in enumerate(d.data.get("tiers", []) or []):
        where = f"tiers[{i}]"
        tier = d.convert(functools.partial(_tier, raw), where)
        if tiers and tier.threshold <= tiers[-1].threshold:
            raise d.error(
                f"{where}.threshold",
                f"{tier.threshold} must be above the previous tier's {tiers[-1].threshold} "
                "(list tiers from lowest to highest)",
            )
        if any(t.name == tier.name for t in tiers):
            raise d.error(f"{where}.name", f"{tier.name!r} is used twice")
        tiers.append(tier)
    if tiers and tiers[0].threshold != 0:
        raise d.error("tiers[0].threshold", "the first (base) tier needs threshold = 0")
    return {"tiers": tuple(tiers)}


def _rule(d: _Definition, i: int, raw: Any) -> Any:
    """The rule ``earn[i]`` built by its type's factory."""
    where = f"earn[{i}]"
    if not isinstance(raw, Mapping):
        raise d.error(where, "must be a table ([[earn]])")
    kind = raw.get("type")
    if kind not in d.types:
        raise d.error(
            f"{where}.type",
            f"{kind!r} is not a known earn rule type; known: {', '.join(sorted(d.types))}",
        )
    try:
        rule = d.types[kind](raw)
    except RuleError as exc:
        raise d.error(f"{where}.{exc.field}", str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise d.error(where, f"({kind}): {exc}") from None
    if not (
        hasattr(rule, "bonus")
        or hasattr(rule, "multiplier")
        or isinstance(rule, SpendRule | FixedBonusRule)
    ):
        raise d.error(where, f"type {kind!r} built an object with neither bonus() nor multiplier()")
    return rule


def _check_awards(d: _Definition, rules: list[Any]) -> None:
    """One rule of each fixed-bonus kind at most, and a name of its own for every rule
    that awards points."""
    for kind in ("signup", "birthday", "referral"):
        if sum(1 for r in rules if isinstance(r, FixedBonusRule) and r.kind == kind) > 1:
            raise d.error("earn", f"has more than one {kind} rule; keep one")
    # the ledger names each award's rule, and an order earns once per (rule, member):
    # two awarding rules with one name would be one cause
    named: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if not (hasattr(rule, "bonus") or isinstance(rule, SpendRule | FixedBonusRule)):
            continue  # multipliers write no ledger rows of their own
        rule_name = getattr(rule, "name", type(rule).__name__)
        if rule_name in named:
            raise d.error(
                f"earn[{i}].name",
                f"{rule_name!r} is already the name of earn[{named[rule_name]}]; give each "
                "rule that awards points its own name",
            )
        named[rule_name] = i


def _rules(d: _Definition) -> dict[str, Any]:
    rules = [_rule(d, i, raw) for i, raw in enumerate(d.data.get("earn", []) or [])]
    _check_awards(d, rules)
    return {"rules": tuple(rules)}


def _optional(raw: Mapping[str, Any], key: str, convert: Callable[[Any, str], _T]) -> _T | None:
    return None if raw.get(key) is None else convert(raw[key], key)


def _reward(raw: Any) -> RewardSpec:
    """One ``[[rewards]]`` table (a RuleError names the key)."""
    if not isinstance(raw, Mapping):
        raise RuleError("", "must be a table ([[rewards]])")
    _check_keys(raw, {"code", "title", "points", "stock", "valid_from", "valid_until",
                      "value"}, "")  # fmt: skip
    if "points" not in raw:
        raise RuleError("points", "is required (the reward's cost in points)")
    reward = RewardSpec(
        code=_str(raw.get("code"), "code"),
        title=str(raw.get("title", raw.get("code"))),
        points=_int(raw["points"], "points", minimum=1),
        stock=_optional(raw, "stock", _int),
        valid_from=_optional(raw, "valid_from", _date),
        valid_until=_optional(raw, "valid_until", _date),
        value=_optional(raw, "value", _decimal),
    )
    if reward.valid_from and reward.valid_until and reward.valid_until < reward.valid_from:
        raise RuleError("valid_until", f"{reward.valid_until} is before valid_from")
    return reward


def _rewards(d: _Definition) -> dict[str, Any]:
    rewards: list[RewardSpec] = []
    for i, raw in enumerate(d.data.get("rewards", []) or []):
        where = f"rewards[{i}]"
        reward = d.convert(functools.partial(_reward, raw), where)
        if any(r.code == reward.code for r in rewards):
            raise d.error(f"{where}.code", f"{reward.code!r} is used twice")
        rewards.append(reward)
    return {"rewards": tuple(rewards)}


def _texts(d: _Definition) -> dict[str, Any]:
    name = _str(d.data.get("name"), "name")  # valid: _name checked it first
    return {
        "title": str(d.data.get("title", name)),
        "description": str(d.data.get("description", "")),
        "currency": d.data.get("currency"),
    }


#: The parsers of a program's fields, in the order they are checked (the first problem
#: found is the one reported). Each reads the whole definition and returns Program fields.
_FIELD_PARSERS: tuple[Callable[[_Definition], dict[str, Any]], ...] = (
    _name,
    _point_value,
    _expiry_months,
    _reversal_policy,
    _auto_enrol,
    _qualification,
    _tiers,
    _rules,
    _rewards,
    _texts,
)


def parse_program(
    data: Mapping[str, Any],
    source: str = "<python>",
    rule_types: Mapping[str, Callable[[Mapping[str, Any]], Any]] | None = None,
) -> Program:
    """Validate ``data`` (a program definition) and return a :class:`Program`.

    Raises :class:`crmkit.ValidationError` whose message names ``source`` and
    the field (``earn[2].rate``) and whose ``field`` attribute is that path.
    """
    types = dict(BUILTIN_RULE_TYPES)
    types.update(rule_types or {})
    definition = _Definition(data, source, types)
    definition.convert(lambda: _check_keys(data, TOP_KEYS, ""))
    fields: dict[str, Any] = {}
    for parse in _FIELD_PARSERS:
        fields.update(parse(definition))
    return Program(**fields, source=source, data=to_storable(data))


def load_program_file(
    path: str | Path, rule_types: Mapping[str, Callable[[Mapping[str, Any]], Any]] | None = None
) -> Program:
    """Read and validate a program TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the program file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path}: not valid TOML: {exc}") from None
    return parse_program(data, source=str(path), rule_types=rule_types)


def to_storable(value: Any) -> Any:
    """JSON-ready copy of a definition (dates as ISO text, Decimal and floats as text)."""
    if isinstance(value, Mapping):
        return {str(k): to_storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_storable(v) for v in value]
    if isinstance(value, Decimal | float):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value
