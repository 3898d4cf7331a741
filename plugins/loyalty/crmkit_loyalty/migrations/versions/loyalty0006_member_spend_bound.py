"""loyalty: each member's spend bound (an upper bound of the customer's paid spend)

Revision ID: loyalty0006
Revises: loyalty0005
Create Date: 2026-12-06

``loyalty_members.spend_bound``: at least the member's customer's paid spend of all
time, in 1/10,000 (NULL: unknown). A batch earning set-based reads an order's 12-month
spend only when this bound, with the batch's orders up to it, could reach the member's
next tier (``crmkit_loyalty.bounds``). The upgrade sets it from the stored orders;
the downgrade drops the column (nothing else reads it).
"""

import sqlalchemy as sa
from alembic import op

revision = "loyalty0006"
down_revision = "loyalty0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("loyalty_members", sa.Column("spend_bound", sa.BigInteger(), nullable=True))
    positive = "CASE WHEN o.amount > 0 THEN o.amount ELSE 0 END"
    if op.get_bind().dialect.name == "postgresql":
        total = f"CAST(SUM({positive}) * 10000 AS BIGINT)"
    else:  # amounts are doubles on SQLite: each rounded back to its 4 decimals
        total = f"SUM(CAST(ROUND({positive} * 10000) AS INTEGER))"
    op.execute(
        f"UPDATE loyalty_members SET spend_bound = (SELECT COALESCE({total}, 0) FROM orders o "
        "WHERE o.customer_id = loyalty_members.customer_id AND o.status = 'paid')"
    )


def downgrade() -> None:
    op.drop_column("loyalty_members", "spend_bound")
