"""Converting and checking records: strings or JSON values into what the services store.

What the database would refuse is refused here, per row, with the reason: the
limits come from the table definitions (:mod:`crmkit.core.tables`) through
:func:`crmkit.core.bulk.value_problem` and friends, never from a second list.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from operator import attrgetter, itemgetter
from typing import Any

from crmkit.core import tables as t
from crmkit.core.bulk import (
    NUL_REASON,
    money_limits,
    money_problem,
    text_limit,
    utc_problem,
    value_problem,
)
from crmkit.core.customers import PROFILE_FIELDS, CustomerService
from crmkit.core.entities import (
    CHANNELS,
    DIRECTIONS,
    ORDER_STATUSES,
    money_format_hint,
    to_money,
)
from crmkit.core.orders import REFUND_STATUS
from crmkit.errors import ValidationError
from crmkit.transfer.columns import KINDS, KNOWN, REQUIRED
from crmkit.transfer.results import RowError

#: digits before the point and after it that orders' money columns hold (NUMERIC(18, 4))
MONEY_DIGITS, MONEY_PLACES = money_limits(t.orders.c.amount)
#: the longest external id and customer reference (their String(n) columns)
ID_LENGTH = text_limit(t.orders.c.external_id)
CUSTOMER_REF_LENGTH = text_limit(t.customers.c.external_id)
#: a plain amount's characters: text made only of these is read by the fast path
_PLAIN_MONEY = "0123456789.+-"
#: zones without daylight saving or other changes of offset: no time is skipped or repeated
FIXED_ZONES = frozenset(
    ("UTC", "Etc/UTC", "Etc/UCT", "UCT", "GMT", "Etc/GMT", "Universal", "Etc/Universal", "Zulu")
)


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


_LIMITS: dict[Any, int] = {}  # text column -> its length limit (0: none), read once


def _checked(value: str, column: str, table_column: Any) -> str:
    """``value`` when ``table_column`` (a text column) can store it; RowError naming ``column``
    otherwise (see :func:`crmkit.core.bulk.value_problem`)."""
    limit = _LIMITS.get(table_column)
    if limit is None:
        limit = _LIMITS[table_column] = text_limit(table_column) or 0
    if "\x00" in value or (limit and len(value) > limit):
        raise RowError(column, value_problem(table_column, value) or "cannot be stored")
    return value


def _reference(value: str, column: str) -> str:
    """A customer reference (a customer's external id): refused when no customer can have it."""
    if "\x00" in value:
        raise RowError(column, NUL_REASON)
    if len(value) > CUSTOMER_REF_LENGTH:  # type: ignore[operator]
        raise RowError(
            column, f"no customer has an external_id this long ({len(value)} characters)"
        )
    return value


def _offset(delta: dt.timedelta | None) -> str:
    seconds = int((delta or dt.timedelta()).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def local_time(naive: dt.datetime, zone: dt.tzinfo, column: str) -> dt.datetime:
    """``naive`` (a wall-clock time) in ``zone``; RowError when that wall-clock time does not
    exist there (the clocks jump forward over it) or happens twice (they go back)."""
    early = naive.replace(tzinfo=zone)
    late = naive.replace(tzinfo=zone, fold=1)
    try:
        early_offset, late_offset = early.utcoffset(), late.utcoffset()
    except OverflowError:
        early_offset = late_offset = None
    if early_offset != late_offset:
        text = naive.isoformat()
        if early.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
            raise RowError(
                column,
                f"{text} does not exist in {zone} (the clocks jump forward over it); "
                "give the time with its offset, or the time the clock showed",
            )
        raise RowError(
            column,
            f"{text} happens twice in {zone} (the clocks go back); give its offset: "
            f"{text}{_offset(early_offset)} or {text}{_offset(late_offset)}",
        )
    return early


def _in_utc(moment: dt.datetime, column: str, text: str) -> dt.datetime:
    """``moment`` when it has a UTC form (only years 1 and 9999 may not); else RowError."""
    if moment.year in (1, 9999) and utc_problem(moment) is not None:
        raise RowError(
            column, f"{text!r} is out of range in UTC (before year 1 or after 9999 there)"
        )
    return moment


def _moment(value: Any, column: str, zone: dt.tzinfo) -> dt.datetime:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise RowError(column, "is empty; give an ISO date or datetime such as 2025-03-01T14:30")
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime(day.year, day.month, day.day)
        else:
            moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RowError(
            column, f"{text!r} is not an ISO date or datetime such as 2025-03-01T14:30"
        ) from None
    if moment.tzinfo is None:
        moment = local_time(moment, zone, column)
    return _in_utc(moment, column, text)


def _amount(value: Any, column: str, decimal_comma: bool = False) -> Decimal:
    """A money value from text (the one money format) or a JSON number."""
    if isinstance(value, str):
        try:
            return to_money(value, column, decimal_comma=decimal_comma)
        except ValidationError as exc:
            reason = str(exc).removeprefix(f"{column} ")
            if "," in value and not decimal_comma:
                reason += "; if the comma is the decimal separator, import with --decimal-comma"
            raise RowError(column, reason) from None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RowError(column, f"{value!r} is not a decimal number {money_format_hint()}")
    try:
        return to_money(value, column)
    except ValidationError as exc:
        raise RowError(column, str(exc).removeprefix(f"{column} ")) from None


def _money_limit(amount: Decimal, column: str) -> None:
    """Money is NUMERIC(18, 4): at most 14 digits before the point and 4 after."""
    problem = money_problem(amount, MONEY_DIGITS, MONEY_PLACES)
    if problem is not None:
        raise RowError(column, problem)


def _money_text(text: str, column: str) -> Decimal:
    """A money column given as text; the common short plain form without further checks."""
    if text and not text.strip(_PLAIN_MONEY):
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = None
        if amount is not None:
            if len(text) <= MONEY_DIGITS:
                point = text.find(".")
                if point < 0 or len(text) - point <= MONEY_PLACES + 1:
                    return amount
            _money_limit(amount, column)
            return amount
    amount = _amount(text, column)
    _money_limit(amount, column)
    return amount


def _signs(amount: Decimal, cost: Decimal | None, status: str) -> None:
    """Negative amounts and costs only for refunds (crm.orders' rule, per row here)."""
    if status == REFUND_STATUS:
        return
    for column, value in (("amount", amount), ("cost", cost)):
        if value is not None and value < 0:
            raise RowError(
                column,
                f"{value} is negative; only a refunded order (status refunded) may have a "
                "negative amount or cost",
            )


def _currency_code(text: str, known: dict[str, str]) -> str:
    """A currency as written in a file, checked (and remembered in ``known``)."""
    code = text.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise RowError("currency", f"{code!r} is not a 3-letter code such as EUR")
    known[text] = code
    return code


def _status(text: str) -> str:
    status = text.strip()
    if status not in ORDER_STATUSES:
        raise RowError("status", f"{status!r} is not one of: {', '.join(ORDER_STATUSES)}")
    return status


def _channel(text: str) -> str | None:
    channel = text.strip() or None
    if channel is not None:
        _checked(channel, "channel", t.orders.c.channel)
    return channel


def content_key(values: tuple[Any, ...]) -> str:
    """The key of an interaction given without an external id: ``sha256:`` and 32 hex digits of
    its customer reference, channel, UTC time, direction, subject, body and staff."""
    customer, channel, occurred_at, direction, subject, body, staff = values
    moment = occurred_at.astimezone(dt.UTC).isoformat()
    text = "\x1f".join((customer, channel, moment, direction, subject, body, staff or ""))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Converter:
    """Turns records of one kind into what the services store; raises RowError."""

    def __init__(self, crm: Any, kind: str, *, decimal_comma: bool = False) -> None:
        if kind not in KINDS:
            raise ValidationError(f"cannot import {kind!r}; choose one of: {', '.join(KINDS)}")
        self.crm = crm
        self.kind = kind
        self.zone = zoneinfo.ZoneInfo(crm.config.timezone)
        self.currency = crm.config.currency
        self.definitions = crm.attribute_definitions
        self.decimal_comma = decimal_comma
        self._checked_keys: set[frozenset[str]] = set()

    def check_header(self, path: str, names: list[str] | None) -> None:
        """Refuse a CSV header that lacks required columns or has unknown ones."""
        if names is None:
            return
        missing = [c for c in REQUIRED[self.kind] if c not in names]
        if missing:
            raise ValidationError(
                f"{path}:1: the header has no {missing[0]!r} column; {self.kind} need "
                f"{', '.join(REQUIRED[self.kind])} (found: {', '.join(names)})"
            )
        if self.kind in KNOWN:
            unknown = [n for n in names if n not in KNOWN[self.kind]]
            if unknown:
                raise ValidationError(
                    f"{path}:1: column {unknown[0]!r} is not an {self.kind[:-1]} field; "
                    f"known columns: {', '.join(sorted(KNOWN[self.kind]))}"
                )

    def _check_keys(self, record: dict[str, Any]) -> None:
        keys = frozenset(record)
        if keys in self._checked_keys:
            return
        for column in REQUIRED[self.kind]:
            if column not in keys:
                raise RowError(column, "is missing")
        if self.kind in KNOWN:
            unknown = sorted(keys - KNOWN[self.kind])
            if unknown:
                raise RowError(unknown[0], f"is not an {self.kind[:-1]} field")
        self._checked_keys.add(keys)

    def bind(self, fieldnames: list[str] | None) -> Callable[[Any], Any]:
        """Use the CSV header (rows then come as lists in this column order); return the
        function converting one record (raises RowError): for CSV orders a specialised
        one, else :meth:`convert`. When :attr:`driver_form` is then True, that function
        gives orders in ``crm.orders.row_format()``'s driver form already (SQLite)."""
        self.fieldnames = fieldnames
        if fieldnames is not None and self.kind == "orders" and not self.decimal_comma:
            from crmkit.transfer.orderrows import order_rows, sqlite_order_rows  # (it uses us)

            if self.crm.engine.dialect.name == "sqlite":
                self.driver_form = True
                return sqlite_order_rows(self, fieldnames)
            return order_rows(self, fieldnames)
        return self.convert

    def bind_runs(self) -> Callable[[list[Any]], list[Any] | None] | None:
        """After :meth:`bind`: the function converting a run of CSV records (all lists of
        the header's width) column by column into what the bound function gives each, or
        None when it cannot tell every record good that way (the records then go one by
        one); None when this kind has no such function (CSV orders have)."""
        if self.kind == "orders" and self.fieldnames is not None and not self.decimal_comma:
            from crmkit.transfer.orderruns import order_runs  # (it uses us)

            return order_runs(self, self.fieldnames, driver_form=self.driver_form)
        return None

    fieldnames: list[str] | None = None
    #: the bound function gives orders in their driver form (see :meth:`bind`)
    driver_form = False

    @property
    def key(self) -> Callable[[Any], str] | None:
        """Gets a converted record's external id (None: this kind has none)."""
        if self.kind == "orders":
            return itemgetter(0)
        if self.kind == "interactions":
            return itemgetter(7)
        return attrgetter("external_id")

    @property
    def derived_key(self) -> Callable[[Any], bool] | None:
        """Tells whether a converted record's key was derived from its content (interactions
        given without an external id); None: keys are always given."""
        return itemgetter(8) if self.kind == "interactions" else None

    def with_key(self, value: tuple[Any, ...], key: str) -> tuple[Any, ...]:
        """A converted interaction with another (derived) key."""
        return (*value[:7], key, True)

    @property
    def customer_ref(self) -> Callable[[Any], str] | None:
        """Gets a converted record's customer external id (None: this kind has none)."""
        if self.kind == "orders":
            return itemgetter(1)
        return itemgetter(0) if self.kind == "interactions" else None

    def resolved(self, values: list[tuple[Any, ...]], ids: dict[str, int]) -> list[Any]:
        """Converted orders or interactions with their customer references turned into ids.

        Orders come out in ``crm.orders.add_rows`` order (ORDER_COLUMNS).
        """
        if self.kind == "orders":
            if not values:
                return []
            # column by column: the transposition and the look-ups run in C
            columns: list[Any] = list(zip(*values, strict=True))
            columns[1] = map(ids.__getitem__, columns[1])
            return list(zip(*columns, strict=True))
        return [(ids[ref], *rest) for ref, *rest in values]

    def convert(self, record: list[str] | dict[str, Any]) -> Any:
        """The record converted: a tuple for orders and interactions, a Customer for customers."""
        if isinstance(record, list):
            record = dict(zip(self.fieldnames or (), record, strict=True))
        else:
            self._check_keys(record)
        if self.kind == "orders":
            return self.order(record)
        if self.kind == "interactions":
            return self.interaction(record)
        return self.customer(record)

    def order(self, r: dict[str, Any]) -> tuple[Any, ...]:
        external_id = r["external_id"]
        if not isinstance(external_id, str):
            external_id = "" if external_id is None else str(external_id)
        external_id = external_id.strip()
        if not external_id:
            raise RowError("external_id", "is empty; every order needs an external_id")
        _checked(external_id, "external_id", t.orders.c.external_id)
        customer = _text(r, "customer")
        if not customer:
            raise RowError("customer", "is empty; give the customer's external_id")
        _reference(customer, "customer")
        occurred_at = _moment(r["occurred_at"], "occurred_at", self.zone)
        amount = _amount(r["amount"], "amount", self.decimal_comma)
        _money_limit(amount, "amount")  # (the row function's fast path checks the text)
        cost_text = r.get("cost")
        cost = None
        if cost_text is not None and cost_text != "":
            cost = _amount(cost_text, "cost", self.decimal_comma)
            _money_limit(cost, "cost")
        currency = _text(r, "currency")
        currency = _currency_code(currency, {}) if currency else self.currency
        status = _status(_text(r, "status") or "paid")
        _signs(amount, cost, status)
        channel = _channel(_text(r, "channel"))
        return (external_id, customer, occurred_at, amount, cost, currency, status, channel)

    def interaction(self, r: dict[str, Any]) -> tuple[Any, ...]:
        customer = _text(r, "customer")
        if not customer:
            raise RowError("customer", "is empty; give the customer's external_id")
        _reference(customer, "customer")
        channel = _text(r, "channel")
        if channel not in CHANNELS:
            raise RowError("channel", f"{channel!r} is not one of: {', '.join(CHANNELS)}")
        occurred_at = _moment(r["occurred_at"], "occurred_at", self.zone)
        direction = _text(r, "direction") or "inbound"
        if direction not in DIRECTIONS:
            raise RowError("direction", f"{direction!r} is not one of: {', '.join(DIRECTIONS)}")
        subject = r.get("subject") or ""
        body = r.get("body") or ""
        if not isinstance(subject, str) or not isinstance(body, str):
            raise RowError("subject" if not isinstance(subject, str) else "body", "must be text")
        _checked(subject, "subject", t.interactions.c.subject)
        _checked(body, "body", t.interactions.c.body)
        staff = _text(r, "staff") or None
        if staff is not None:
            _checked(staff, "staff", t.interactions.c.staff)
        values = (customer, channel, occurred_at, direction, subject, body, staff)
        external_id = _text(r, "external_id")
        if external_id:
            _checked(external_id, "external_id", t.interactions.c.external_id)
            return (*values, external_id, False)
        return (*values, content_key(values), True)

    def customer(self, r: dict[str, Any]) -> Any:
        values, attributes = _customer_fields(r)
        if not values.get("external_id"):
            raise RowError("external_id", "is empty; every customer needs an external_id")
        try:
            self._convert_attributes(attributes)
            entity = CustomerService.build({**values, "attributes": attributes})
        except ValidationError as exc:
            field = exc.field or None
            reason = str(exc)
            if field and reason.startswith(f"{field} "):
                reason = reason[len(field) + 1 :]
            raise RowError(field, reason) from None
        except (TypeError, ValueError) as exc:
            raise RowError(None, str(exc)) from None
        for name in PROFILE_FIELDS:
            value = getattr(entity, name)
            if isinstance(value, str):
                _checked(value, name, t.customers.c[name])
        return entity

    def _convert_attributes(self, attributes: dict[str, Any]) -> None:
        """Convert the declared attributes given in place; refuse a required one missing."""
        for name, definition in self.definitions.items():
            if name in attributes:
                attributes[name] = definition.convert(attributes[name])
            elif definition.required:
                raise ValidationError(f"attribute {name!r} is required", field=name)


def _customer_fields(r: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A customer record's profile fields and its custom attributes (empty values left out)."""
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in r.items():
        if isinstance(value, str):
            value = value.strip() if key in PROFILE_FIELDS else value
        if value is None or value == "":
            continue
        if key in PROFILE_FIELDS:
            if not isinstance(value, str):
                if key == "birth_date" or isinstance(value, dict | list):
                    raise RowError(key, f"{value!r} must be text")
                value = str(value)
            values[key] = value
        elif key in ("attributes", "consents"):
            raise RowError(key, "is reserved; give each attribute as its own column")
        else:
            attributes[key] = value
    return values, attributes
