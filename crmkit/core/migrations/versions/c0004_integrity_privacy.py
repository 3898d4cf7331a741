"""core: consent history, interaction external ids, staff deactivation, merges, plugin states

- ``consent_changes`` keeps every grant and withdrawal (``consents`` keeps the
  latest per purpose); existing consents become each customer's first change.
- ``interactions.external_id`` (unique, optional) makes an interactions file
  idempotent to re-import.
- ``staff.active``: staff are deactivated, never deleted.
- ``customers.merged_into`` and ``customer_merges`` record merges of duplicates.
- ``plugin_states`` notes which plugins were enabled when the database was last
  written, so one that comes back is asked to catch up.

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from crmkit.core.types import UTCDateTime

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "customer_id",
            sa.Integer,
            sa.ForeignKey(
                "customers.id",
                ondelete="CASCADE",
                name="fk_consent_changes_customer_id_customers",
            ),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(50), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.Column("source", sa.String(100)),
        sa.Column("actor", sa.String(100)),
    )
    op.create_index(
        "ix_consent_changes_customer_id", "consent_changes", ["customer_id", "changed_at"]
    )
    op.execute(
        "INSERT INTO consent_changes (customer_id, purpose, granted, changed_at, source) "
        "SELECT customer_id, purpose, granted, changed_at, source FROM consents"
    )
    # plain ADD COLUMN and a unique index: no table rebuild on SQLite (which would have to
    # drop tables other tables reference) and no live connection needed for --sql
    op.add_column("interactions", sa.Column("external_id", sa.String(100)))
    op.create_index("ix_interactions_external_id", "interactions", ["external_id"], unique=True)
    op.add_column(
        "staff", sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true())
    )
    op.add_column("customers", sa.Column("merged_into", sa.Integer))
    op.create_table(
        "customer_merges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "kept_id",
            sa.Integer,
            sa.ForeignKey(
                "customers.id", ondelete="CASCADE", name="fk_customer_merges_kept_id_customers"
            ),
            nullable=False,
        ),
        sa.Column(
            "merged_id",
            sa.Integer,
            sa.ForeignKey(
                "customers.id", ondelete="CASCADE", name="fk_customer_merges_merged_id_customers"
            ),
            nullable=False,
        ),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(100)),
        sa.Column("moved", sa.JSON, nullable=False),
    )
    op.create_index("ix_customer_merges_kept_id", "customer_merges", ["kept_id"])
    op.create_table(
        "plugin_states",
        sa.Column("plugin", sa.String(100), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plugin_states")
    op.drop_index("ix_customer_merges_kept_id", table_name="customer_merges")
    op.drop_table("customer_merges")
    # SQLite >= 3.35 drops a column in place (Python 3.11 ships 3.37 or newer)
    op.drop_column("customers", "merged_into")
    op.drop_column("staff", "active")
    op.drop_index("ix_interactions_external_id", table_name="interactions")
    op.drop_column("interactions", "external_id")
    op.drop_index("ix_consent_changes_customer_id", table_name="consent_changes")
    op.drop_table("consent_changes")
