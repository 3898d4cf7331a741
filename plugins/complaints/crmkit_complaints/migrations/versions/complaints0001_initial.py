"""complaints: complaints, replies, SLA alerts, outbox, surveys, SLA policies

Revision ID: complaints0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crmkit.plugin import UTCDateTime

revision = "complaints0001"
down_revision = None
branch_labels = ("complaints",)
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str | None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("interaction_id", sa.Integer),
        sa.Column("workflow_instance_id", sa.Integer),
        sa.Column("tracking_code", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("department", sa.String(100)),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("assignee", sa.String(100)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("root_cause", sa.Text, nullable=False),
        sa.Column("resolution", sa.Text, nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("first_response_at", UTCDateTime),
        sa.Column("resolved_at", UTCDateTime),
        sa.Column("closed_at", UTCDateTime),
        sa.Column("paused_us", sa.BigInteger, nullable=False),
        sa.Column("paused_since", UTCDateTime),
        sa.Column("first_response_target_s", sa.Integer, nullable=False),
        sa.Column("resolution_target_s", sa.Integer, nullable=False),
        sa.Column("warn_ratio", sa.Float, nullable=False),
        sa.Column("clock", sa.String(20), nullable=False),
        sa.Column("first_response_warn_at", UTCDateTime),
        sa.Column("first_response_due_at", UTCDateTime),
        sa.Column("resolution_warn_at", UTCDateTime),
        sa.Column("resolution_due_at", UTCDateTime),
        sa.Column("created_by", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_complaints"),
        sa.UniqueConstraint("tracking_code", name="uq_complaints_tracking_code"),
        _fk("complaints", "customer_id", "customers", "CASCADE"),
        _fk("complaints", "interaction_id", "interactions", "SET NULL"),
        _fk("complaints", "workflow_instance_id", "workflow_instances", None),
    )
    for column in (
        "customer_id",
        "first_response_warn_at",
        "first_response_due_at",
        "resolution_warn_at",
        "resolution_due_at",
        "workflow_instance_id",
    ):
        op.create_index(f"ix_complaints_{column}", "complaints", [column])
    op.create_table(
        "complaints_replies",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("complaint_id", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("author", sa.String(100)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("public", sa.Boolean, nullable=False),
        sa.Column("show_author", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_complaints_replies"),
        _fk("complaints_replies", "complaint_id", "complaints", "CASCADE"),
    )
    op.create_index("ix_complaints_replies_complaint_id", "complaints_replies", ["complaint_id"])
    op.create_table(
        "complaints_sla_alerts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("complaint_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("raised_at", UTCDateTime, nullable=False),
        sa.Column("assignee", sa.String(100)),
        sa.Column("manager", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_complaints_sla_alerts"),
        sa.UniqueConstraint(
            "complaint_id", "target", "level", name="uq_complaints_sla_alerts_once"
        ),
        _fk("complaints_sla_alerts", "complaint_id", "complaints", "CASCADE"),
    )
    op.create_table(
        "complaints_outbox",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("alert_id", sa.Integer),
        sa.Column("recipient", sa.String(100)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_complaints_outbox"),
        _fk("complaints_outbox", "alert_id", "complaints_sla_alerts", "CASCADE"),
    )
    op.create_table(
        "complaints_surveys",
        sa.Column("complaint_id", sa.Integer, nullable=False),
        sa.Column("csat", sa.Integer, nullable=False),
        sa.Column("nps", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("complaint_id", name="pk_complaints_surveys"),
        _fk("complaints_surveys", "complaint_id", "complaints", "CASCADE"),
    )
    op.create_table(
        "complaints_sla_policies",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("first_response_hours", sa.Float, nullable=False),
        sa.Column("resolution_hours", sa.Float, nullable=False),
        sa.Column("warn_ratio", sa.Float, nullable=False),
        sa.Column("clock", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_complaints_sla_policies"),
        sa.UniqueConstraint("priority", "channel", name="uq_complaints_sla_policies_key"),
    )


def downgrade() -> None:
    for table in (
        "complaints_sla_policies",
        "complaints_surveys",
        "complaints_outbox",
        "complaints_sla_alerts",
        "complaints_replies",
        "complaints",
    ):
        op.drop_table(table)
