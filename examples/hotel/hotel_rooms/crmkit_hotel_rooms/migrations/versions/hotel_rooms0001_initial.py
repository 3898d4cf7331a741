"""hotel_rooms: guests' room-preference profiles

Revision ID: hotel_rooms0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from crmkit.plugin import UTCDateTime

revision = "hotel_rooms0001"
down_revision = None
branch_labels = ("hotel_rooms",)
depends_on = None  # crmkit upgrades the core to head before any plugin branch


def upgrade() -> None:
    op.create_table(
        "hotel_rooms_preferences",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("floor", sa.Text),
        sa.Column("pillow", sa.Text),
        sa.Column("bed", sa.Text),
        sa.Column("quiet", sa.Boolean),
        sa.Column("note", sa.Text),
        sa.Column("updated_by", sa.Text),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hotel_rooms_preferences"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_hotel_rooms_preferences_customer_id_customers",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("customer_id", name="uq_hotel_rooms_preferences_customer_id"),
    )


def downgrade() -> None:
    op.drop_table("hotel_rooms_preferences")
