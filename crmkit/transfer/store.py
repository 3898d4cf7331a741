"""Pass 2 of an import: storing the spooled records in one transaction, a batch at a time."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from crmkit.core import tables as t
from crmkit.core.bulk import lock_inserts
from crmkit.core.entities import Interaction
from crmkit.core.orders import refuse_unwritable
from crmkit.errors import CrmError, PluginError, ValidationError
from crmkit.transfer.columns import BATCH_SIZE  # noqa: F401 (defined there; importers read it here)
from crmkit.transfer.read import records
from crmkit.transfer.results import ImportResult
from crmkit.transfer.spool import Spool

_TABLES = {"orders": t.orders, "customers": t.customers, "interactions": t.interactions}
_PLUGIN_SUFFIX = "; nothing of this change was stored"


class _BatchFailed(Exception):
    """A batch failed to store: which one, the lines it held, and why."""

    def __init__(self, number: int, lines: tuple[int, int], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.number = number
        self.lines = lines
        self.cause = cause


def store(
    crm: Any,
    kind: str,
    spool: Spool,
    result: ImportResult,
    batch_size: int,
    progress: Any,
    customers: set[int] | None = None,
) -> None:
    """Pass 2: store the spooled records in ONE transaction, one plugin event per ``batch_size``.

    Either every record is stored or none is: a failure in any batch (the
    database refusing a row, a plugin raising in its event) rolls back the
    batches before it too, plugins' own writes included, and the error says
    which batch and lines failed and that nothing was stored. The first thing
    the transaction does is :func:`~crmkit.core.bulk.lock_inserts`, so two
    imports of the same file run one after the other and the second finds
    the rows already present. ``customers`` (the ids pass 1 resolved) are
    checked once more inside the transaction: none may have been erased or
    merged since (``crm.customers.require_writable``, once per import rather
    than once per batch).
    """
    stored, present = result.stored, result.already_present
    try:
        with crm.transaction() as ctx:
            lock_inserts(ctx.connection, _TABLES[kind])
            if customers:
                try:
                    refuse_unwritable(ctx.connection, customers)
                except CrmError as exc:
                    raise _BatchFailed(0, spool.first_and_last_line, exc) from exc
            _store_batches(crm, ctx, kind, spool, result, batch_size, progress)
            ctx.audit(
                f"import.{kind}",
                "import",
                os.path.basename(result.path),
                changes={
                    "file": [None, result.path],
                    "read": [None, result.read],
                    "stored": [None, result.stored],
                    "already_present": [None, result.already_present],
                    "rejected": [None, result.rejected],
                },
            )
    except _BatchFailed as failure:
        result.stored, result.already_present = stored, present
        raise _restated(result.path, failure) from failure.cause


def _store_batches(
    crm: Any,
    ctx: Any,
    kind: str,
    spool: Spool,
    result: ImportResult,
    batch_size: int,
    progress: Any,
) -> None:
    write = _writer(crm, ctx, kind)
    # what a failed batch may raise: crmkit's errors (plugins' included) and the database's,
    # through SQLAlchemy or straight from the driver (PostgreSQL's COPY)
    failures = (CrmError, SQLAlchemyError, crm.engine.dialect.dbapi.Error)
    # what only crmkit_after_commit reads is dropped after each batch when nobody listens,
    # so memory stays bounded however many batches one transaction holds
    forget = not crm.has_hook("crmkit_after_commit")
    batch: list[Any] = []
    lines: list[int] = []
    number = 0

    def flush() -> None:
        nonlocal number
        number += 1
        try:
            stored, present = write(batch)
        except failures as exc:
            raise _BatchFailed(number, (lines[0], lines[-1]), exc) from exc
        result.stored += stored
        result.already_present += present
        if forget:
            _forget(ctx.changes)
        batch.clear()
        lines.clear()

    for chunk_lines, chunk in records(spool, "storing", progress):
        start = 0
        while start < len(chunk):
            room = batch_size - len(batch)
            batch.extend(chunk[start : start + room])
            lines.extend(chunk_lines[start : start + room])
            start += room
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()


def _writer(crm: Any, ctx: Any, kind: str) -> Callable[[list[Any]], tuple[int, int]]:
    """The function storing one batch of ``kind`` in the import's transaction, through the
    services' batch paths that neither check nor audit (the import did both, once):
    returns (stored, already present)."""
    if kind == "orders":

        def orders(batch: list[Any]) -> tuple[int, int]:
            outcome, _ = crm.orders._add_rows(ctx, batch, driver_form=True, customers_checked=True)
            return outcome.stored, len(outcome.skipped)

        return orders
    if kind == "customers":

        def customers(batch: list[Any]) -> tuple[int, int]:
            outcome = crm.customers._store_many([crm.customers.build(c) for c in batch])
            return outcome.stored, len(outcome.skipped)

        return customers

    def interactions(batch: list[Any]) -> tuple[int, int]:
        entities = [
            Interaction(
                customer_id=customer_id,
                channel=channel,
                occurred_at=occurred_at,
                direction=direction,
                subject=subject,
                body=body,
                staff=staff,
                external_id=external_id,
            )
            for customer_id, channel, occurred_at, direction, subject, body, staff, external_id, _
            in batch
        ]  # fmt: skip
        stored = crm.interactions._store_many(ctx, entities)
        return stored, len(batch) - stored

    return interactions


def _forget(changes: Any) -> None:
    for name in ("customers_created", "interactions_created", "orders_created"):
        getattr(changes, name).clear()
    for items in changes.other.values():
        if isinstance(items, list):
            items.clear()


def _restated(path: str, failure: _BatchFailed) -> CrmError:
    """The error of a failed import: what failed, where, and that nothing was stored."""
    cause = failure.cause
    if not isinstance(cause, CrmError):
        detail = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
        reason = f"the database refused a row ({detail})"
    else:
        reason = str(cause).removesuffix(_PLUGIN_SUFFIX)
    first, last = failure.lines
    what = f"batch {failure.number}" if failure.number else "the records"
    message = (
        f"{path}: storing {what} (lines {first}-{last}) failed: {reason}; "
        "nothing of this import was stored (an import is one transaction, now rolled back); "
        "fix the cause and import the file again"
    )
    if isinstance(cause, PluginError):
        return PluginError(message, plugin=cause.plugin)
    if isinstance(cause, ValidationError):
        return ValidationError(message, field=cause.field)
    if isinstance(cause, CrmError):
        try:
            return type(cause)(message)
        except TypeError:
            return CrmError(message)
    return CrmError(message)
