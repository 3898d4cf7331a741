"""core: staff, customers, contacts, interactions, orders

Revision ID: c0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from crmkit.core.types import Money, UTCDateTime

revision = "c0001"
down_revision = None
branch_labels = ("crmkit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("department", sa.String(100)),
        sa.Column("manager", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_staff"),
        sa.UniqueConstraint("username", name="uq_staff_username"),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(100)),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(50)),
        sa.Column("address", sa.Text),
        sa.Column("region", sa.String(100)),
        sa.Column("province", sa.String(100)),
        sa.Column("city", sa.String(100)),
        sa.Column("industry", sa.String(100)),
        sa.Column("occupation", sa.String(100)),
        sa.Column("birth_date", sa.Date),
        sa.Column("owner", sa.String(100)),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("erased_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("external_id", name="uq_customers_external_id"),
    )
    op.create_index("ix_customers_owner", "customers", ["owner"])
    op.create_index("ix_customers_region", "customers", ["region"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("role", sa.String(100)),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(50)),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_contacts_customer_id_customers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("staff", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_interactions"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name="fk_interactions_customer_id_customers",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_interactions_customer_time", "interactions", ["customer_id", "occurred_at"])
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("external_id", sa.String(100)),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("amount", Money, nullable=False),
        sa.Column("cost", Money),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20)),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("external_id", name="uq_orders_external_id"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_orders_customer_id_customers"
        ),
    )
    op.create_index("ix_orders_customer_time", "orders", ["customer_id", "occurred_at"])
    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("order_id", sa.Integer, nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100)),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("price", Money, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_lines"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_order_lines_order_id_orders", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_order_lines_order_id", "order_lines", ["order_id"])


def downgrade() -> None:
    for table in ("order_lines", "orders", "interactions", "contacts", "customers", "staff"):
        op.drop_table(table)
