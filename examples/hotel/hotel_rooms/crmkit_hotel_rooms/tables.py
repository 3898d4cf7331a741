"""The plugin's table, on crmkit's shared MetaData (so the foreign key to customers resolves)."""

from sqlalchemy import Boolean, Column, ForeignKey, Integer, Table, Text

from crmkit.plugin import UTCDateTime, metadata

preferences = Table(
    "hotel_rooms_preferences",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "customer_id",
        Integer,
        ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("floor", Text),
    Column("pillow", Text),
    Column("bed", Text),
    Column("quiet", Boolean),
    Column("note", Text),
    Column("updated_by", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)
