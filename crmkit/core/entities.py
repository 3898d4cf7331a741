"""Domain entities: plain attrs classes with validation, no I/O.

Money is :class:`~decimal.Decimal`, never float; datetimes are
timezone-aware (naive ones are refused). Entities are what services return
and what events carry; storage turns rows into them and back.

The records are converted and validated when they are made (``__init__``,
``attrs.evolve``), not on each assignment to a field: attrs' hook for that makes every
construction call a setter per field, and a page of fifty customers spent more building
them than reading them. A service taking an entity it did not make makes it again
(``attrs.evolve``), so a field set by assignment is converted and checked before it is
stored.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import attrs

from crmkit.errors import ValidationError

CUSTOMER_TYPES = ("person", "organisation")
CUSTOMER_KINDS = ("end", "enterprise", "internal", "channel")
CUSTOMER_STATUSES = ("lead", "prospect", "active", "inactive")
CHANNELS = ("phone", "email", "letter", "web", "chat", "visit", "social", "call-centre")
DIRECTIONS = ("inbound", "outbound")
ORDER_STATUSES = ("placed", "paid", "refunded", "cancelled")
ATTRIBUTE_TYPES = ("string", "integer", "decimal", "date", "boolean", "choice")
CONSENT_PURPOSES = ("marketing", "profiling", "contact", "third_party")

#: entities check their fields when made, not on assignment (see the module's docstring)
_NO_HOOKS = attrs.setters.NO_OP

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def one_of(field: str, allowed: tuple[str, ...]):
    """attrs validator: the value must be one of ``allowed``."""

    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value not in allowed:
            raise ValidationError(
                f"{field} {value!r} is not valid; use one of: {', '.join(allowed)}", field=field
            )

    return check


def aware(field: str):
    """attrs validator: a timezone-aware datetime (or None)."""

    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is None or (value.__class__ is dt.datetime and value.tzinfo is dt.UTC):
            return  # what storage gives: the common case, checked first
        if not isinstance(value, dt.datetime):
            raise ValidationError(f"{field} must be a datetime, got {value!r}", field=field)
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                f"{field} {value.isoformat()} has no time zone; give an offset such as +00:00",
                field=field,
            )

    return check


#: the one money format: optional sign, ASCII digits, a dot before the decimals;
#: no thousands separators, no exponent (``1,50`` is refused, never read as 150)
MONEY_FORMAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
#: the same with a comma before the decimals (``decimal_comma=True``)
MONEY_FORMAT_COMMA = re.compile(r"[+-]?(?:[0-9]+(?:,[0-9]*)?|,[0-9]+)")


def money_format_hint(decimal_comma: bool = False) -> str:
    """How money is written, for error messages."""
    if decimal_comma:
        return "such as 1234,50 (digits, a comma before the decimals, no thousands separators)"
    return "such as 1234.50 (digits, a dot before the decimals, no thousands separators)"


def to_money(value: Any, field: str = "amount", *, decimal_comma: bool = False) -> Decimal:
    """Convert ``value`` to Decimal money, refusing floats and non-numbers.

    Text must be in the one money format: an optional sign, digits and a dot
    before the decimals (``-1234.50``), surrounding spaces ignored; thousands
    separators, exponents and other digits are refused rather than guessed
    (``1,50`` is not 150). ``decimal_comma`` reads a comma as the decimal
    separator instead (``1234,50``; a dot is then refused).
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (bool, float)):
        raise ValidationError(
            f"{field} must be a Decimal or a string such as '12.50', not {type(value).__name__}",
            field=field,
        )
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        pattern = MONEY_FORMAT_COMMA if decimal_comma else MONEY_FORMAT
        if not pattern.fullmatch(text):
            raise ValidationError(
                f"{field} {value!r} is not a decimal number {money_format_hint(decimal_comma)}",
                field=field,
            )
        result = Decimal(text.replace(",", ".") if decimal_comma else text)
    else:
        raise ValidationError(f"{field} {value!r} is not a decimal number", field=field)
    if not result.is_finite():
        raise ValidationError(f"{field} {value!r} is not a finite number", field=field)
    return result


def _optional_money(field: str):
    return lambda v: None if v is None or v == "" else to_money(v, field)


def _email(_instance: Any, _attribute: Any, value: str | None) -> None:
    if value and not _EMAIL.match(value):
        raise ValidationError(f"email {value!r} is not an e-mail address", field="email")


def _non_empty(field: str):
    def check(_instance: Any, _attribute: Any, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"{field} must not be empty", field=field)

    return check


@attrs.define(on_setattr=_NO_HOOKS)
class Customer:
    """A person or an organisation the company sells to or serves."""

    name: str = attrs.field(validator=_non_empty("name"))
    type: str = attrs.field(default="person", validator=one_of("type", CUSTOMER_TYPES))
    kind: str = attrs.field(default="end", validator=one_of("kind", CUSTOMER_KINDS))
    status: str = attrs.field(default="active", validator=one_of("status", CUSTOMER_STATUSES))
    external_id: str | None = None
    email: str | None = attrs.field(default=None, validator=_email)
    phone: str | None = None
    address: str | None = None
    region: str | None = None
    province: str | None = None
    city: str | None = None
    industry: str | None = None
    occupation: str | None = None
    birth_date: dt.date | None = None
    owner: str | None = None  # username of the relationship manager
    attributes: dict[str, Any] = attrs.field(factory=dict)
    consents: dict[str, bool] = attrs.field(factory=dict)
    id: int | None = None
    created_at: dt.datetime | None = attrs.field(default=None, validator=aware("created_at"))
    updated_at: dt.datetime | None = attrs.field(default=None, validator=aware("updated_at"))
    erased_at: dt.datetime | None = None
    merged_into: int | None = None  # the customer this record was merged into
    #: bumped by every profile change (``crm.customers.update``, a merge, an erasure):
    #: the ETag, and ``update(expected_version=...)`` refuses a stale edit
    version: int = 1

    def consented(self, purpose: str) -> bool:
        """True only when the customer gave consent for ``purpose`` (default: no)."""
        return bool(self.consents.get(purpose, False))


@attrs.define(on_setattr=_NO_HOOKS)
class Contact:
    """A person at an organisation customer."""

    customer_id: int
    name: str = attrs.field(validator=_non_empty("name"))
    role: str | None = None
    email: str | None = attrs.field(default=None, validator=_email)
    phone: str | None = None
    id: int | None = None


@attrs.define(on_setattr=_NO_HOOKS)
class Interaction:
    """One contact with a customer on any channel."""

    customer_id: int
    channel: str = attrs.field(validator=one_of("channel", CHANNELS))
    occurred_at: dt.datetime = attrs.field(validator=aware("occurred_at"))
    direction: str = attrs.field(default="inbound", validator=one_of("direction", DIRECTIONS))
    subject: str = ""
    body: str = ""
    staff: str | None = None
    external_id: str | None = None  # makes re-importing idempotent
    id: int | None = None


@attrs.define(on_setattr=_NO_HOOKS)
class OrderLine:
    """One line of an order: product, quantity and unit price (Decimal), optional category."""

    product: str = attrs.field(validator=_non_empty("product"))
    quantity: Decimal = attrs.field(default=Decimal(1), converter=lambda v: to_money(v, "quantity"))
    price: Decimal = attrs.field(default=Decimal(0), converter=lambda v: to_money(v, "price"))
    category: str | None = None


@attrs.define(on_setattr=_NO_HOOKS)
class Order:
    """A purchase: amount and cost are Decimal in ``currency``."""

    customer_id: int
    occurred_at: dt.datetime = attrs.field(validator=aware("occurred_at"))
    amount: Decimal = attrs.field(converter=lambda v: to_money(v, "amount"))
    external_id: str | None = None
    cost: Decimal | None = attrs.field(default=None, converter=_optional_money("cost"))
    currency: str = "EUR"
    status: str = attrs.field(default="paid", validator=one_of("status", ORDER_STATUSES))
    channel: str | None = None
    lines: list[OrderLine] = attrs.field(factory=list)
    id: int | None = None

    @property
    def margin(self) -> Decimal | None:
        """Amount minus cost, or ``None`` when the cost is unknown."""
        return None if self.cost is None else self.amount - self.cost


@attrs.define(on_setattr=_NO_HOOKS)
class Staff:
    """A member of staff: a relationship manager, agent, manager ..."""

    username: str = attrs.field(validator=_non_empty("username"))
    name: str = ""
    email: str | None = attrs.field(default=None, validator=_email)
    roles: list[str] = attrs.field(factory=list)
    department: str | None = None
    manager: str | None = None  # username of this person's manager
    active: bool = True  # deactivated staff keep their history but take no new work
    id: int | None = None


@attrs.frozen
class TimelineEntry:
    """One entry of a customer's timeline contributed by a plugin (a reply sent, a case)."""

    at: dt.datetime = attrs.field(validator=aware("at"))
    kind: str = attrs.field(validator=_non_empty("kind"))  # "reply", "complaint", ...
    title: str = ""
    body: str = ""
    source: str = ""  # the plugin's name


@attrs.frozen
class AttributeDefinition:
    """A typed custom attribute of customers, declared by config or a plugin."""

    name: str
    type: str = attrs.field(validator=one_of("attribute type", ATTRIBUTE_TYPES))
    choices: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    required: bool = False
    description: str = ""
    declared_by: str = "config"

    def __attrs_post_init__(self) -> None:
        if self.type == "choice" and not self.choices:
            raise ValidationError(
                f"attribute {self.name!r} has type 'choice' but no choices; list them",
                field=self.name,
            )

    def convert(self, value: Any) -> Any:
        """Return ``value`` converted to this attribute's type, or raise ValidationError."""
        if value is None or value == "":
            if self.required:
                raise ValidationError(f"attribute {self.name!r} is required", field=self.name)
            return None
        try:
            return self._typed(value)
        except ValidationError:
            raise
        except (ValueError, TypeError) as exc:
            raise self._mismatch(value) from exc

    def _typed(self, value: Any) -> Any:
        """``value`` (not empty) as this attribute's type; raises when it is not one."""
        match self.type:
            case "string":
                return str(value)
            case "integer":
                if isinstance(value, (bool, float)):
                    raise self._mismatch(value)
                return int(str(value).strip())
            case "decimal":
                return to_money(value, self.name)
            case "date":
                if isinstance(value, dt.datetime):
                    raise self._mismatch(value)
                return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
            case "boolean":
                return self._boolean(value)
            case "choice":
                if str(value) not in self.choices:
                    raise ValidationError(
                        f"attribute {self.name!r} is {value!r}; use one of: "
                        f"{', '.join(self.choices)}",
                        field=self.name,
                    )
                return str(value)
        raise self._mismatch(value)  # pragma: no cover - types are validated above

    def _boolean(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "y"):
            return True
        if text in ("false", "no", "0", "n"):
            return False
        raise self._mismatch(value)

    def _mismatch(self, value: Any) -> ValidationError:
        return ValidationError(
            f"attribute {self.name!r} expects {self.type}, got {value!r}", field=self.name
        )


@attrs.frozen
class SettingsSpec:
    """A plugin's settings: the ``crmkit.toml`` table name, defaults, validator."""

    name: str
    defaults: dict[str, Any] = attrs.field(factory=dict)
    validate: Any = None  # callable(dict) -> None, raising ValueError with a reason


@attrs.frozen
class Section:
    """One section of the customer 360 view, contributed by a plugin."""

    title: str
    data: dict[str, Any] = attrs.field(factory=dict)
    template: str | None = None  # Jinja2 template rendered with ``data`` for HTML
    name: str = ""
    order: int = 100
