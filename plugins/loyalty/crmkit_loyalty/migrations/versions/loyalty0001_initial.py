"""loyalty: programs, rewards, members, points ledger, tier history

Revision ID: loyalty0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crmkit.plugin import Money, UTCDateTime

revision = "loyalty0001"
down_revision = None
branch_labels = ("loyalty",)
depends_on = None


def _fk(table: str, column: str, target: str, ondelete: str | None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "loyalty_programs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loyalty_programs"),
        sa.UniqueConstraint("name", name="uq_loyalty_programs_name"),
    )
    op.create_table(
        "loyalty_rewards",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("program_id", sa.Integer, nullable=False),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("points", sa.Integer, nullable=False),
        sa.Column("stock", sa.Integer),
        sa.Column("redeemed", sa.Integer, nullable=False),
        sa.Column("valid_from", sa.Date),
        sa.Column("valid_until", sa.Date),
        sa.Column("value", Money),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loyalty_rewards"),
        sa.UniqueConstraint("program_id", "code", name="uq_loyalty_rewards_program_id"),
        _fk("loyalty_rewards", "program_id", "loyalty_programs", "CASCADE"),
    )
    op.create_table(
        "loyalty_members",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("program_id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("tier", sa.String(100)),
        sa.Column("tier_since", UTCDateTime),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("clawback_due", sa.BigInteger, nullable=False),
        sa.Column("orders_count", sa.Integer, nullable=False),
        sa.Column("referred_by", sa.Integer),
        sa.Column("enrolled_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loyalty_members"),
        sa.UniqueConstraint("program_id", "customer_id", name="uq_loyalty_members_program_id"),
        _fk("loyalty_members", "program_id", "loyalty_programs", "CASCADE"),
        _fk("loyalty_members", "customer_id", "customers", "CASCADE"),
        _fk("loyalty_members", "referred_by", "customers", "SET NULL"),
    )
    op.create_index("ix_loyalty_members_customer_id", "loyalty_members", ["customer_id"])
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("program_id", sa.Integer, nullable=False),
        sa.Column("member_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("order_id", sa.Integer),
        sa.Column("reward_code", sa.String(100)),
        sa.Column("rule", sa.String(100)),
        sa.Column("staff", sa.String(100)),
        sa.Column("reason", sa.Text),
        sa.Column("idem_key", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_loyalty_ledger"),
        sa.UniqueConstraint("program_id", "idem_key", name="uq_loyalty_ledger_program_id"),
        _fk("loyalty_ledger", "program_id", "loyalty_programs", "CASCADE"),
        _fk("loyalty_ledger", "member_id", "loyalty_members", "CASCADE"),
    )
    op.create_index("ix_loyalty_ledger_member_time", "loyalty_ledger", ["member_id", "occurred_at"])
    op.create_index("ix_loyalty_ledger_order_id", "loyalty_ledger", ["order_id"])
    op.create_table(
        "loyalty_tier_changes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("member_id", sa.Integer, nullable=False),
        sa.Column("from_tier", sa.String(100)),
        sa.Column("to_tier", sa.String(100)),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("measure", Money, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loyalty_tier_changes"),
        _fk("loyalty_tier_changes", "member_id", "loyalty_members", "CASCADE"),
    )
    op.create_index("ix_loyalty_tier_changes_member_id", "loyalty_tier_changes", ["member_id"])


def downgrade() -> None:
    op.drop_table("loyalty_tier_changes")
    op.drop_table("loyalty_ledger")
    op.drop_table("loyalty_members")
    op.drop_table("loyalty_rewards")
    op.drop_table("loyalty_programs")
