"""loyalty: the members' program and customer keys checked by triggers

Revision ID: loyalty0005
Revises: loyalty0004
Create Date: 2026-12-06

PostgreSQL re-checks every foreign key of a row whenever a statement updates
a row version the running transaction wrote, whichever columns change
(``RI_FKey_fk_upd_check_required``): every batch of an import after the first
paid two checks per member it earned for (0.38 s of a 50,000-order batch's
0.85 s balance update; about 7 s of a 1,000,000-order import). The keys
``program_id`` and ``customer_id`` of ``loyalty_members`` become triggers with
the same guarantees that fire only when those columns are written:

* inserting a member, or updating its ``program_id`` or ``customer_id``, checks
  the program and the customer exist (PostgreSQL: and locks them ``FOR KEY
  SHARE`` as the foreign key did, so a concurrent delete waits); a missing one
  is a foreign-key violation (an ``IntegrityError``), as before;
* deleting a program or a customer deletes its members (whose delete trigger
  deletes their ledger, and whose tier history cascades), as ``ON DELETE
  CASCADE`` did; changing the id of a program or customer that has members is
  refused, as the keys' ``NO ACTION`` did.

``referred_by`` keeps its foreign key (``ON DELETE SET NULL``): it is NULL for
most members, and a NULL key is never checked.

SQLite rebuilds ``loyalty_members`` (batch mode). Its DROP runs with foreign
keys on, which would cascade to ``loyalty_tier_changes``: those rows are kept
aside and put back, and the ledger trigger of loyalty0004 is created again.
A later revision that rebuilds ``loyalty_members``, ``loyalty_programs`` or
``customers`` on SQLite must create these triggers again.
"""

from collections.abc import Callable
from typing import Any

from alembic import op

revision = "loyalty0005"
down_revision = "loyalty0004"
branch_labels = None
depends_on = None

KEYS = {
    "program_id": ("loyalty_programs", "fk_loyalty_members_program_id_loyalty_programs"),
    "customer_id": ("customers", "fk_loyalty_members_customer_id_customers"),
}
CHECK = "loyalty_members_check_keys"
LEDGER_TRIGGER = "loyalty_members_delete_ledger"


def _gone(parent: str) -> str:
    return f"{parent}_delete_loyalty_members"


def _renumbered(parent: str) -> str:
    return f"{parent}_id_loyalty_members"


def _rebuild_members_sqlite(change: Callable[[Any], None]) -> None:
    """Rebuild ``loyalty_members`` (SQLite) keeping its tier history and ledger trigger."""
    op.execute(
        "CREATE TEMPORARY TABLE loyalty_keep_tier_changes AS SELECT * FROM loyalty_tier_changes"
    )
    with op.batch_alter_table("loyalty_members") as batch:
        change(batch)
    op.execute("DELETE FROM loyalty_tier_changes")  # the DROP's cascade emptied it already
    op.execute("INSERT INTO loyalty_tier_changes SELECT * FROM loyalty_keep_tier_changes")
    op.execute("DROP TABLE loyalty_keep_tier_changes")
    op.execute(
        f"CREATE TRIGGER {LEDGER_TRIGGER} AFTER DELETE ON loyalty_members "
        "BEGIN DELETE FROM loyalty_ledger WHERE member_id = OLD.id; END"
    )


def _upgrade_postgresql() -> None:
    for _, constraint in KEYS.values():
        op.drop_constraint(constraint, "loyalty_members", type_="foreignkey")
    checks = "\n".join(
        f"""PERFORM 1 FROM {parent} WHERE id = NEW.{column} FOR KEY SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'insert or update on table "loyalty_members" violates '
                    'foreign key {constraint}'
                    USING ERRCODE = 'foreign_key_violation',
                    DETAIL = format('Key ({column})=(%s) is not present in table "{parent}".',
                                    NEW.{column});
            END IF;"""
        for column, (parent, constraint) in KEYS.items()
    )
    op.execute(
        f"""CREATE FUNCTION {CHECK}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {checks}
            RETURN NULL;
        END $$"""
    )
    op.execute(
        f"CREATE TRIGGER {CHECK} AFTER INSERT OR UPDATE OF program_id, customer_id "
        f"ON loyalty_members FOR EACH ROW EXECUTE FUNCTION {CHECK}()"
    )
    for column, (parent, _) in KEYS.items():
        gone, renumbered = _gone(parent), _renumbered(parent)
        op.execute(
            f"""CREATE FUNCTION {gone}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                DELETE FROM loyalty_members WHERE {column} IN (SELECT id FROM gone);
                RETURN NULL;
            END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {gone} AFTER DELETE ON {parent} "
            f"REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION {gone}()"
        )
        op.execute(
            f"""CREATE FUNCTION {renumbered}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM loyalty_members WHERE {column} = OLD.id) THEN
                    RAISE EXCEPTION 'update on table "{parent}" violates foreign key of '
                        'table "loyalty_members"' USING ERRCODE = 'foreign_key_violation';
                END IF;
                RETURN NULL;
            END $$"""
        )
        op.execute(
            f"CREATE TRIGGER {renumbered} AFTER UPDATE OF id ON {parent} FOR EACH ROW "
            f"WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION {renumbered}()"
        )


def _upgrade_sqlite() -> None:
    def drop(batch: Any) -> None:
        for _, constraint in KEYS.values():
            batch.drop_constraint(constraint, type_="foreignkey")

    _rebuild_members_sqlite(drop)
    missing = " OR ".join(
        f"NOT EXISTS (SELECT 1 FROM {parent} WHERE id = NEW.{column})"
        for column, (parent, _) in KEYS.items()
    )
    fail = "SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed');"
    op.execute(
        f"CREATE TRIGGER {CHECK}_insert BEFORE INSERT ON loyalty_members "
        f"WHEN {missing} BEGIN {fail} END"
    )
    op.execute(
        f"CREATE TRIGGER {CHECK}_update BEFORE UPDATE OF program_id, customer_id "
        f"ON loyalty_members WHEN {missing} BEGIN {fail} END"
    )
    for column, (parent, _) in KEYS.items():
        op.execute(
            f"CREATE TRIGGER {_gone(parent)} AFTER DELETE ON {parent} "
            f"BEGIN DELETE FROM loyalty_members WHERE {column} = OLD.id; END"
        )
        op.execute(
            f"CREATE TRIGGER {_renumbered(parent)} BEFORE UPDATE OF id ON {parent} "
            f"WHEN OLD.id IS NOT NEW.id "
            f"AND EXISTS (SELECT 1 FROM loyalty_members WHERE {column} = OLD.id) "
            f"BEGIN {fail} END"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for _, (parent, _) in KEYS.items():
        for name in (_gone(parent), _renumbered(parent)):
            op.execute(f"DROP TRIGGER {name} ON {parent}" if postgresql else f"DROP TRIGGER {name}")
            if postgresql:
                op.execute(f"DROP FUNCTION {name}()")
    if postgresql:
        op.execute(f"DROP TRIGGER {CHECK} ON loyalty_members")
        op.execute(f"DROP FUNCTION {CHECK}()")
        for column, (parent, constraint) in KEYS.items():
            op.create_foreign_key(
                constraint, "loyalty_members", parent, [column], ["id"], ondelete="CASCADE"
            )
        return
    op.execute(f"DROP TRIGGER {CHECK}_insert")
    op.execute(f"DROP TRIGGER {CHECK}_update")

    def add(batch: Any) -> None:
        for column, (parent, constraint) in KEYS.items():
            batch.create_foreign_key(constraint, parent, [column], ["id"], ondelete="CASCADE")

    _rebuild_members_sqlite(add)
