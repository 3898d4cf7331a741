"""The segmentation plugin's tables: dated snapshots and each customer's segment in them.

A membership's ``segment`` is a profiling result about a person, so it is marked personal
(``info={"personal": True}``): the person's export lists every one, erasure deletes them.
Snapshots themselves (scheme, date, settings, counts) are about no one.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Date, ForeignKey, Index, Integer, String, Table

from crmkit.plugin import UTCDateTime, metadata

snapshots = Table(
    "segmentation_snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scheme", String(100), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("params", JSON, nullable=False),
    Index("ix_segmentation_snapshots_scheme_as_of", "scheme", "as_of"),
)

memberships = Table(
    "segmentation_memberships",
    metadata,
    Column(
        "snapshot_id",
        Integer,
        ForeignKey("segmentation_snapshots.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("segment", String(200), nullable=False, info={"personal": True}),
    Index("ix_segmentation_memberships_customer", "customer_id"),
)
