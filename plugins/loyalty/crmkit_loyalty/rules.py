"""Earn rules: the built-in rule types of loyalty programs and the values their tables hold.

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
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import attrs

ROUNDINGS = {"down": ROUND_FLOOR, "nearest": ROUND_HALF_UP, "up": ROUND_CEILING}
ONE = Decimal(1)


class RuleError(ValueError):
    """A bad value inside one rule table; ``field`` names the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# -- small converters --------------------------------------------------------


def as_decimal(value: Any, field: str, *, minimum: Decimal | None = Decimal(0)) -> Decimal:
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


def as_int(value: Any, field: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(field, f"must be a whole number, not {value!r}")
    if minimum is not None and value < minimum:
        raise RuleError(field, f"must be at least {minimum}, not {value!r}")
    return value


def as_date(value: Any, field: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RuleError(field, f"must be a date such as 2026-12-01, not {value!r}") from None


def as_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleError(field, f"must be a non-empty text, not {value!r}")
    return value.strip()


def as_multipliers(value: Any, field: str) -> dict[str, Decimal]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RuleError(field, f"must be a table such as {{ books = 2 }}, not {value!r}")
    return {str(k): as_decimal(v, f"{field}.{k}") for k, v in value.items()}


def as_names(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise RuleError(field, f"must be a list of names, not {value!r}")
    return tuple(as_text(v, field) for v in value)


def check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
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
        check_keys(data, {"type", "name", "rate", "per", "rounding", "min_spend",
                           "category_multipliers", "channel_multipliers"}, "")  # fmt: skip
        if "rate" not in data:
            raise RuleError("rate", "is required (points per unit of spend, e.g. rate = 1)")
        rounding = data.get("rounding", "down")
        if rounding not in ROUNDINGS:
            raise RuleError("rounding", f"must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
        per = as_decimal(data.get("per", 1), "per")
        if per == 0:
            raise RuleError("per", "must be more than 0")
        return cls(
            rate=as_decimal(data["rate"], "rate"),
            per=per,
            rounding=rounding,
            min_spend=as_decimal(data.get("min_spend", 0), "min_spend"),
            category_multipliers=as_multipliers(
                data.get("category_multipliers"), "category_multipliers"
            ),
            channel_multipliers=as_multipliers(
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
        check_keys(data, {"type", "name", "starts", "ends", "multiplier", "categories",
                           "channels", "timezone"}, "")  # fmt: skip
        for key in ("starts", "ends", "multiplier"):
            if key not in data:
                raise RuleError(key, "is required for a campaign (starts, ends, multiplier)")
        starts, ends = as_date(data["starts"], "starts"), as_date(data["ends"], "ends")
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
            factor=as_decimal(data["multiplier"], "multiplier"),
            categories=as_names(data.get("categories"), "categories"),
            channels=as_names(data.get("channels"), "channels"),
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
        check_keys(data, {"type", "name", "n", "points", "repeat"}, "")
        for key in ("n", "points"):
            if key not in data:
                raise RuleError(key, "is required for nth_order (n, points)")
        return cls(
            n=as_int(data["n"], "n", minimum=1),
            points=as_int(data["points"], "points"),
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
            check_keys(data, allowed, "")
            if "points" not in data:
                raise RuleError("points", f"is required for a {kind} bonus")
            return cls(
                kind=kind,
                points=as_int(data["points"], "points"),
                referee_points=as_int(data.get("referee_points", 0), "referee_points"),
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
