"""loyalty: cheaper ledger writes for bulk earning

Revision ID: loyalty0004
Revises: loyalty0003
Create Date: 2026-11-23

An import of 1,000,000 orders writes about as many ledger rows; on
PostgreSQL each row cost, besides the table, four index entries and a
foreign-key trigger call. This revision keeps every guarantee and makes the
rows cheaper to write:

* An order's points are idempotent through a unique index on (order, kind,
  member, rule) (a program's rules that award points have distinct names).
  It replaces the order index, and order rows no longer carry a text key of
  their own ("order:<id>:<rule>", a random insert into a text index per row).
  The idempotency key stays for the other causes (sign-up, birthday, referral,
  reversal), unique per program where it is set (a partial index). Rows
  written before keep their key. A stored program whose awarding rules share
  a name (which already failed on an order both rules award) is refused with
  a clear error until it is loaded again with distinct names.
* The ledger's foreign key to its member goes: every writer posts rows only
  for members it has just read in the same transaction, and its check was a
  trigger call per row (a third of the time of writing a batch's rows). The
  cascade it gave is kept by a trigger on the members table: deleting a
  member (or its program or customer, which cascade to the member) deletes
  its ledger rows.
* PostgreSQL: members are stored with a fillfactor of 50, so the balance
  update of each batch can write the new row version on the same page (a HOT
  update) instead of adding an entry to each of the three member indexes.
  Existing pages keep their fill; ``VACUUM FULL loyalty_members`` repacks
  them in a quiet hour.

A later revision that rebuilds ``loyalty_members`` on SQLite (batch mode)
must create the trigger again: SQLite drops a table's triggers with it.
"""

from alembic import op
from sqlalchemy import text

revision = "loyalty0004"
down_revision = "loyalty0003"
branch_labels = None
depends_on = None

MEMBER_FK = "fk_loyalty_ledger_member_id_loyalty_members"
TRIGGER = "loyalty_members_delete_ledger"
NOT_NULL = text("idem_key IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_loyalty_ledger_order_id", table_name="loyalty_ledger")
    with op.batch_alter_table("loyalty_ledger") as batch:  # SQLite: rebuilds the table
        batch.drop_constraint(MEMBER_FK, type_="foreignkey")
        batch.drop_constraint("uq_loyalty_ledger_program_id", type_="unique")
    op.create_index(
        "uq_loyalty_ledger_idem_key",
        "loyalty_ledger",
        ["program_id", "idem_key"],
        unique=True,
        postgresql_where=NOT_NULL,
        sqlite_where=NOT_NULL,
    )
    op.create_index(
        "uq_loyalty_ledger_order_cause",
        "loyalty_ledger",
        ["order_id", "kind", "member_id", "rule"],
        unique=True,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM loyalty_ledger WHERE member_id IN (SELECT id FROM gone);
                RETURN NULL;
            END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON loyalty_members "
            f"REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
        )
        op.execute("ALTER TABLE loyalty_members SET (fillfactor = 50)")
    else:
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON loyalty_members "
            "BEGIN DELETE FROM loyalty_ledger WHERE member_id = OLD.id; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE loyalty_members RESET (fillfactor)")
        op.execute(f"DROP TRIGGER {TRIGGER} ON loyalty_members")
        op.execute(f"DROP FUNCTION {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER {TRIGGER}")
    # the old scheme keyed every order row: give the rows written since their key back
    op.execute(
        "UPDATE loyalty_ledger SET idem_key = 'order:' || CAST(order_id AS VARCHAR) || ':' || rule "
        "WHERE idem_key IS NULL AND kind = 'earn' AND order_id IS NOT NULL"
    )
    op.drop_index("uq_loyalty_ledger_order_cause", table_name="loyalty_ledger")
    op.drop_index("uq_loyalty_ledger_idem_key", table_name="loyalty_ledger")
    with op.batch_alter_table("loyalty_ledger") as batch:
        batch.create_unique_constraint("uq_loyalty_ledger_program_id", ["program_id", "idem_key"])
        batch.create_foreign_key(
            MEMBER_FK, "loyalty_members", ["member_id"], ["id"], ondelete="CASCADE"
        )
    op.create_index("ix_loyalty_ledger_order_id", "loyalty_ledger", ["order_id"])
