"""The complaints plugin's tables (SQLAlchemy Core, on crmkit's shared metadata).

Columns holding personal data about the customer are marked ``info={"personal": True}``:
what the person wrote or answered (description, survey scores and comment), what staff
wrote about their case (root cause, resolution, replies and internal notes), and the
tracking code they hold. ``crmkit_export_personal_data`` exports every marked value and
``crmkit_erase_personal_data`` erases them (survey scores stay as anonymous figures; see
the README's "Personal data" section). Staff usernames, categories, channels, stages and
times are not the customer's personal data.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from crmkit.plugin import UTCDateTime, metadata

complaints = Table(
    "complaints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("interaction_id", Integer, ForeignKey("interactions.id", ondelete="SET NULL")),
    Column("workflow_instance_id", Integer, ForeignKey("workflow_instances.id")),
    Column("tracking_code", String(40), nullable=False, unique=True, info={"personal": True}),
    Column("channel", String(20), nullable=False),
    Column("category", String(100), nullable=False),
    Column("department", String(100)),
    Column("severity", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("assignee", String(100)),
    Column("description", Text, nullable=False, info={"personal": True}),
    Column("root_cause", Text, nullable=False, default="", info={"personal": True}),
    Column("resolution", Text, nullable=False, default="", info={"personal": True}),
    Column("stage", String(40), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("first_response_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    # SLA clock: business microseconds spent waiting on the customer, and the open pause
    Column("paused_us", BigInteger, nullable=False, default=0),
    Column("paused_since", UTCDateTime),
    Column("first_response_target_s", Integer, nullable=False),
    Column("resolution_target_s", Integer, nullable=False),
    Column("warn_ratio", Float, nullable=False),
    Column("clock", String(20), nullable=False),
    # computed due moments: NULL when met, paused or closed; the SLA check compares these
    Column("first_response_warn_at", UTCDateTime),
    Column("first_response_due_at", UTCDateTime),
    Column("resolution_warn_at", UTCDateTime),
    Column("resolution_due_at", UTCDateTime),
    Column("created_by", String(100)),
    Index("ix_complaints_customer_id", "customer_id"),
    Index("ix_complaints_first_response_warn_at", "first_response_warn_at"),
    Index("ix_complaints_first_response_due_at", "first_response_due_at"),
    Index("ix_complaints_resolution_warn_at", "resolution_warn_at"),
    Index("ix_complaints_resolution_due_at", "resolution_due_at"),
    Index("ix_complaints_workflow_instance_id", "workflow_instance_id"),
)

replies = Table(
    "complaints_replies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "complaint_id", Integer, ForeignKey("complaints.id", ondelete="CASCADE"), nullable=False
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("author", String(100)),
    Column("body", Text, nullable=False, info={"personal": True}),
    Column("public", Boolean, nullable=False),
    Column("show_author", Boolean, nullable=False),
    Index("ix_complaints_replies_complaint_id", "complaint_id"),
)

sla_alerts = Table(
    "complaints_sla_alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "complaint_id", Integer, ForeignKey("complaints.id", ondelete="CASCADE"), nullable=False
    ),
    Column("target", String(20), nullable=False),
    Column("level", String(20), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("assignee", String(100)),
    Column("manager", String(100)),
    # the department's responsible staff member when the complaint has no assignee
    Column("responsible", String(100)),
    UniqueConstraint("complaint_id", "target", "level", name="uq_complaints_sla_alerts_once"),
)

pauses = Table(
    "complaints_pauses",
    metadata,
    # one row per stay in a stage that stops the SLA clock (waiting on the customer,
    # resolved, closed); the log lets targets be re-measured on another clock or calendar
    Column("id", Integer, primary_key=True),
    Column(
        "complaint_id", Integer, ForeignKey("complaints.id", ondelete="CASCADE"), nullable=False
    ),
    Column("stage", String(40), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Index("ix_complaints_pauses_complaint_id", "complaint_id"),
)

outbox = Table(
    "complaints_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("alert_id", Integer, ForeignKey("complaints_sla_alerts.id", ondelete="CASCADE")),
    Column("recipient", String(100)),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

surveys = Table(
    "complaints_surveys",
    metadata,
    Column(
        "complaint_id",
        Integer,
        ForeignKey("complaints.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("csat", Integer, nullable=False, info={"personal": True}),
    Column("nps", Integer, nullable=False, info={"personal": True}),
    Column("comment", Text, nullable=False, default="", info={"personal": True}),
    Column("at", UTCDateTime, nullable=False),
)

sla_policies = Table(
    "complaints_sla_policies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("priority", String(20), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("first_response_hours", Float, nullable=False),
    Column("resolution_hours", Float, nullable=False),
    Column("warn_ratio", Float, nullable=False),
    Column("clock", String(20), nullable=False),
    UniqueConstraint("priority", "channel", name="uq_complaints_sla_policies_key"),
)
