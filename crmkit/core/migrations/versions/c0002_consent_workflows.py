"""core: consent per purpose, workflow instances and their transitions

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crmkit.core.types import Money, UTCDateTime

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("purpose", sa.String(50), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.Column("source", sa.String(100)),
        sa.PrimaryKeyConstraint("customer_id", "purpose", name="pk_consents"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_consents_customer_id_customers",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "workflow_instances",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("value", Money),
        sa.Column("due_on", sa.Date),
        sa.Column("owner", sa.String(100)),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("stage_entered_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_instances"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_workflow_instances_customer_id_customers",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_workflow_instances_workflow_stage", "workflow_instances", ["workflow", "stage"]
    )
    op.create_index("ix_workflow_instances_customer_id", "workflow_instances", ["customer_id"])
    op.create_table(
        "workflow_transitions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("instance_id", sa.Integer, nullable=False),
        sa.Column("from_stage", sa.String(100)),
        sa.Column("to_stage", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(100)),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_transitions"),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["workflow_instances.id"],
            name="fk_workflow_transitions_instance_id_workflow_instances",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_workflow_transitions_instance_at", "workflow_transitions", ["instance_id", "at"]
    )


def downgrade() -> None:
    op.drop_table("workflow_transitions")
    op.drop_table("workflow_instances")
    op.drop_table("consents")
