"""segmentation: dated snapshots and memberships

Revision ID: segmentation0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from crmkit.plugin import UTCDateTime

revision = "segmentation0001"
down_revision = None
branch_labels = ("segmentation",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segmentation_snapshots",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("scheme", sa.String(100), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segmentation_snapshots"),
    )
    op.create_index(
        "ix_segmentation_snapshots_scheme_as_of", "segmentation_snapshots", ["scheme", "as_of"]
    )
    op.create_table(
        "segmentation_memberships",
        sa.Column("snapshot_id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("segment", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "customer_id", name="pk_segmentation_memberships"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["segmentation_snapshots.id"],
            name="fk_segmentation_memberships_snapshot_id_segmentation_snapshots",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_segmentation_memberships_customer_id_customers",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_segmentation_memberships_customer", "segmentation_memberships", ["customer_id"]
    )


def downgrade() -> None:
    op.drop_table("segmentation_memberships")
    op.drop_table("segmentation_snapshots")
