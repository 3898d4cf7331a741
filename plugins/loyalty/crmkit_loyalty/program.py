"""Loyalty programs as data: parse and validate a program definition, compute earnings.

A program is a TOML document (or the same shape as a Python dict): identity and
policies at the top, then ``[qualification]``, ``[[tiers]]``, ``[[earn]]`` rules
and ``[[rewards]]``. See the plugin's README for the full format. Parsing never
touches the database; :func:`parse_program` returns a frozen :class:`Program`
or raises :class:`crmkit.ValidationError` naming the file and the field.

The earn rule types and what a plugin's rule type provides are in
:mod:`crmkit_loyalty.rules` (its names stay importable from here).
"""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import attrs

from crmkit.plugin import ValidationError
from crmkit_loyalty.rules import (
    BUILTIN_RULE_TYPES,
    ONE,
    ROUNDINGS,
    CampaignRule,
    FixedBonusRule,
    MemberView,
    NthOrderRule,
    Portion,
    RuleError,
    SpendRule,
    as_date,
    as_decimal,
    as_int,
    as_text,
    check_keys,
    portions,
)

__all__ = [  # the rule names too: they were defined here before crmkit_loyalty.rules
    "BUILTIN_RULE_TYPES",
    "MEASURES",
    "ONE",
    "REVERSAL_POLICIES",
    "ROUNDINGS",
    "TOP_KEYS",
    "CampaignRule",
    "FixedBonusRule",
    "MemberView",
    "NthOrderRule",
    "Portion",
    "Program",
    "RewardSpec",
    "RuleError",
    "SpendRule",
    "Tier",
    "add_months",
    "load_program_file",
    "parse_program",
    "portions",
    "to_storable",
]

MEASURES = ("points", "spend", "orders")
REVERSAL_POLICIES = ("negative", "clawback")


# -- entities -----------------------------------------------------------------


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
        name = as_text(d.data.get("name"), "name")
    except RuleError as exc:
        raise d.error("name", str(exc) + " (every program needs a name)") from None
    if not name.replace("-", "").replace("_", "").isalnum():
        raise d.error("name", f"{name!r} may only hold letters, digits, '-' and '_'")
    return {"name": name}


def _point_value(d: _Definition) -> dict[str, Any]:
    value = d.data.get("point_value", "0.01")
    return {"point_value": d.convert(lambda: as_decimal(value, "point_value"))}


def _expiry_months(d: _Definition) -> dict[str, Any]:
    expiry = d.data.get("expiry_months")
    if expiry in (None, 0):
        return {"expiry_months": None}
    return {"expiry_months": d.convert(lambda: as_int(expiry, "expiry_months", minimum=1))}


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
    d.convert(lambda: check_keys(qualification, {"measure", "window_months"}, "qualification."))
    measure = qualification.get("measure", "points")
    if measure not in MEASURES:
        raise d.error(
            "qualification.measure", f"must be one of {', '.join(MEASURES)}, not {measure!r}"
        )
    window = qualification.get("window_months", 12)
    return {
        "measure": measure,
        "window_months": d.convert(
            lambda: as_int(window, "qualification.window_months", minimum=1)
        ),
    }


def _tier(raw: Any) -> Tier:
    """One ``[[tiers]]`` table (a RuleError names the key)."""
    if not isinstance(raw, Mapping):
        raise RuleError("", "must be a table ([[tiers]])")
    check_keys(raw, {"name", "title", "threshold", "discount", "earn_multiplier"}, "")
    tier = Tier(
        name=as_text(raw.get("name"), "name"),
        title=str(raw.get("title", "")),
        threshold=as_decimal(raw.get("threshold", 0), "threshold"),
        discount=as_decimal(raw.get("discount", 0), "discount"),
        earn_multiplier=as_decimal(raw.get("earn_multiplier", 1), "earn_multiplier"),
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
    check_keys(raw, {"code", "title", "points", "stock", "valid_from", "valid_until",
                      "value"}, "")  # fmt: skip
    if "points" not in raw:
        raise RuleError("points", "is required (the reward's cost in points)")
    reward = RewardSpec(
        code=as_text(raw.get("code"), "code"),
        title=str(raw.get("title", raw.get("code"))),
        points=as_int(raw["points"], "points", minimum=1),
        stock=_optional(raw, "stock", as_int),
        valid_from=_optional(raw, "valid_from", as_date),
        valid_until=_optional(raw, "valid_until", as_date),
        value=_optional(raw, "value", as_decimal),
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
    name = as_text(d.data.get("name"), "name")  # valid: _name checked it first
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
    definition.convert(lambda: check_keys(data, TOP_KEYS, ""))
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
