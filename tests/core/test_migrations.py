"""Alembic: upgrade keeps data, the schema matches the tables, SQL preview, plugin branches."""

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
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


CORE_HEAD = "c0005"
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


# -- a plugin's migrations folder must hold its revisions --------------------

NOTES_REVISION = '''
"""{name}: notes"""
import sqlalchemy as sa
from alembic import op

revision = "{name}0001"
down_revision = None
branch_labels = ("{name}",)
depends_on = None


def upgrade():
    op.create_table(
        "{name}_notes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_{name}_notes"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_{name}_notes_customer_id_customers",
            ondelete="CASCADE",
        ),
    )


def downgrade():
    op.drop_table("{name}_notes")
'''

NOTES_TABLES = """
from sqlalchemy import Column, ForeignKey, Integer, Table, Text

import crmkit.plugin as ck

notes = Table(
    "{name}_notes",
    ck.metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),{extra}
)
"""

NOTES_PLUGIN = """
from pathlib import Path

import crmkit.plugin as ck
from crmkit_{name} import tables  # noqa: F401

CRMKIT_NAME = "{name}"
CRMKIT_API = ">=1.0,<2"


@ck.hookimpl
def crmkit_register_migrations():
    return str(Path(__file__).parent / {folder})
"""


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """Write and import a plugin package crmkit_NAME (tables.py, plugin.py, revisions) on
    sys.path; its modules and tables are dropped again after the test."""
    import importlib
    import shutil
    import sys

    root = tmp_path / "site"
    monkeypatch.syspath_prepend(str(root))
    names = []

    def write_tables(name, extra=""):
        package = root / f"crmkit_{name}"
        (package / "tables.py").write_text(NOTES_TABLES.format(name=name, extra=extra))
        shutil.rmtree(package / "__pycache__", ignore_errors=True)

    def load(name):
        for module in [
            m for m in sys.modules if m == f"crmkit_{name}" or m.startswith(f"crmkit_{name}.")
        ]:
            del sys.modules[module]
        if f"{name}_notes" in metadata.tables:
            metadata.remove(metadata.tables[f"{name}_notes"])
        importlib.invalidate_caches()
        return importlib.import_module(f"crmkit_{name}.plugin")

    def make(name, folder='"migrations" / "versions"', revisions=True):
        package = root / f"crmkit_{name}"
        versions = package / "migrations" / "versions"
        versions.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "plugin.py").write_text(NOTES_PLUGIN.format(name=name, folder=folder))
        write_tables(name)
        if revisions:
            (versions / f"{name}0001_notes.py").write_text(NOTES_REVISION.format(name=name))
        names.append(name)
        return load(name)

    make.write_tables = write_tables
    make.load = load
    yield make
    for name in names:
        for module in [m for m in sys.modules if m.startswith(f"crmkit_{name}")]:
            del sys.modules[module]
        if f"{name}_notes" in metadata.tables:
            metadata.remove(metadata.tables[f"{name}_notes"])


@pytest.mark.parametrize(
    ("folder", "revisions", "problem"),
    [
        # the old docs/hooks.md example: the migrations folder instead of its versions folder
        ('"migrations"', True, "holds no revision files (its 'versions' folder does"),
        ('"migration" / "versions"', True, "that folder does not exist"),
        ('"migrations" / "versions"', False, "holds no revision files"),
    ],
    ids=["parent-folder", "missing", "empty"],
)
def test_plugin_whose_folder_holds_no_revisions_is_refused_at_upgrade(
    database_url, plugin_package, folder, revisions, problem
):
    plugin = plugin_package("wrongdir", folder=folder, revisions=revisions)
    registered = plugin.crmkit_register_migrations()
    with pytest.raises(crmkit.PluginError) as refused:
        crmkit.open(database_url, plugins=[plugin], upgrade=True)
    message = str(refused.value)
    assert message.startswith("plugin 'wrongdir' returned")
    assert f"returned {registered} from crmkit_register_migrations" in message
    assert problem in message
    assert (
        "return the versions folder of the plugin's Alembic branch, containing revisions" in message
    )
    # refused before anything ran: not even the core was migrated
    crm = _crm(database_url)
    assert inspect(crm.engine).get_table_names() == []
    crm.close()

    # the command line knows the plugin's name
    from crmkit.testing import run_cli

    for args in (["db", "upgrade"], ["db", "upgrade", "--sql"]):
        result = run_cli(args, database=database_url, plugins=[plugin])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: plugin 'wrongdir' returned {registered} ")
        assert problem in result.stderr and "Traceback" not in result.stderr


def test_plugin_object_with_a_folder_outside_any_package_is_refused(database_url, tmp_path):
    empty = tmp_path / "elsewhere" / "versions"
    empty.mkdir(parents=True)

    class Loose:
        CRMKIT_NAME = "loose"

        @crmkit.hookimpl
        def crmkit_register_migrations(self):
            return str(empty)

    with pytest.raises(crmkit.PluginError, match="plugin 'loose' returned"):
        crmkit.open(database_url, plugins=[Loose()], upgrade=True)
    # with no tables, a plugin returns None and is fine
    Loose.crmkit_register_migrations = crmkit.hookimpl(lambda self: None)
    crmkit.open(database_url, plugins=[Loose()], upgrade=True).close()


# -- the drift check: migrations against the table definitions ---------------

#: tables a plugin's migrations create on purpose outside the metadata (full-text indexes)
UNMANAGED = {"knowledgebase": ("kb_fts*", "kb_search")}


@pytest.mark.parametrize("plugin", [None, "loyalty", "complaints", "knowledgebase", "segmentation"])
def test_migrations_match_the_tables_for_the_core_and_each_bundled_plugin(make_crm, plugin):
    from crmkit.testing import assert_migrations_match_tables

    crm = make_crm(plugins=[plugin] if plugin else [])
    assert_migrations_match_tables(crm, plugin, unmanaged_tables=UNMANAGED.get(plugin, ()))


def test_drift_check_lists_what_differs(make_crm, plugin_package):
    from crmkit.testing import assert_migrations_match_tables

    plugin = plugin_package("drifty")
    plugin_package.write_tables("drifty", extra='\n    Column("author", Text),')
    plugin = plugin_package.load("drifty")
    crm = make_crm(plugins=[plugin])
    with pytest.raises(AssertionError) as drift:
        assert_migrations_match_tables(crm, "drifty")
    assert "the migrations of plugin 'drifty' do not match its table definitions" in str(
        drift.value
    )
    assert "add_column drifty_notes.author (TEXT)" in str(drift.value)
    assert "customers" not in str(drift.value)  # the core's tables are not the plugin's
    assert_migrations_match_tables(crm)  # the core itself is fine
    # a table the migrations create that the code no longer defines
    with crm.engine.begin() as connection:
        connection.execute(text("CREATE TABLE drifty_leftover (id INTEGER PRIMARY KEY)"))
    plugin_package.write_tables("drifty")
    plugin = plugin_package.load("drifty")
    with pytest.raises(AssertionError, match="remove_table drifty_leftover"):
        assert_migrations_match_tables(make_crm(plugins=[plugin]), "drifty")
    with pytest.raises(AssertionError, match="not enabled"):
        assert_migrations_match_tables(make_crm(), "drifty")


# -- crmkit db revision ------------------------------------------------------


def _revision_file(versions, revision):
    found = sorted(versions.glob(f"{revision}_*.py"))
    assert len(found) == 1, sorted(p.name for p in versions.iterdir())
    return found[0]


def _module_values(path):
    """revision, down_revision, branch_labels and the upgrade()/downgrade() statements."""
    import ast

    tree = ast.parse(path.read_text())
    values, bodies = {}, {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
        if isinstance(node, ast.FunctionDef):
            bodies[node.name] = [ast.unparse(s) for s in node.body]
    return values, bodies


def test_db_revision_autogenerates_exactly_the_new_column(database_url, plugin_package):
    from crmkit.testing import assert_migrations_match_tables, run_cli

    plugin = plugin_package("revnotes")
    versions = Path(plugin.__file__).parent / "migrations" / "versions"
    crmkit.open(database_url, plugins=[plugin], upgrade=True).close()
    # tables.py gains a column
    plugin_package.write_tables("revnotes", extra='\n    Column("author", Text),')
    plugin = plugin_package.load("revnotes")

    args = [
        "db",
        "revision",
        "--autogenerate",
        "--plugin",
        "revnotes",
        "-m",
        "Notes have an author",
    ]
    result = run_cli(args, database=database_url, plugins=[plugin])
    assert result.exit_code == 0, (result.output, result.stderr)
    path = _revision_file(versions, "revnotes0002")
    assert path.name == "revnotes0002_notes_have_an_author.py"
    assert f"wrote {path} (revnotes0002, after revnotes0001)" in result.output
    assert "1 change(s) found" in result.output
    values, bodies = _module_values(path)
    assert values == {
        "revision": "revnotes0002",
        "down_revision": "revnotes0001",
        "branch_labels": None,
        "depends_on": None,
    }
    upgrade = "\n".join(bodies["upgrade"])
    assert upgrade.count("add_column") == 1 and "sa.Column('author', sa.Text()" in upgrade
    assert "drop" not in upgrade and "customers" not in upgrade
    assert "drop_column('author')" in "\n".join(bodies["downgrade"])
    # the plugin may import only the public API: nothing of crmkit.core in the revision
    assert "crmkit.core" not in path.read_text()

    crm = crmkit.open(database_url, plugins=[plugin], upgrade=True)
    assert "revnotes0002" in crm.current_revisions()
    assert_migrations_match_tables(crm, "revnotes")
    crm.downgrade("revnotes0001")
    assert "author" not in {c["name"] for c in inspect(crm.engine).get_columns("revnotes_notes")}
    crm.close()


def test_db_revision_starts_a_branch_and_writes_empty_revisions(database_url, plugin_package):
    from crmkit.testing import assert_migrations_match_tables, run_cli

    plugin = plugin_package("fresh", revisions=False)
    versions = Path(plugin.__file__).parent / "migrations" / "versions"
    crmkit.open(database_url, plugins=[], upgrade=True).close()

    first = ["db", "revision", "--autogenerate", "--plugin", "fresh", "-m", "notes"]
    result = run_cli(first, database=database_url, plugins=[plugin])
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "(fresh0001, first of the branch)" in result.output
    values, bodies = _module_values(_revision_file(versions, "fresh0001"))
    assert (values["down_revision"], values["branch_labels"]) == (None, ("fresh",))
    assert bodies["upgrade"][0].startswith("op.create_table('fresh_notes'")

    empty = ["db", "revision", "--plugin", "fresh", "-m", "data fix"]
    result = run_cli(empty, database=database_url, plugins=[plugin])
    assert result.exit_code == 0, (result.output, result.stderr)
    values, bodies = _module_values(_revision_file(versions, "fresh0002"))
    assert (values["down_revision"], values["branch_labels"]) == ("fresh0001", None)
    assert bodies == {"upgrade": ["pass"], "downgrade": ["pass"]}

    crm = crmkit.open(database_url, plugins=[plugin], upgrade=True)
    assert set(crm.current_revisions()) == {CORE_HEAD, "fresh0002"}
    assert_migrations_match_tables(crm, "fresh")
    crm.close()


def test_db_revision_refuses_a_disabled_plugin_and_a_database_behind(database_url, plugin_package):
    from crmkit.testing import run_cli

    plugin = plugin_package("behind")
    args = ["db", "revision", "--autogenerate", "--plugin", "behind", "-m", "x"]
    disabled = run_cli(args, database=database_url, plugins=[])
    assert disabled.exit_code == 1
    assert disabled.stderr.startswith("error: plugin 'behind' is not enabled")
    behind = run_cli(args, database=database_url, plugins=[plugin])  # nothing migrated yet
    assert behind.exit_code == 1
    assert "the database is not at head" in behind.stderr and "crmkit db upgrade" in behind.stderr
    versions = Path(plugin.__file__).parent / "migrations" / "versions"
    assert [p.name for p in versions.glob("*.py")] == ["behind0001_notes.py"]
