"""complaints: pause log (the SLA clock's stops) and the department fallback recipient

Revision ID: complaints0002
Revises: complaints0001
Create Date: 2026-11-23

The pause log is filled from the core workflow history, so complaints logged
before this revision get their waiting/resolved/closed stays too.
"""

import sqlalchemy as sa
from alembic import op

from crmkit.plugin import UTCDateTime

revision = "complaints0002"
down_revision = "complaints0001"
branch_labels = None
depends_on = None

PAUSING = ("waiting_on_customer", "resolved", "closed")


def upgrade() -> None:
    op.create_table(
        "complaints_pauses",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("complaint_id", sa.Integer, nullable=False),
        sa.Column("stage", sa.String(40), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_complaints_pauses"),
        sa.ForeignKeyConstraint(
            ["complaint_id"],
            ["complaints.id"],
            name="fk_complaints_pauses_complaint_id_complaints",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_complaints_pauses_complaint_id", "complaints_pauses", ["complaint_id"])
    with op.batch_alter_table("complaints_sla_alerts") as batch:
        batch.add_column(sa.Column("responsible", sa.String(100)))
    _backfill_pauses()


def _backfill_pauses() -> None:
    """One pause row per stay in a pausing stage, from the workflow history."""
    complaints = sa.table("complaints", sa.column("id"), sa.column("workflow_instance_id"))
    transitions = sa.table(
        "workflow_transitions",
        sa.column("id"),
        sa.column("instance_id"),
        sa.column("to_stage"),
        sa.column("at", UTCDateTime),
    )
    pauses = sa.table(
        "complaints_pauses",
        sa.column("complaint_id"),
        sa.column("stage"),
        sa.column("started_at", UTCDateTime),
        sa.column("ended_at", UTCDateTime),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(complaints.c.id, transitions.c.to_stage, transitions.c.at)
        .join(transitions, transitions.c.instance_id == complaints.c.workflow_instance_id)
        .order_by(complaints.c.id, transitions.c.at, transitions.c.id)
    ).all()
    out: list[dict] = []
    for i, (complaint_id, stage, at) in enumerate(rows):
        if stage not in PAUSING:
            continue
        following = rows[i + 1] if i + 1 < len(rows) else None
        ended = following[2] if following is not None and following[0] == complaint_id else None
        out.append(
            {"complaint_id": complaint_id, "stage": stage, "started_at": at, "ended_at": ended}
        )
    if out:
        bind.execute(sa.insert(pauses), out)


def downgrade() -> None:
    with op.batch_alter_table("complaints_sla_alerts") as batch:
        batch.drop_column("responsible")
    op.drop_index("ix_complaints_pauses_complaint_id", "complaints_pauses")
    op.drop_table("complaints_pauses")
