"""Pass 2 of an import: storing the spooled records through the services, a batch at a time."""

from __future__ import annotations

from typing import Any

from crmkit.core.entities import Interaction
from crmkit.transfer.read import records
from crmkit.transfer.results import ImportResult
from crmkit.transfer.spool import Spool

#: rows per stored batch: one transaction and one plugin event each (on SQLite a commit
#: rewrites the index pages the batch touched, so few large batches import fastest)
BATCH_SIZE = 50_000


def store(
    crm: Any, kind: str, spool: Spool, result: ImportResult, batch_size: int, progress: Any
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

    for chunk in records(spool, "storing", progress):
        while chunk:
            room = batch_size - len(batch)
            batch.extend(chunk[:room])
            chunk = chunk[room:]
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()
