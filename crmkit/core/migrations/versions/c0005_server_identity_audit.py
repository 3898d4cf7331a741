"""core: staff passwords, sessions, API tokens, sign-in back-off, audit log, idempotency

- ``staff.password_hash`` (argon2id) and ``password_changed_at``.
- ``customers.version``: bumped by every update, the record's ETag.
- ``audit_log``: every write with its actor, fields before/after and request id.
- ``sessions`` (server-side browser sessions), ``api_tokens`` (hashes only),
  ``login_failures`` (back-off), ``idempotency_keys`` (first responses to POSTs).

Revision ID: c0005
Revises: c0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from crmkit.core.types import UTCDateTime

revision = "c0005"
down_revision = "c0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("staff", sa.Column("password_hash", sa.String(200)))
    op.add_column("staff", sa.Column("password_changed_at", UTCDateTime))
    op.add_column("customers", sa.Column("version", sa.Integer, nullable=False, server_default="1"))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("on_behalf_of", sa.String(100)),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("entity", sa.String(50), nullable=False),
        sa.Column("entity_id", sa.String(100)),
        sa.Column("customer_id", sa.Integer),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("request_id", sa.String(64)),
    )
    op.create_index("ix_audit_log_customer_id", "audit_log", ["customer_id", "id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "staff_id",
            sa.Integer,
            sa.ForeignKey("staff.id", ondelete="CASCADE", name="fk_sessions_staff_id_staff"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("address", sa.String(64)),
    )
    op.create_index("ix_sessions_staff_id", "sessions", ["staff_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "staff_id",
            sa.Integer,
            sa.ForeignKey("staff.id", ondelete="CASCADE", name="fk_api_tokens_staff_id_staff"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("expires_at", UTCDateTime),
        sa.Column("last_used_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("actor", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_login_failures_key_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_table("api_tokens")
    op.drop_index("ix_sessions_staff_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_customer_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_column("customers", "version")
    op.drop_column("staff", "password_changed_at")
    op.drop_column("staff", "password_hash")
