"""Converting and checking records: strings or JSON values into what the services store."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from operator import attrgetter, itemgetter
from typing import Any

from crmkit.core.customers import PROFILE_FIELDS, CustomerService
from crmkit.core.entities import CHANNELS, DIRECTIONS, ORDER_STATUSES, to_money
from crmkit.errors import ValidationError
from crmkit.transfer.columns import KINDS, KNOWN, REQUIRED
from crmkit.transfer.results import RowError


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _moment(value: Any, column: str, zone: dt.tzinfo) -> dt.datetime:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise RowError(column, "is empty; give an ISO date or datetime such as 2025-03-01T14:30")
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RowError(
            column, f"{text!r} is not an ISO date or datetime such as 2025-03-01T14:30"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def _amount(value: Any, column: str) -> Decimal:
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            try:
                amount = to_money(value, column)
            except ValidationError as exc:
                raise RowError(column, str(exc).removeprefix(f"{column} ")) from None
        return amount
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RowError(column, f"{value!r} is not a decimal number")
    return to_money(value, column)


def _money_limit(amount: Decimal, column: str) -> None:
    """Money is NUMERIC(18, 4): at most 14 digits before the point and 4 after."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4 and amount != amount.quantize(_FOUR):
        raise RowError(column, f"{amount} has more than 4 decimal places")
    if abs(amount) >= _MONEY_MAX:
        raise RowError(column, f"{amount} is too large (at most 14 digits before the point)")


def _money_text(text: str, column: str) -> Decimal:
    """A money column given as text; the common short form without checks on the slow path."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = _amount(text, column)
    if len(text) <= 14 and "e" not in text and "E" not in text:
        point = text.find(".")
        if (point < 0 or len(text) - point <= 5) and amount.is_finite():
            return amount
    if not amount.is_finite():
        amount = _amount(text, column)
    _money_limit(amount, column)
    return amount


_FOUR = Decimal("0.0001")
_MONEY_MAX = Decimal(10) ** 14


class Converter:
    """Turns records of one kind into what the services store; raises RowError."""

    def __init__(self, crm: Any, kind: str) -> None:
        if kind not in KINDS:
            raise ValidationError(f"cannot import {kind!r}; choose one of: {', '.join(KINDS)}")
        self.crm = crm
        self.kind = kind
        self.zone = zoneinfo.ZoneInfo(crm.config.timezone)
        self.currency = crm.config.currency
        self.definitions = crm.attribute_definitions
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
        one, else :meth:`convert`."""
        self.fieldnames = fieldnames
        if fieldnames is not None and self.kind == "orders":
            return self._order_row_function(fieldnames)
        return self.convert

    fieldnames: list[str] | None = None

    @property
    def key(self) -> Callable[[Any], str] | None:
        """Gets a converted record's external id (None: this kind has none)."""
        if self.kind == "orders":
            return itemgetter(0)
        return attrgetter("external_id") if self.kind == "customers" else None

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
            return [(e, ids[c], at, a, co, cu, st, ch) for e, c, at, a, co, cu, st, ch in values]
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

    def _order_row_function(self, names: list[str]) -> Callable[[list[str]], tuple[Any, ...]]:
        """A converter for CSV order rows (lists of strings) with as little work as possible."""
        position = {name: i for i, name in enumerate(names)}
        i_ext, i_cust, i_at, i_amount = (position[c] for c in REQUIRED["orders"])
        i_cost = position.get("cost")
        i_currency = position.get("currency")
        i_status = position.get("status")
        i_channel = position.get("channel")
        zone = self.zone
        default_currency = self.currency
        statuses = frozenset(ORDER_STATUSES)
        fromisoformat = dt.datetime.fromisoformat
        general = self.order

        def convert(row: list[str]) -> tuple[Any, ...]:
            ext = row[i_ext]
            customer = row[i_cust]
            at = row[i_at]
            if (
                not ext
                or not customer
                or len(ext) > 100
                or len(at) <= 10
                or ext[0] == " "
                or ext[-1] == " "
                or customer[0] == " "
                or customer[-1] == " "
            ):
                return general(dict(zip(names, row, strict=True)))
            try:
                occurred_at = fromisoformat(at)
            except ValueError:  # the general path says why
                return general(dict(zip(names, row, strict=True)))
            if occurred_at.tzinfo is None:
                occurred_at = occurred_at.replace(tzinfo=zone)
            amount = _money_text(row[i_amount], "amount")
            cost = None
            if i_cost is not None and row[i_cost]:
                cost = _money_text(row[i_cost], "cost")
            currency = default_currency
            if i_currency is not None and row[i_currency]:
                currency = row[i_currency].strip().upper()
                if len(currency) != 3 or not currency.isalpha():
                    raise RowError("currency", f"{currency!r} is not a 3-letter code such as EUR")
            status = "paid"
            if i_status is not None and row[i_status]:
                status = row[i_status].strip()
                if status not in statuses:
                    raise RowError(
                        "status", f"{status!r} is not one of: {', '.join(ORDER_STATUSES)}"
                    )
            channel = None
            if i_channel is not None and row[i_channel]:
                channel = row[i_channel].strip() or None
                if channel is not None and len(channel) > 20:
                    raise RowError("channel", "is longer than 20 characters")
            return (ext, customer, occurred_at, amount, cost, currency, status, channel)

        return convert

    def order(self, r: dict[str, Any]) -> tuple[Any, ...]:
        external_id = r["external_id"]
        if not isinstance(external_id, str):
            external_id = "" if external_id is None else str(external_id)
        external_id = external_id.strip()
        if not external_id:
            raise RowError("external_id", "is empty; every order needs an external_id")
        if len(external_id) > 100:
            raise RowError("external_id", "is longer than 100 characters")
        customer = _text(r, "customer")
        if not customer:
            raise RowError("customer", "is empty; give the customer's external_id")
        occurred_at = _moment(r["occurred_at"], "occurred_at", self.zone)
        amount = _amount(r["amount"], "amount")
        _money_limit(amount, "amount")  # (the row function's fast path checks the text)
        cost_text = r.get("cost")
        cost = None
        if cost_text is not None and cost_text != "":
            cost = _amount(cost_text, "cost")
            _money_limit(cost, "cost")
        currency = _text(r, "currency").upper() or self.currency
        if len(currency) != 3 or not currency.isalpha():
            raise RowError("currency", f"{currency!r} is not a 3-letter code such as EUR")
        status = _text(r, "status") or "paid"
        if status not in ORDER_STATUSES:
            raise RowError("status", f"{status!r} is not one of: {', '.join(ORDER_STATUSES)}")
        channel = _text(r, "channel") or None
        if channel is not None and len(channel) > 20:
            raise RowError("channel", "is longer than 20 characters")
        return (external_id, customer, occurred_at, amount, cost, currency, status, channel)

    def interaction(self, r: dict[str, Any]) -> tuple[Any, ...]:
        customer = _text(r, "customer")
        if not customer:
            raise RowError("customer", "is empty; give the customer's external_id")
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
        if len(subject) > 500:
            raise RowError("subject", "is longer than 500 characters")
        staff = _text(r, "staff") or None
        return (customer, channel, occurred_at, direction, subject, body, staff)

    def customer(self, r: dict[str, Any]) -> Any:
        values, attributes = _customer_fields(r)
        if not values.get("external_id"):
            raise RowError("external_id", "is empty; every customer needs an external_id")
        if len(values["external_id"]) > 100:
            raise RowError("external_id", "is longer than 100 characters")
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
