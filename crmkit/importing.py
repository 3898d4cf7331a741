"""Streaming import and export of customers, orders and interactions (CSV and JSON Lines).

Reusable from Python::

    from crmkit.importing import import_file, export_file

    result = import_file(crm, "orders", "orders.csv")            # atomic: all rows or none
    result = import_file(crm, "orders", "orders.csv", skip_invalid=True, rejects="bad.csv")
    print(result.summary())       # read N, stored N, already present N, rejected N

Import reads the file once and never holds it in memory:

* pass 1 reads every record, converts and validates it (types, required
  columns, declared custom attributes, external ids repeated in the file,
  customers that are not stored, looked up a batch at a time) and spools the
  good records, converted and with their customers' ids, to a temporary file
  (pickled batches); it keeps only the external ids seen (in memory up to
  ``SEEN_IN_MEMORY``, then in a temporary SQLite file) and the customers
  resolved so far;
* pass 2 (only when pass 1 found nothing wrong, or with ``skip_invalid``)
  reads the spool back and stores it a batch at a time through
  ``crm.orders.add_rows`` / ``crm.customers.add_many`` /
  ``crm.interactions.log_many``: one transaction and one lifecycle event per
  batch for plugins. Records whose external id is already stored are counted
  as "already present" (importing the same file twice stores nothing new).

Accounting: ``read == stored + already_present + rejected``, always.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import gc
import io
import json
import os
import pickle
import sqlite3
import tempfile
import zoneinfo
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import IO, Any

import attrs
from sqlalchemy import select

from crmkit.core import tables as t
from crmkit.core.customers import PROFILE_FIELDS, CustomerService
from crmkit.core.entities import (
    CHANNELS,
    DIRECTIONS,
    ORDER_STATUSES,
    Interaction,
    to_money,
)
from crmkit.errors import CrmError, ValidationError

KINDS = ("customers", "orders", "interactions")
FORMATS = ("csv", "jsonl")
#: problems listed one by one; beyond that only counted
MAX_LISTED = 100
#: rows per stored batch: one transaction and one plugin event each (on SQLite a commit
#: rewrites the index pages the batch touched, so few large batches import fastest)
BATCH_SIZE = 50_000
#: records checked per look-up of their customers in pass 1
LOOKUP_BATCH = 10_000
#: external ids kept in a set for the duplicate check (about 90 bytes each); beyond this
#: many they move to a temporary SQLite file, so memory stays bounded (checking a million
#: ids there costs about 0.3 s more than in a set)
SEEN_IN_MEMORY = 100_000
_SAMPLE_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"

ORDER_COLUMNS = (
    "external_id", "customer", "occurred_at", "amount", "cost", "currency", "status", "channel",
)  # fmt: skip
INTERACTION_COLUMNS = (
    "customer", "channel", "occurred_at", "direction", "subject", "body", "staff",
)  # fmt: skip
REQUIRED = {
    "customers": ("external_id", "name"),
    "orders": ("external_id", "customer", "occurred_at", "amount"),
    "interactions": ("customer", "channel", "occurred_at"),
}
KNOWN = {"orders": set(ORDER_COLUMNS), "interactions": set(INTERACTION_COLUMNS)}


# -- results ---------------------------------------------------------------------------------
@attrs.define
class Problem:
    """One bad record: where it is and why it was refused."""

    line: int
    column: str | None
    reason: str

    def describe(self, path: str) -> str:
        where = f"{path}:{self.line}"
        return (
            f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"
        )


@attrs.define
class ImportResult:
    """What an import read, stored, found already present and rejected."""

    kind: str
    path: str
    read: int = 0
    stored: int = 0
    already_present: int = 0
    rejected: int = 0
    problems: list[Problem] = attrs.field(factory=list)  # the first MAX_LISTED
    committed: bool = False  # False: atomic mode found bad rows and stored nothing

    def summary(self) -> str:
        return (
            f"{self.kind}: read {self.read}, stored {self.stored}, "
            f"already present {self.already_present} (skipped, already stored), "
            f"rejected {self.rejected}"
        )

    def problem_lines(self) -> list[str]:
        lines = [p.describe(self.path) for p in self.problems]
        if self.rejected > len(self.problems):
            lines.append(f"... and {self.rejected - len(self.problems)} more bad rows")
        return lines


class RowError(Exception):
    """A record is invalid (column may be None for the whole record)."""

    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


# -- reading -----------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike[str], given: str | None = None) -> str:
    if given:
        if given not in FORMATS:
            raise ValidationError(f"format {given!r} is not known; use csv or jsonl")
        return given
    suffix = Path(path).suffix.lower()
    return "jsonl" if suffix in (".jsonl", ".ndjson") else "csv"


def _check_encoding(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValidationError(
            f"encoding {encoding!r} is not known; use e.g. utf-8, gbk, gb18030, latin-1"
        ) from None


def _decode_error(path: str, encoding: str, line: int | None, exc: UnicodeDecodeError) -> CrmError:
    where = f"{path}:{line}" if line else path
    hint = (
        "pass --encoding with the file's encoding, e.g. --encoding gbk"
        if encoding.replace("_", "-").startswith("utf")
        else "check --encoding"
    )
    return ValidationError(f"{where}: the file is not valid {encoding} text ({exc.reason}); {hint}")


class RecordReader:
    """Iterate ``(line, record)`` over a CSV or JSON Lines file without loading it.

    ``record`` is a list of strings in :attr:`fieldnames` order for CSV, a
    dict for JSON Lines; a record that
    cannot be read at all (bad JSON, wrong number of CSV fields) comes as a
    :class:`RowError` instead of a dict. ``bytes_read`` follows progress.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        encoding: str | None = None,
        input_format: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.format = detect_format(self.path, input_format)
        self.encoding = _check_encoding(encoding) if encoding else "utf-8"
        self._codec = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        try:
            self.size = os.path.getsize(self.path)
            with open(self.path, "rb") as probe:
                sample = probe.read(_SAMPLE_BYTES)
        except OSError as exc:
            raise ValidationError(
                f"cannot read {self.path}: {exc.strerror or exc}; check the path"
            ) from None
        self.fieldnames: list[str] | None = None
        self.delimiter = ","
        if self.format == "csv":
            self.delimiter = self._sniff(sample)
        self._raw: IO[bytes] | None = None

    def _sniff(self, sample: bytes) -> str:
        decoder = codecs.getincrementaldecoder(self._codec)()
        try:
            text = decoder.decode(sample, final=len(sample) < _SAMPLE_BYTES)
        except UnicodeDecodeError as exc:
            raise _decode_error(self.path, self.encoding, None, exc) from None
        if len(sample) == _SAMPLE_BYTES and "\n" in text:
            text = text[: text.rindex("\n") + 1]
        first = text.split("\n", 1)[0]
        try:
            delimiter = csv.Sniffer().sniff(text, delimiters=_DELIMITERS).delimiter
        except csv.Error:
            delimiter = None
        # column names hardly contain a delimiter: trust the header line over a bad guess
        if delimiter is None or delimiter not in first:
            counts = {d: first.count(d) for d in _DELIMITERS}
            best = max(counts, key=lambda d: counts[d])
            delimiter = best if counts[best] else ","
        return delimiter

    @property
    def bytes_read(self) -> int:
        raw = self._raw
        if raw is None or raw.closed:
            return self.size
        return raw.tell()

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        try:
            self._raw = open(self.path, "rb")  # noqa: SIM115 - closed in finally
        except OSError as exc:
            raise ValidationError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            if self.format == "csv":
                yield from self._csv(self._raw)
            else:
                yield from self._jsonl(self._raw)
        finally:
            self._raw.close()

    def _csv(self, raw: IO[bytes]) -> Iterator[tuple[int, list[str] | RowError]]:
        text = io.TextIOWrapper(raw, encoding=self._codec, newline="")
        reader = csv.reader(text, delimiter=self.delimiter)
        line = 1
        try:
            try:
                header = next(reader)
            except StopIteration:
                raise ValidationError(f"{self.path} is empty; it needs a header row") from None
            names = [h.strip() for h in header]
            if not any(names):
                raise ValidationError(f"{self.path}:1: the header row is empty")
            blank = [i + 1 for i, n in enumerate(names) if not n]
            if blank:
                raise ValidationError(f"{self.path}:1: header column {blank[0]} has no name")
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValidationError(f"{self.path}:1: column {dupes[0]!r} appears twice")
            self.fieldnames = names
            width = len(names)
            line = reader.line_num + 1
            for row in reader:
                start, line = line, reader.line_num + 1
                if len(row) == width:
                    yield start, row
                elif not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                else:
                    yield start, RowError(None, f"has {len(row)} fields, the header has {width}")
        except UnicodeDecodeError as exc:
            raise _decode_error(self.path, self.encoding, line, exc) from None
        except csv.Error as exc:
            raise ValidationError(f"{self.path}:{line}: the CSV is malformed: {exc}") from None

    def _jsonl(self, raw: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
        codec = self._codec
        for number, data in enumerate(raw, start=1):
            try:
                text = data.decode(codec if number == 1 else self.encoding)
            except UnicodeDecodeError as exc:
                raise _decode_error(self.path, self.encoding, number, exc) from None
            if not text.strip():
                continue
            try:
                value = json.loads(text, parse_float=Decimal)
            except ValueError as exc:
                yield number, RowError(None, f"is not valid JSON ({exc})")
                continue
            if not isinstance(value, dict):
                yield number, RowError(None, "is not a JSON object")
                continue
            yield number, value


# -- conversion --------------------------------------------------------------------------------
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
        if not values.get("external_id"):
            raise RowError("external_id", "is empty; every customer needs an external_id")
        if len(values["external_id"]) > 100:
            raise RowError("external_id", "is longer than 100 characters")
        try:
            for name, definition in self.definitions.items():
                if name in attributes:
                    attributes[name] = definition.convert(attributes[name])
                elif definition.required:
                    raise ValidationError(f"attribute {name!r} is required", field=name)
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


# -- import --------------------------------------------------------------------------------
class _Rejects:
    """The rejects file: each bad record with its line and reason, in the input's format."""

    def __init__(self, path: str | None, reader: RecordReader) -> None:
        self.path = path
        self.reader = reader
        self._file: IO[str] | None = None
        self._csv: Any = None
        if path is None:
            return
        if os.path.abspath(path) == os.path.abspath(reader.path):
            raise ValidationError(f"the rejects file {path} is the input file; choose another")
        try:
            self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise ValidationError(f"cannot write {path}: {exc.strerror or exc}") from None
        if reader.format == "csv":
            self._csv = csv.writer(self._file, delimiter=reader.delimiter, lineterminator="\n")
        self._header = False

    def _write_header(self) -> None:
        # the header is known once the input's first row was read
        if self._csv is not None and not self._header:
            self._csv.writerow(["line", "reason", *(self.reader.fieldnames or [])])
        self._header = True

    def write(self, line: int, problem: Problem, record: Any) -> None:
        if self._file is None:
            return
        reason = f"{problem.column}: {problem.reason}" if problem.column else problem.reason
        self._write_header()
        if self._csv is not None:
            values = record if isinstance(record, list) else list((record or {}).values())
            self._csv.writerow([line, reason, *values])
        else:
            if isinstance(record, list):
                record = dict(zip(self.reader.fieldnames or (), record, strict=False))
            data = {"line": line, "reason": reason, "record": record}
            self._file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._write_header()
            self._file.close()


class _SeenKeys:
    """The external ids met so far in a file, to refuse the ones that come again.

    A set in memory up to ``limit`` ids (about 90 bytes each), then a
    temporary SQLite file, so memory stays bounded however long the file is.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = SEEN_IN_MEMORY if limit is None else limit
        self._memory: set[str] = set()
        self._db: sqlite3.Connection | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def first_times(self, keys: list[str]) -> list[bool]:
        """For each key in order: True when met for the first time (it is then recorded)."""
        if self._db is None:
            seen, out = self._memory, []
            for key in keys:
                if key in seen:
                    out.append(False)
                else:
                    seen.add(key)
                    out.append(True)
            if len(seen) > self.limit:
                self._spill()
            return out
        earlier = self._stored(keys)
        batch: set[str] = set()
        out = []
        for key in keys:
            first = key not in earlier and key not in batch
            if first:
                batch.add(key)
            out.append(first)
        self._db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in batch))
        return out

    def _spill(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="crmkit-import-")
        self._db = sqlite3.connect(os.path.join(self._folder.name, "seen.db"))
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.executemany("INSERT INTO seen VALUES (?)", ((k,) for k in self._memory))
        self._memory = set()

    def _stored(self, keys: list[str]) -> set[str]:
        assert self._db is not None
        found: set[str] = set()
        for start in range(0, len(keys), 10_000):
            chunk = keys[start : start + 10_000]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key FROM seen WHERE key IN ({marks})"  # noqa: S608
            found.update(row[0] for row in self._db.execute(query, chunk))
        return found

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._folder is not None:
            self._folder.cleanup()


class _Spool:
    """The converted good records between the two passes, pickled batch by batch to a temp file.

    Storing then needs neither the input file nor the conversion again; the
    file holds one batch in memory at a time and is deleted when closed.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="crmkit-import-")  # noqa: SIM115
        self.batches = 0
        self.size = 0

    def write(self, batch: list[Any]) -> None:
        if batch:
            pickle.dump(batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self.batches += 1

    @property
    def bytes_read(self) -> int:  # progress, as RecordReader.bytes_read
        return self._file.tell()

    def __iter__(self) -> Iterator[list[Any]]:
        self.size = self._file.tell()
        self._file.seek(0)
        for _ in range(self.batches):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written above

    def close(self) -> None:
        self._file.close()


def import_file(
    crm: Any,
    kind: str,
    path: str | os.PathLike[str],
    *,
    encoding: str | None = None,
    input_format: str | None = None,
    skip_invalid: bool = False,
    rejects: str | os.PathLike[str] | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[str, Any], Any] | None = None,
) -> ImportResult:
    """Import ``kind`` records from ``path`` (see the module docstring).

    Atomic by default: when any record is bad nothing is stored and the
    result lists the problems (``committed`` False). With ``skip_invalid``
    the good records are stored and the bad ones written to ``rejects``.
    ``progress(label, source)`` may return a context manager wrapping each
    pass (used by the CLI for its progress bar); ``source.size`` and
    ``source.bytes_read`` tell how far the pass is.
    """
    if rejects is not None and not skip_invalid:
        raise ValidationError("a rejects file needs skip_invalid (--skip-invalid)")
    converter = Converter(crm, kind)
    reader = RecordReader(path, encoding=encoding, input_format=input_format)
    result = ImportResult(kind=kind, path=reader.path)
    sink = _Rejects(os.fspath(rejects) if rejects is not None else None, reader)
    spool = _Spool()
    try:
        with _collector_paused():
            try:
                _validate(crm, converter, reader, result, sink, spool, skip_invalid, progress)
            finally:
                sink.close()
            if result.rejected and not skip_invalid:
                return result
            _store(crm, kind, spool, result, batch_size, progress)
    finally:
        spool.close()
    result.committed = True
    return result


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while records stream through.

    An import makes millions of short-lived containers and no reference
    cycles; the collector's passes over them cost about a quarter of the
    import's time. Whatever cyclic garbage plugins make meanwhile is
    collected once the import ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _records(source: Any, label: str, progress: Any) -> Iterator[Any]:
    if progress is None:
        yield from source
        return
    with progress(label, source) as tick:
        for count, item in enumerate(source, start=1):
            yield item
            if count & 4095 == 0:
                tick()
        tick()


def _validate(
    crm: Any,
    converter: Converter,
    reader: RecordReader,
    result: ImportResult,
    sink: _Rejects,
    spool: _Spool,
    skip_invalid: bool,
    progress: Any,
) -> None:
    """Pass 1: convert and check every record; spool the good ones, ready to store."""
    seen = _SeenKeys()
    customers: dict[str, int] = {}  # customer external id -> id, resolved a batch at a time
    # converted records wait here until their customers are looked up a batch at a time
    values: list[Any] = []
    origins: list[tuple[int, Any]] = []  # (line, record) of each value, for the rejects file
    problems: list[tuple[int, Problem, Any]] = []  # (line, problem, record)
    ref_of = converter.customer_ref
    order_format = crm.orders.row_format() if converter.kind == "orders" else None

    def flush() -> None:
        good, where = values, origins
        if key_of is not None:
            firsts = seen.first_times(list(map(key_of, good)))
            if not all(firsts):
                good, where = [], []
                for value, origin, first in zip(values, origins, firsts, strict=True):
                    if first:
                        good.append(value)
                        where.append(origin)
                    else:
                        line, record = origin
                        reason = f"{key_of(value)!r} appears earlier in the file"
                        problems.append((line, Problem(line, "external_id", reason), record))
        if ref_of is not None:
            unknown = set(map(ref_of, good)).difference(customers)
            if unknown:
                customers.update(crm.customers.ids_by_external_id(unknown))
                if missing := unknown.difference(customers):
                    found = []
                    for value, (line, record) in zip(good, where, strict=True):
                        ref = ref_of(value)
                        if ref in missing:
                            reason = f"no customer has external_id {ref!r}"
                            problems.append((line, Problem(line, "customer", reason), record))
                        else:
                            found.append(value)
                    good = found
            good = converter.resolved(good, customers)
        problems.sort(key=lambda item: item[0])  # rejects in file order
        for line, problem, record in problems:
            result.rejected += 1
            if len(result.problems) < MAX_LISTED:
                result.problems.append(problem)
            sink.write(line, problem, record)
        if skip_invalid or not result.rejected:  # atomic mode stores nothing once a row is bad
            # orders go in the driver's form: on SQLite plain text, cheap to pickle and store
            spool.write(order_format.to_driver(good) if order_format else good)
        values.clear()
        origins.clear()
        problems.clear()

    key_of = converter.key
    convert: Callable[[Any], Any] | None = None
    read = 0
    try:
        for line, record in _records(reader, "validating", progress):
            if convert is None:
                converter.check_header(reader.path, reader.fieldnames)
                convert = converter.bind(reader.fieldnames)
            read += 1
            if len(values) + len(problems) >= LOOKUP_BATCH:
                flush()
            if record.__class__ is RowError:
                problems.append((line, Problem(line, record.column, record.reason), None))
                continue
            try:
                value = convert(record)
            except RowError as exc:
                problems.append((line, Problem(line, exc.column, exc.reason), record))
                continue
            values.append(value)
            origins.append((line, record))
        result.read = read
        if convert is None:
            converter.check_header(reader.path, reader.fieldnames)
        flush()
    finally:
        seen.close()  # its spill file, if the file was long


def _store(
    crm: Any, kind: str, spool: _Spool, result: ImportResult, batch_size: int, progress: Any
) -> None:
    """Pass 2: store the spooled records, one transaction and one event per ``batch_size``."""
    batch: list[Any] = []

    def flush() -> None:
        if kind == "orders":
            outcome = crm.orders.add_rows(batch, driver_form=True)
            result.stored += outcome.stored
            result.already_present += len(outcome.skipped)
        elif kind == "customers":
            outcome = crm.customers.add_many(batch, batch_size=len(batch))
            result.stored += outcome.stored
            result.already_present += len(outcome.skipped)
        else:
            interactions = [
                Interaction(
                    customer_id=customer_id,
                    channel=channel,
                    occurred_at=occurred_at,
                    direction=direction,
                    subject=subject,
                    body=body,
                    staff=staff,
                )
                for customer_id, channel, occurred_at, direction, subject, body, staff in batch
            ]
            result.stored += crm.interactions.log_many(interactions, batch_size=len(batch))
        batch.clear()

    for chunk in _records(spool, "storing", progress):
        while chunk:
            room = batch_size - len(batch)
            batch.extend(chunk[:room])
            chunk = chunk[room:]
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()


# -- export --------------------------------------------------------------------------------
def _format_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(_format_value(value))


class _Writer:
    def __init__(self, handle: IO[str], output_format: str, columns: list[str]) -> None:
        self.handle = handle
        self.format = output_format
        self.columns = columns
        if output_format == "csv":
            self.csv = csv.writer(handle, lineterminator="\n")
            self.csv.writerow(columns)

    def write(self, row: dict[str, Any]) -> None:
        if self.format == "csv":
            self.csv.writerow([_csv_cell(row.get(c)) for c in self.columns])
        else:
            data = {c: _format_value(row[c]) for c in self.columns if row.get(c) is not None}
            self.handle.write(json.dumps(data, ensure_ascii=False) + "\n")


def _paged(crm: Any, table: Any, page: int = 5000) -> Iterator[Any]:
    last = 0
    while True:
        with crm.reading() as connection:
            rows = connection.execute(
                select(table).where(table.c.id > last).order_by(table.c.id).limit(page)
            ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def _external_ids(crm: Any, ids: set[int]) -> dict[int, str | None]:
    found: dict[int, str | None] = {}
    wanted = sorted(ids)
    with crm.reading() as connection:
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start : start + 5000]
            found.update(
                connection.execute(
                    select(t.customers.c.id, t.customers.c.external_id).where(
                        t.customers.c.id.in_(chunk)
                    )
                ).all()
            )
    return found


def export_file(
    crm: Any,
    kind: str,
    path: str | os.PathLike[str],
    *,
    output_format: str | None = None,
) -> int:
    """Write every ``kind`` record to ``path`` (CSV or JSON Lines); return how many.

    The file uses the columns :func:`import_file` reads, so exporting, importing
    into an empty database and exporting again gives the same file. Times are
    written in UTC with their offset. Customers without an external id, order
    lines and consents are not exported.
    """
    if kind not in KINDS:
        raise ValidationError(f"cannot export {kind!r}; choose one of: {', '.join(KINDS)}")
    fmt = detect_format(path, output_format)
    try:
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ValidationError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None
    count = 0
    with handle:
        if kind == "customers":
            names = _attribute_names(crm)
            columns = [*PROFILE_FIELDS, *(n for n in names if n not in PROFILE_FIELDS)]
            writer = _Writer(handle, fmt, columns)
            for customer in crm.customers.iterate():
                if not customer.external_id or customer.erased_at is not None:
                    continue
                row = {f: getattr(customer, f) for f in PROFILE_FIELDS}
                row.update(customer.attributes)
                writer.write(row)
                count += 1
            return count
        table = t.orders if kind == "orders" else t.interactions
        columns = list(ORDER_COLUMNS if kind == "orders" else INTERACTION_COLUMNS)
        writer = _Writer(handle, fmt, columns)
        page: list[Any] = []

        def flush() -> None:
            refs = _external_ids(crm, {r.customer_id for r in page})
            for r in page:
                row = dict(r._mapping)
                row["customer"] = refs.get(r.customer_id)
                writer.write(row)
            page.clear()

        for row in _paged(crm, table):
            page.append(row)
            count += 1
            if len(page) >= 5000:
                flush()
        flush()
    return count


def _attribute_names(crm: Any) -> list[str]:
    """Every custom attribute name in use or declared, sorted (one streaming read)."""
    names = set(crm.attribute_definitions)
    last = 0
    while True:
        with crm.reading() as connection:
            rows = connection.execute(
                select(t.customers.c.id, t.customers.c.attributes)
                .where(t.customers.c.id > last)
                .order_by(t.customers.c.id)
                .limit(5000)
            ).all()
        if not rows:
            return sorted(names)
        for row in rows:
            names.update(row.attributes or {})
        last = rows[-1].id


__all__ = [
    "BATCH_SIZE",
    "FORMATS",
    "KINDS",
    "Converter",
    "ImportResult",
    "Problem",
    "RecordReader",
    "RowError",
    "export_file",
    "import_file",
]
