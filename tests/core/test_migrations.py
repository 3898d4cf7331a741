"""Alembic: upgrade keeps data, the schema matches the tables, SQL preview, plugin branches."""

import datetime as dt
import textwrap
from decimal import Decimal

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import crmkit
from crmkit.core import db, migrate
from crmkit.core.tables import metadata

T0 = dt.datetime(2024, 5, 5, 8, 0, tzinfo=dt.UTC)


def _crm(url, plugins=()):
    """A CRM on a database whose schema is not upgraded yet (open() would refuse it)."""
    return crmkit.CRM(crmkit.config.Config(database=url, plugins=list(plugins)))


def test_upgrade_from_older_revision_keeps_data(database_url):
    crm = _crm(database_url)
    migrate.upgrade(crm.engine, crm.alembic_config(), "c0001")
    assert crm.current_revisions() == ("c0001",)
    # fill the old schema with raw SQL, as an older crmkit would have
    with crm.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO customers (id, external_id, type, kind, status, name, attributes, "
                "created_at, updated_at) VALUES (1, 'C1', 'person', 'end', 'active', 'Old Timer', "
                '\'{"tier": "gold"}\', :t, :t)'
            ),
            {
                "t": T0.replace(tzinfo=None)
                if db.normalise_url(database_url).startswith("sqlite")
                else T0
            },
        )
        connection.execute(
            text(
                "INSERT INTO orders (id, external_id, customer_id, occurred_at, amount, currency, "
                "status) VALUES (1, 'O1', 1, :t, 99.95, 'EUR', 'paid')"
            ),
            {
                "t": T0.replace(tzinfo=None)
                if db.normalise_url(database_url).startswith("sqlite")
                else T0
            },
        )
    crm.upgrade()
    assert crm.current_revisions() == (CORE_HEAD,)
    customer = crm.customers.get(1)
    assert (customer.name, customer.attributes) == ("Old Timer", {"tier": "gold"})
    order = crm.orders.get(1)
    assert (order.amount, order.occurred_at) == (Decimal("99.95"), T0)
    # and the new tables work on the old data
    crm.customers.set_consent(1, "marketing", True)
    deal = crm.workflows.start("sales", 1, "renewal")
    assert deal.stage == "need_discovery"
    crm.close()


CORE_HEAD = "c0003"
CORE_TABLES = {
    "staff", "customers", "contacts", "consents", "interactions", "orders", "order_lines",
    "workflow_instances", "workflow_transitions",
}  # fmt: skip


def test_tables_match_the_migrations(database_url):
    """Autogenerate finds no difference between crmkit.core.tables and the migrated schema."""
    crm = _crm(database_url)
    crm.upgrade()

    def core_only(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in CORE_TABLES or (type_ == "table" and name in CORE_TABLES)

    with crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": core_only, "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []
    crm.close()


def test_sql_preview_runs_nothing(database_url):
    crm = _crm(database_url)
    sql = crm.upgrade_sql()
    assert "CREATE TABLE customers" in sql and "CREATE TABLE workflow_transitions" in sql
    assert inspect(crm.engine).get_table_names() == []  # nothing ran
    migrate.upgrade(crm.engine, crm.alembic_config(), "c0001")
    partial = crm.upgrade_sql()
    assert "CREATE TABLE consents" in partial and "CREATE TABLE customers" not in partial
    crm.close()


def test_schema_out_of_date_is_refused_with_the_fix(database_url):
    import pytest

    with pytest.raises(crmkit.SchemaOutOfDate, match="run 'crmkit db upgrade'"):
        crmkit.open(database_url, plugins=[])


def _plugin_with_branch(tmp_path):
    versions = tmp_path / "notes_plugin" / "versions"
    versions.mkdir(parents=True)
    (versions / "notes0001_initial.py").write_text(
        textwrap.dedent(
            '''
            """notes: initial"""
            import sqlalchemy as sa
            from alembic import op

            revision = "notes0001"
            down_revision = None
            branch_labels = ("notes",)
            depends_on = None  # crmkit upgrades the core first


            def upgrade():
                op.create_table(
                    "notes_notes",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id"), nullable=False),
                    sa.Column("text", sa.Text, nullable=False),
                )


            def downgrade():
                op.drop_table("notes_notes")
            '''
        )
    )

    class Notes:
        CRMKIT_NAME = "notes"

        @crmkit.hookimpl
        def crmkit_register_migrations(self):
            return str(versions)

    return Notes()


def test_plugin_enabled_later_gets_its_tables_and_can_be_removed(database_url, tmp_path):
    crmkit.open(database_url, plugins=[], upgrade=True).close()
    notes = _plugin_with_branch(tmp_path)
    with_notes = crmkit.CRM(crmkit.config.Config(database=database_url, plugins=[notes]))
    assert "notes_notes" not in inspect(with_notes.engine).get_table_names()
    assert "CREATE TABLE notes_notes" in with_notes.upgrade_sql()
    with_notes.upgrade()
    assert set(with_notes.current_revisions()) == {CORE_HEAD, "notes0001"}
    with_notes.check_schema()  # at head
    # disabled again: its tables stay, the core keeps working and upgrading
    without = crmkit.open(database_url, plugins=[], upgrade=True)
    without.customers.add(name="Still works")
    assert set(without.current_revisions()) == {CORE_HEAD, "notes0001"}
    assert "notes_notes" in inspect(without.engine).get_table_names()
    without.close()
    assert "notes_notes" in inspect(with_notes.engine).get_table_names()
    migrate.downgrade(with_notes.engine, with_notes.alembic_config(), "notes@base")
    assert "notes_notes" not in inspect(with_notes.engine).get_table_names()
    assert with_notes.current_revisions() == (CORE_HEAD,)
    with_notes.close()


def test_orders_index_widens_and_narrows_again(database_url):
    """c0003 adds status and amount to ix_orders_customer_time; its downgrade takes them off."""
    crm = _crm(database_url)
    crm.upgrade()

    def index_columns():
        found = {i["name"]: i["column_names"] for i in inspect(crm.engine).get_indexes("orders")}
        return found["ix_orders_customer_time"]

    assert index_columns() == ["customer_id", "occurred_at", "status", "amount"]
    migrate.downgrade(crm.engine, crm.alembic_config(), "c0002")
    assert index_columns() == ["customer_id", "occurred_at"]
    crm.upgrade()
    assert index_columns() == ["customer_id", "occurred_at", "status", "amount"]
    crm.close()
