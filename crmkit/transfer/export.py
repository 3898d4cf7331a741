"""Exporting customers, orders and interactions to CSV or JSON Lines that import reads back."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import select

from crmkit.core import access
from crmkit.core import tables as t
from crmkit.core.csvcells import csv_writer
from crmkit.core.customers import PROFILE_FIELDS
from crmkit.errors import ValidationError
from crmkit.transfer.columns import INTERACTION_COLUMNS, KINDS, ORDER_COLUMNS
from crmkit.transfer.read import detect_format


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
            self.csv = csv_writer(handle)
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
    lines and consents are not exported. CSV goes through
    :func:`~crmkit.core.csvcells.csv_writer`: a cell a spreadsheet would run as
    a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) gets a leading ``'``,
    which the importer takes off again.

    Needs ``import.run``: a bulk export writes whole tables, every customer's records,
    so it is the bulk import's permission, not the read permissions (which are scoped to
    a staff member's own or team's customers). The export reads no audit entry and
    writes none.
    """
    if kind not in KINDS:
        raise ValidationError(f"cannot export {kind!r}; choose one of: {', '.join(KINDS)}")
    access.authorise(crm, "import.run")
    with access.trusted(crm):
        return _export(crm, kind, path, output_format)


def _export(crm: Any, kind: str, path: str | os.PathLike[str], output_format: str | None) -> int:
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
