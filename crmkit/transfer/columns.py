"""What the transfer files hold: the kinds of record, the file formats and their columns."""

from __future__ import annotations

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
