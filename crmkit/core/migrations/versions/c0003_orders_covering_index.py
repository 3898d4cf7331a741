"""core: the orders-by-customer-and-time index also carries status and amount

Per-customer aggregates over a time window (loyalty's tier windows, RFM and
value reports restricted to paid orders) then read only the index, instead
of one random table read per order.

Revision ID: c0003
Revises: c0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_orders_customer_time", table_name="orders")
    op.create_index(
        "ix_orders_customer_time", "orders", ["customer_id", "occurred_at", "status", "amount"]
    )


def downgrade() -> None:
    op.drop_index("ix_orders_customer_time", table_name="orders")
    op.create_index("ix_orders_customer_time", "orders", ["customer_id", "occurred_at"])
