"""The schema-at-head check on open, decided without Alembic when it can be
(:func:`crmkit.core.migrate.at_heads`), and the same as Alembic's answer."""

from __future__ import annotations

import textwrap

import pytest
from alembic.script import ScriptDirectory

import crmkit
from crmkit.core import migrate
from crmkit.plugins import installed

ALL = sorted(installed())


def _folders(crm: crmkit.CRM) -> list[str]:
    return [str(migrate.CORE_MIGRATIONS / "versions"), *crm._migration_dirs().values()]


def test_the_heads_read_from_the_files_are_alembics(make_crm):
    crm = make_crm(plugins=ALL)
    alembic_heads = set(ScriptDirectory.from_config(crm.alembic_config()).get_heads())
    assert migrate.script_heads(_folders(crm)) == alembic_heads
    assert len(alembic_heads) == 1 + len(ALL)  # the core's branch and one per plugin


def test_at_heads_only_when_alembic_finds_nothing_pending(database_url):
    crm = crmkit.CRM(crmkit.config.Config(database=database_url, plugins=ALL))
    try:
        assert not migrate.at_heads(crm.engine, _folders(crm))  # a new database: no table
        crm.upgrade()
        assert migrate.at_heads(crm.engine, _folders(crm))
        assert not migrate.pending(crm.engine, crm.alembic_config())
        crm.downgrade("loyalty0001")
        assert not migrate.at_heads(crm.engine, _folders(crm))
        assert migrate.pending(crm.engine, crm.alembic_config())
        with pytest.raises(crmkit.SchemaOutOfDate, match="run 'crmkit db upgrade'"):
            crm.check_schema()
        crm.upgrade()
        crm.check_schema()
    finally:
        crm.close()


def test_a_disabled_plugins_revision_does_not_count(make_crm, database_url):
    make_crm(plugins=ALL).close()
    core_only = crmkit.open(database_url, plugins=[])  # loyalty's tables stay; still at head
    try:
        assert migrate.at_heads(core_only.engine, _folders(core_only))
    finally:
        core_only.close()


REVISION = """
revision = "{rev}"
down_revision = {down}
branch_labels = None
depends_on = {depends}
"""


def _write(folder, name, rev, down="None", depends="None"):
    folder.mkdir(exist_ok=True)
    text = REVISION.format(rev=rev, down=down, depends=depends)
    (folder / f"{name}.py").write_text(textwrap.dedent(text))


def test_script_heads_follow_down_revisions_and_merges(tmp_path):
    folder = tmp_path / "versions"
    _write(folder, "a", "a")
    _write(folder, "b", "b", down='"a"')
    _write(folder, "c", "c", down='"a"')
    assert migrate.script_heads([str(folder)]) == {"b", "c"}
    _write(folder, "m", "m", down='("b", "c")')  # a merge revision
    (folder / "__init__.py").write_text("revision = 'not a revision file'\n")
    assert migrate.script_heads([str(folder)]) == {"m"}


@pytest.mark.parametrize(
    ("down", "depends"),
    [("None", '"x"'), ("compute()", "None"), ("3", "None")],
    ids=["depends_on", "not a literal", "not a revision id"],
)
def test_script_heads_leave_what_they_cannot_read_to_alembic(tmp_path, down, depends):
    folder = tmp_path / "versions"
    _write(folder, "a", "a")
    _write(folder, "b", "b", down=down, depends=depends)
    assert migrate.script_heads([str(folder)]) is None


def test_script_heads_leave_missing_and_empty_folders_to_alembic(tmp_path):
    (tmp_path / "empty").mkdir()
    assert migrate.script_heads([str(tmp_path / "missing")]) is None
    assert migrate.script_heads([str(tmp_path / "empty")]) is None
