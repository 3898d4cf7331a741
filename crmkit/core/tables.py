"""The core's tables, SQLAlchemy Core, on the one shared :data:`metadata`.

Plugins define their tables on the same ``metadata`` (so foreign keys to
``customers.id`` resolve) and ship an Alembic branch that creates them. The
core's own migration history lives in ``crmkit/core/migrations/versions``;
a test checks these definitions against the migrated schema.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy import true as sa_true

from crmkit.core.types import Money, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

staff = Table(
    "staff",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("email", String(320)),
    Column("roles", JSON, nullable=False, default=list),
    Column("department", String(100)),
    Column("manager", String(100)),
    # staff are deactivated, never deleted, so their history keeps its names
    Column("active", Boolean, nullable=False, default=True, server_default=sa_true()),
    # argon2id (crmkit.core.identity); None: this member cannot sign in
    Column("password_hash", String(200)),
    Column("password_changed_at", UTCDateTime),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(100), unique=True),
    Column("type", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("name", String(300), nullable=False, info={"personal": True}),
    Column("email", String(320), info={"personal": True}),
    Column("phone", String(50), info={"personal": True}),
    Column("address", Text, info={"personal": True}),
    Column("region", String(100)),
    Column("province", String(100)),
    Column("city", String(100)),
    Column("industry", String(100)),
    Column("occupation", String(100), info={"personal": True}),
    Column("birth_date", Date, info={"personal": True}),
    Column("owner", String(100)),
    Column("attributes", JSON, nullable=False, default=dict, info={"personal": True}),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("erased_at", UTCDateTime),
    # the customer this record was merged into (crm.customers.merge); it then takes no
    # writes. No foreign key: adding one to SQLite's customers would rebuild the table.
    Column("merged_into", Integer),
    # bumped by every update: the ETag of the record; an edit made against an older
    # version is refused (crm.customers.update(..., expected_version=N))
    Column("version", Integer, nullable=False, default=1, server_default="1"),
    Index("ix_customers_owner", "owner"),
    Index("ix_customers_region", "region"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(300), nullable=False, info={"personal": True}),
    Column("role", String(100)),
    Column("email", String(320), info={"personal": True}),
    Column("phone", String(50), info={"personal": True}),
    Index("ix_contacts_customer_id", "customer_id"),
)

consents = Table(
    "consents",
    metadata,
    Column(
        "customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("purpose", String(50), primary_key=True),
    Column("granted", Boolean, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("source", String(100)),
)

#: Every grant and withdrawal, oldest first; ``consents`` holds the latest per purpose.
consent_changes = Table(
    "consent_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(50), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("source", String(100)),
    Column("actor", String(100)),
    Index("ix_consent_changes_customer_id", "customer_id", "changed_at"),
)

interactions = Table(
    "interactions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("direction", String(10), nullable=False),
    Column("subject", String(500), nullable=False, default="", info={"personal": True}),
    Column("body", Text, nullable=False, default="", info={"personal": True}),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("staff", String(100)),
    # makes re-importing an interactions file idempotent, as for customers and orders
    Column("external_id", String(100)),
    Index("ix_interactions_customer_time", "customer_id", "occurred_at"),
    Index("ix_interactions_external_id", "external_id", unique=True),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(100), unique=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    Column("cost", Money),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("channel", String(20)),
    # status and amount ride along so per-customer window sums read only the index
    Index("ix_orders_customer_time", "customer_id", "occurred_at", "status", "amount"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", Integer, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("product", String(200), nullable=False),
    Column("category", String(100)),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Index("ix_order_lines_order_id", "order_id"),
)

workflow_instances = Table(
    "workflow_instances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow", String(100), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(300), nullable=False),
    Column("stage", String(100), nullable=False),
    Column("value", Money),
    Column("due_on", Date),
    Column("owner", String(100)),
    Column("fields", JSON, nullable=False, default=dict),
    Column("created_at", UTCDateTime, nullable=False),
    Column("stage_entered_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Index("ix_workflow_instances_workflow_stage", "workflow", "stage"),
    Index("ix_workflow_instances_customer_id", "customer_id"),
)

workflow_transitions = Table(
    "workflow_transitions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "instance_id",
        Integer,
        ForeignKey("workflow_instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("from_stage", String(100)),
    Column("to_stage", String(100), nullable=False),
    Column("actor", String(100)),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_workflow_transitions_instance_at", "instance_id", "at"),
)

#: One row per merge: which record was kept, which was merged into it, and what moved.
customer_merges = Table(
    "customer_merges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kept_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("merged_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100)),
    Column("moved", JSON, nullable=False, default=dict),  # {"core": {...}, "<plugin>": {...}}
    Index("ix_customer_merges_kept_id", "kept_id"),
)

#: Which plugins were enabled the last time this database was written, and since when:
#: a plugin that comes back after writes happened without it is asked to catch up.
plugin_states = Table(
    "plugin_states",
    metadata,
    Column("plugin", String(100), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)


#: Every write, core and plugins: who, when, what, the changed fields (before, after) and
#: the request, appended by the write's own transaction (crmkit.core.audit).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("actor_kind", String(20), nullable=False),
    Column("on_behalf_of", String(100)),
    Column("action", String(100), nullable=False),
    Column("entity", String(50), nullable=False),
    Column("entity_id", String(100)),
    # the customer the entry concerns: the 360 activity, and erasure scrubs these entries
    Column("customer_id", Integer),
    # {"field": [before, after]}; a create has before None, a delete after None
    Column("changes", JSON, nullable=False, default=dict, info={"personal": True}),
    Column("request_id", String(64)),
    Index("ix_audit_log_customer_id", "customer_id", "id"),
    Index("ix_audit_log_actor", "actor", "id"),
    Index("ix_audit_log_at", "at"),
)

#: Browser sessions, server-side: the cookie holds a random token, this table its SHA-256.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("address", String(64)),
    Index("ix_sessions_staff_id", "staff_id"),
)

#: API tokens for other systems: shown once at creation; only the SHA-256 is stored.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("prefix", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False, default=list),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200)),
    Column("expires_at", UTCDateTime),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

#: Failed sign-ins, by account and by address, for the back-off (pruned as they age).
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(200), nullable=False),  # "account:<username>" / "address:<ip>"
    Column("at", UTCDateTime, nullable=False),
    Index("ix_login_failures_key_at", "key", "at"),
)

#: The first response to each POST carrying an Idempotency-Key, per actor, stored by the
#: write's own transaction: a retry gets it back and writes nothing twice.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("actor", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("headers", JSON, nullable=False, default=dict),
    Column("body", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
)
