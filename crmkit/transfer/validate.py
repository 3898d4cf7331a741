"""Pass 1 of an import: convert and check every record, spool the good ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmkit.transfer.convert import Converter
from crmkit.transfer.duplicates import SeenKeys
from crmkit.transfer.read import RecordReader, records
from crmkit.transfer.rejects import Rejects
from crmkit.transfer.results import ImportResult, Problem, RowError
from crmkit.transfer.spool import Spool

#: problems listed one by one; beyond that only counted
MAX_LISTED = 100
#: records checked per look-up of their customers in pass 1
LOOKUP_BATCH = 10_000


def validate(
    crm: Any,
    converter: Converter,
    reader: RecordReader,
    result: ImportResult,
    sink: Rejects,
    spool: Spool,
    skip_invalid: bool,
    progress: Any,
) -> None:
    """Pass 1: convert and check every record; spool the good ones, ready to store."""
    seen = SeenKeys()
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
        for line, record in records(reader, "validating", progress):
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
