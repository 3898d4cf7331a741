"""What the transfer files hold: the kinds of record, the file formats and their columns.

It imports nothing (the command line reads it for its options' choices and defaults).
"""

from __future__ import annotations

#: rows per stored batch: one plugin event each, all batches in the import's one transaction
BATCH_SIZE = 50_000

KINDS = ("customers", "orders", "interactions")
FORMATS = ("csv", "jsonl")

ORDER_COLUMNS = (
    "external_id", "customer", "occurred_at", "amount", "cost", "currency", "status", "channel",
)  # fmt: skip
INTERACTION_COLUMNS = (
    "external_id", "customer", "channel", "occurred_at", "direction", "subject", "body", "staff",
)  # fmt: skip
REQUIRED = {
    "customers": ("external_id", "name"),
    "orders": ("external_id", "customer", "occurred_at", "amount"),
    "interactions": ("customer", "channel", "occurred_at"),
}
KNOWN = {"orders": set(ORDER_COLUMNS), "interactions": set(INTERACTION_COLUMNS)}
