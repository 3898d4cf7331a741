"""Pass 1 of an import: convert and check every record, spool the good ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from crmkit.core import tables as t
from crmkit.core.bulk import existing_values
from crmkit.core.personal import erased_or_merged
from crmkit.transfer.convert import Converter
from crmkit.transfer.duplicates import SeenKeys
from crmkit.transfer.read import RecordReader, blocks
from crmkit.transfer.rejects import Rejects
from crmkit.transfer.results import ImportResult, Problem, RowError
from crmkit.transfer.spool import Spool

#: problems listed one by one; beyond that only counted
MAX_LISTED = 100
#: records checked per look-up of their customers in pass 1
LOOKUP_BATCH = 10_000
#: the key column of the kinds whose stored records pass 1 leaves out (see _not_stored)
_STORED_KEYS = {"orders": t.orders.c.external_id, "interactions": t.interactions.c.external_id}


def validate(
    crm: Any,
    converter: Converter,
    reader: RecordReader,
    result: ImportResult,
    sink: Rejects,
    spool: Spool,
    skip_invalid: bool,
    progress: Any,
) -> tuple[set[int], int]:
    """Pass 1: convert and check every record; spool the good ones, ready to store.

    Returns the ids of the customers the good records refer to (checked writable here;
    the storing transaction checks them once more, see :func:`~crmkit.transfer.store.store`),
    and how many good records were found already stored (left out of the spool).
    """
    pending = _Pending(crm, converter, result, sink, spool, skip_invalid)
    # the loop runs once per run of records (once per record outside the common runs): the
    # lists and the flush are plain local names here
    values, origins, problems = pending.values, pending.origins, pending.problems
    flush = pending.flush
    convert: Callable[[Any], Any] | None = None
    convert_run: Callable[[list[Any]], list[Any] | None] | None = None
    read = 0
    left = batch = LOOKUP_BATCH  # records until the next flush
    try:
        for lines, run, uniform in blocks(reader, "validating", progress):
            if convert is None:
                converter.check_header(reader.path, reader.fieldnames)
                convert = converter.bind(reader.fieldnames)
                convert_run = converter.bind_runs()
            size = len(run)
            start = 0
            while start < size:
                # a flush every LOOKUP_BATCH records, wherever the runs end
                take = min(left, size - start)
                if take < size:
                    part, part_lines = run[start : start + take], lines[start : start + take]
                else:
                    part, part_lines = run, lines
                start += take
                read += take
                left -= take
                # a uniform run column by column when the converter can (None: it cannot
                # tell every row good that way, and the rows go one by one)
                columns = convert_run(part) if uniform and convert_run is not None else None
                if columns is not None:
                    pending.add_columns(part_lines, part, columns)
                else:
                    if pending.columns:  # (values stay in file order)
                        pending.materialise()
                    _one_by_one(convert, part_lines, part, values, origins, problems)
                if not left:
                    flush()
                    left = batch
        result.read = read
        if convert is None:
            converter.check_header(reader.path, reader.fieldnames)
        flush()
    finally:
        pending.close()
    return set(pending.customers.values()), pending.present


def _one_by_one(
    convert: Callable[[Any], Any],
    lines: Sequence[int],
    run: list[Any],
    values: list[Any],
    origins: list[tuple[int, Any]],
    problems: list[tuple[int, Problem, Any]],
) -> None:
    """Convert ``run`` record by record: the good ones to ``values`` (and ``origins``), the
    bad ones (and the records the reader could not read) to ``problems``."""
    for line, record in zip(lines, run, strict=True):
        if record.__class__ is RowError:
            problems.append((line, Problem(line, record.column, record.reason), record.record))
            continue
        try:
            values.append(convert(record))
        except RowError as exc:
            problems.append((line, Problem(line, exc.column, exc.reason), record))
        else:
            origins.append((line, record))


class _Pending:
    """The records pass 1 converted since its last flush, waiting for the checks made a batch
    at a time: external ids met earlier in the file, customers that are not stored."""

    def __init__(
        self,
        crm: Any,
        converter: Converter,
        result: ImportResult,
        sink: Rejects,
        spool: Spool,
        skip_invalid: bool,
    ) -> None:
        self.crm = crm
        self.converter = converter
        self.result = result
        self.sink = sink
        self.spool = spool
        self.skip_invalid = skip_invalid
        self.seen = SeenKeys()
        self.customers: dict[str, int] = {}  # customer external id -> id, resolved so far
        self.refused: dict[str, str] = {}  # customer external id -> why it takes no new data
        # converted records wait here until their customers are looked up a batch at a time
        self.values: list[Any] = []
        self.origins: list[tuple[int, Any]] = []  # (line, record) of each value, for rejects
        self.problems: list[tuple[int, Problem, Any]] = []  # (line, problem, record)
        # or, while nothing else is pending, runs converted column by column (CSV orders):
        # (lines, records, columns); see _flush_columns
        self.columns: list[tuple[Sequence[int], list[Any], list[Sequence[Any]]]] = []
        self.firsts: list[bool] | None = None  # the duplicate check's answer, once asked
        self.key_of = converter.key
        self.ref_of = converter.customer_ref
        self.order_format = crm.orders.row_format() if converter.kind == "orders" else None
        self.present = 0  # records found already stored (see _not_stored)

    def add_columns(
        self, lines: Sequence[int], records: list[Any], columns: list[Sequence[Any]]
    ) -> None:
        """A run converted column by column (see :data:`~crmkit.transfer.orderruns.Run`):
        kept as columns while nothing else is pending, else as values (file order)."""
        self.columns.append((lines, records, columns))
        if self.values or self.problems:
            self.materialise()

    def materialise(self) -> None:
        """The pending column runs as values and origins, the form the general checks take."""
        for lines, run, columns in self.columns:
            self.values.extend(zip(*columns, strict=True))
            self.origins.extend(zip(lines, run, strict=True))
        self.columns.clear()

    def flush(self) -> None:
        """Check the pending records, reject the bad ones, spool the good ones; then empty."""
        if self.columns:
            if self._flush_columns():
                self.columns.clear()
                return
            self.materialise()
        good, where = self._first_times()
        if self.ref_of is not None:
            good, where = self._with_known_customers(good, where, self.ref_of)
        self._reject()
        # atomic mode stores nothing once a row is bad
        if self.skip_invalid or not self.result.rejected:
            good, where = self._not_stored(good, where)
            if self.ref_of is not None:
                good = self.converter.resolved(good, self.customers)
            # orders go in the driver's form: on SQLite plain text, cheap to spool and store
            # (the converter may have made it already)
            if self.order_format is not None and not self.converter.driver_form:
                good = self.order_format.to_driver(good)
            self.spool.write(good, list(map(itemgetter(0), where)))
        self.values.clear()
        self.origins.clear()
        self.problems.clear()
        self.firsts = None

    def _flush_columns(self) -> bool:
        """Check and spool the pending column runs, making tuples only of the rows spooled
        (none when the file was imported before). True when done; False when a row repeats
        an earlier external id or names a customer not stored or not writable: then the
        general checks take the rows (the duplicate check's answer kept in :attr:`firsts`)."""
        runs = self.columns
        keys = list(chain.from_iterable(columns[0] for _, _, columns in runs))
        self.firsts = self.seen.first_times(keys)
        if not all(self.firsts):
            return False
        refs = set(chain.from_iterable(columns[1] for _, _, columns in runs))
        unresolved = refs.difference(self.customers)
        if unresolved:
            self._resolve(unresolved)
            if not self.customers.keys() >= unresolved:
                return False
        self.firsts = None
        if not self.skip_invalid and self.result.rejected:
            return True  # atomic mode stores nothing once a row is bad
        stored = self._stored(keys)
        self.present += len(stored)
        if len(stored) == len(keys):
            return True
        # the rows with their customers' ids, in crm.orders.add_rows order (as resolved)
        ids = self.customers.__getitem__
        values = list(
            chain.from_iterable(zip(c[0], map(ids, c[1]), *c[2:], strict=True) for *_, c in runs)
        )
        lines = list(chain.from_iterable(lines for lines, _, _ in runs))
        if stored:
            kept = [i for i, key in enumerate(keys) if key not in stored]
            values, lines = [values[i] for i in kept], [lines[i] for i in kept]
        if self.order_format is not None and not self.converter.driver_form:
            values = self.order_format.to_driver(values)  # (as flush does)
        self.spool.write(values, lines)
        return True

    def _first_times(self) -> tuple[list[Any], list[tuple[int, Any]]]:
        """The pending values (and origins) whose external id is met for the first time; the
        others become problems (an interaction's content key takes the next free ``~N``)."""
        values, origins, key_of = self.values, self.origins, self.key_of
        if key_of is None:
            return values, origins
        firsts = self.firsts
        if firsts is None:
            firsts = self.seen.first_times(list(map(key_of, values)))
        if all(firsts):
            return values, origins
        derived = self.converter.derived_key
        good, where = [], []
        for value, origin, first in zip(values, origins, firsts, strict=True):
            if not first and derived is not None and derived(value):
                value, first = self._next_free_key(value), True
            if first:
                good.append(value)
                where.append(origin)
            else:
                line, record = origin
                reason = f"{key_of(value)!r} appears earlier in the file"
                self.problems.append((line, Problem(line, "external_id", reason), record))
        return good, where

    def _not_stored(
        self, good: list[Any], where: list[tuple[int, Any]]
    ) -> tuple[list[Any], list[tuple[int, Any]]]:
        """``good`` (and origins) without the orders or interactions already stored: counted
        in :attr:`present`, never spooled. Importing a file again thus costs reading and
        checking it, and one set-wise look-up per batch (:func:`existing_values`), instead
        of spooling and storing it all again. Storing checks the rest once more in its
        transaction. Stored orders stay stored (an erasure keeps them, a merge moves them);
        an interaction goes with an erasure, which the storing transaction refuses (its
        customers are checked again there). Customers are left to the storing pass: an
        erasure between the passes takes their external id away."""
        key_of = self.key_of
        if not good or _STORED_KEYS.get(self.converter.kind) is None:
            return good, where
        stored = self._stored(list(map(key_of, good)))  # type: ignore[arg-type]
        if not stored:
            return good, where
        self.present += len(stored)
        if len(stored) == len(good):
            return [], []
        kept = [i for i, value in enumerate(good) if key_of(value) not in stored]
        return [good[i] for i in kept], [where[i] for i in kept]

    def _stored(self, keys: list[Any]) -> set[Any]:
        """The ones of ``keys`` (distinct: the repeats in the file were refused before)
        stored already, for the kinds whose stored records pass 1 leaves out."""
        column = _STORED_KEYS.get(self.converter.kind)
        if column is None or not keys:
            return set()
        with self.crm.reading() as connection:
            return existing_values(connection, column, keys, distinct=True)

    def _next_free_key(self, value: Any) -> Any:
        """A content-keyed record met again: the same content again is another record
        (two identical calls), keyed ``KEY~2``, ``KEY~3`` ... in file order."""
        key = self.key_of(value)  # type: ignore[misc]
        number = 2
        while not self.seen.first_times([f"{key}~{number}"])[0]:
            number += 1
        return self.converter.with_key(value, f"{key}~{number}")

    def _with_known_customers(
        self, good: list[Any], where: list[tuple[int, Any]], ref_of: Callable[[Any], str]
    ) -> tuple[list[Any], list[tuple[int, Any]]]:
        """``good`` (and their origins) whose customers are stored and take new data (their
        ids are then in :attr:`customers`); those whose customer is not stored, or was erased
        or merged into another (``crm.customers.require_writable``), become problems."""
        customers, refused = self.customers, self.refused
        # in C: the references not resolved so far (mostly none)
        unresolved = set(map(ref_of, good)).difference(customers)
        if not unresolved:
            return good, where
        self._resolve(unresolved)
        if not customers.keys() >= unresolved:  # (set.issubset would copy the dict into a set)
            kept, kept_where = [], []
            for value, origin in zip(good, where, strict=True):
                ref = ref_of(value)
                if ref in customers:
                    kept.append(value)
                    kept_where.append(origin)
                    continue
                line, record = origin
                reason = refused.get(ref) or f"no customer has external_id {ref!r}"
                self.problems.append((line, Problem(line, "customer", reason), record))
            good, where = kept, kept_where
        return good, where

    def _resolve(self, unresolved: set[str]) -> None:
        """Look up the customers ``unresolved`` names that were not looked up before: their
        ids to :attr:`customers`, or why they take no new data to :attr:`refused`."""
        if unknown := unresolved.difference(self.refused):
            found = self.crm.customers.ids_by_external_id(unknown)
            if found:
                with self.crm.reading() as connection:
                    reasons = erased_or_merged(connection, found.values())
                for ref, customer_id in found.items():
                    if customer_id in reasons:
                        self.refused[ref] = reasons[customer_id]
                    else:
                        self.customers[ref] = customer_id

    def _reject(self) -> None:
        """Count the problems, list the first MAX_LISTED and write them to the rejects file."""
        result, sink = self.result, self.sink
        self.problems.sort(key=lambda item: item[0])  # rejects in file order
        for line, problem, record in self.problems:
            result.rejected += 1
            if len(result.problems) < MAX_LISTED:
                result.problems.append(problem)
            sink.write(line, problem, record)

    def close(self) -> None:
        self.seen.close()  # its spill file, if the file was long
