"""The loyalty plugin's tables (SQLAlchemy Core on crmkit's shared metadata).

* ``loyalty_programs`` — program definitions (the validated TOML as JSON), several
  per company, each enabled or not.
* ``loyalty_rewards`` — the rewards catalogue per program, with stock counters.
* ``loyalty_members`` — one row per (program, customer): tier, the balance kept
  equal to the sum of the member's ledger in the same transaction, the points
  still to claw back, the count of earning orders.
* ``loyalty_ledger`` — append-only points ledger. An order earns once per rule and
  member: (order, kind, member, rule) is unique. Other causes carry an ``idem_key``,
  unique per program (``reverse:order:<id>:<member>``, ``signup:<member>``,
  ``birthday:<member>:<year>``, ``referral:<member>``, ``referred:<member>``).
* ``loyalty_tier_changes`` — append-only history of tier moves.
"""

from __future__ import annotations

import functools

from sqlalchemy import (
    JSON,
    BigInteger,
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
    UniqueConstraint,
    text,
)

from crmkit.plugin import Money, UTCDateTime, metadata

programs = Table(
    "loyalty_programs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("title", String(200), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("source", String(500), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

rewards = Table(
    "loyalty_rewards",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "program_id", Integer, ForeignKey("loyalty_programs.id", ondelete="CASCADE"), nullable=False
    ),
    Column("code", String(100), nullable=False),
    Column("title", String(300), nullable=False),
    Column("points", Integer, nullable=False),
    Column("stock", Integer),  # NULL: unlimited
    Column("redeemed", Integer, nullable=False),
    Column("valid_from", Date),
    Column("valid_until", Date),
    Column("value", Money),
    Column("active", Boolean, nullable=False),
    UniqueConstraint("program_id", "code", name="uq_loyalty_rewards_program_id"),
)

members = Table(
    "loyalty_members",
    metadata,
    Column("id", Integer, primary_key=True),
    # no foreign keys on program and customer (loyalty0005): triggers check them on insert
    # and when they change, and delete a deleted program's or customer's members; a key
    # would be re-checked on every balance update of a row the transaction wrote already
    Column("program_id", Integer, nullable=False),
    Column("customer_id", Integer, nullable=False),
    Column("tier", String(100)),
    Column("tier_since", UTCDateTime),
    Column("balance", BigInteger, nullable=False),
    Column("clawback_due", BigInteger, nullable=False),
    Column("orders_count", Integer, nullable=False),
    # at least the customer's paid spend of all time, in 1/10,000 (loyalty0006; NULL:
    # unknown): a batch reads an order's 12-month spend only when this could reach the
    # next tier (crmkit_loyalty.bounds)
    Column("spend_bound", BigInteger),
    # who referred the member: links two people (personal; erasure forgets it both ways)
    Column(
        "referred_by",
        Integer,
        ForeignKey("customers.id", ondelete="SET NULL"),
        info={"personal": True},
    ),
    Column("enrolled_at", UTCDateTime, nullable=False),
    UniqueConstraint("program_id", "customer_id", name="uq_loyalty_members_program_id"),
    Index("ix_loyalty_members_customer_id", "customer_id"),
)

ledger = Table(
    "loyalty_ledger",
    metadata,
    Column("id", Integer, primary_key=True),
    # no foreign keys (loyalty0003, loyalty0004): rows are only written for members the
    # same transaction read, and a trigger deletes a deleted member's rows (migration)
    Column("program_id", Integer, nullable=False),
    Column("member_id", Integer, nullable=False),
    Column("kind", String(10), nullable=False),  # earn redeem expire adjust reverse
    Column("points", BigInteger, nullable=False),  # signed
    Column("occurred_at", UTCDateTime, nullable=False),  # when the cause happened
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),  # set on entries that add to or cut a points lot
    Column("order_id", Integer),  # cause: an order (no FK: orders may be archived)
    Column("reward_code", String(100)),  # cause: a reward
    Column("rule", String(100)),  # cause: an earn rule, "expiry", "clawback" ...
    Column("staff", String(100)),  # cause: a staff member ...
    # ... with their reason: free text about the person (personal; erased to "(erased)")
    Column("reason", Text, info={"personal": True}),
    Column("idem_key", String(200)),  # causes other than an order's rules
    Index(
        "uq_loyalty_ledger_idem_key",
        "program_id",
        "idem_key",
        unique=True,
        postgresql_where=text("idem_key IS NOT NULL"),
        sqlite_where=text("idem_key IS NOT NULL"),
    ),
    Index("uq_loyalty_ledger_order_cause", "order_id", "kind", "member_id", "rule", unique=True),
    Index("ix_loyalty_ledger_member_id", "member_id"),
)

tier_changes = Table(
    "loyalty_tier_changes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "member_id", Integer, ForeignKey("loyalty_members.id", ondelete="CASCADE"), nullable=False
    ),
    Column("from_tier", String(100)),
    Column("to_tier", String(100)),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", String(100), nullable=False),
    Column("measure", Money, nullable=False),
    Index("ix_loyalty_tier_changes_member_id", "member_id"),
)


@functools.cache
def batch_orders(rules: int) -> Table:
    """A per-connection scratch table (no migration): one earning batch's paid orders of
    members, with what set-based earning needs (crmkit_loyalty.setbased) and each of the
    program's ``rules`` order rules' points (``points_0`` ...), computed once per order."""
    return Table(
        f"loyalty_tmp_batch_orders_{rules}",
        MetaData(),
        Column("order_id", Integer, nullable=False),  # no key: rows arrive in member order
        Column("member_id", Integer, nullable=False),
        Column("customer_id", Integer, nullable=False),
        Column("occurred_at", UTCDateTime, nullable=False),
        Column("expires_at", UTCDateTime),
        Column("tier", String(100)),  # the tier the order earns with
        Column("sequential", Boolean, nullable=False),  # the member earns order by order
        # spend or orders measure: the qualifying measure after the order (spend in
        # 1/10,000) and the tier it moves the member up to, if any
        Column("measure", BigInteger),
        Column("upgrade_to", String(100)),
        Column("spend", BigInteger, nullable=False),  # the order's amount in 1/10,000 (>= 0)
        Column("channel", String(20)),
        Column("seq", Integer, nullable=False),  # the order's number among the member's
        *(Column(f"points_{i}", BigInteger, nullable=False) for i in range(rules)),
        prefixes=["TEMPORARY"],
    )
