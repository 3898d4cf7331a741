"""Plugin discovery through real entry points, enabling, failures, versions, requirements."""

import textwrap

import pytest
from click.testing import CliRunner

import crmkit
from crmkit import config as config_module
from crmkit import plugins as loader
from crmkit.cli import CliState, cli

PLUGINS = {
    "good": """
        import crmkit
        CRMKIT_API = ">=1.0,<2"

        @crmkit.hookimpl
        def crmkit_register_settings():
            return crmkit.SettingsSpec("good", {"greeting": "hello"})
    """,
    "broken": """
        raise ImportError("libfoo.so not found")
    """,
    "future": """
        import crmkit
        CRMKIT_API = ">=2.0"

        @crmkit.hookimpl
        def crmkit_register_settings():
            return crmkit.SettingsSpec("future", {})
    """,
    "needy": """
        import crmkit
        CRMKIT_REQUIRES = ("good",)

        @crmkit.hookimpl
        def crmkit_register_settings():
            return crmkit.SettingsSpec("needy", {})
    """,
    "typo": """
        import crmkit

        @crmkit.hookimpl
        def crmkit_after_order_created(ctx, orders):
            pass
    """,
    "speaker": """
        import crmkit

        class Specs:
            @crmkit.hookspec
            def crmkit_speaker_words(self, crm):
                "Return words to say."

        @crmkit.hookimpl
        def crmkit_register_hookspecs():
            return Specs
    """,
    "listener": """
        import crmkit

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_speaker_words(crm):
            return "hi from listener"
    """,
}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install fake distributions (module + dist-info with entry points) on sys.path."""
    for name, source in PLUGINS.items():
        (tmp_path / f"crmkit_{name}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"crmkit_{name}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: crmkit-{name}\nVersion: 1.2.3\n"
        )
        (info / "entry_points.txt").write_text(f"[crmkit]\n{name} = crmkit_{name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    return tmp_path


def statuses(enabled):
    _, found = loader.load(enabled)
    return {s.name: s for s in found}


def test_only_enabled_plugins_load(installed):
    found = statuses(["good"])
    assert found["good"].status == "ok" and found["good"].enabled
    assert found["good"].distribution == "crmkit-good" and found["good"].version == "1.2.3"
    assert found["good"].hooks == ["crmkit_register_settings"]
    assert found["listener"].status == "disabled" and not found["listener"].enabled


def test_broken_plugin_is_reported_and_others_work(installed, tmp_path):
    found = statuses(["broken", "good"])
    assert found["broken"].status == "failed"
    assert "libfoo.so not found" in found["broken"].reason
    assert found["good"].ok
    crm = crmkit.open(f"sqlite:///{tmp_path / 'x.db'}", plugins=["broken", "good"], upgrade=True)
    assert crm.plugin_names == ["good"]
    assert crm.settings["good"] == {"greeting": "hello"}
    crm.close()


def test_incompatible_api_is_refused_with_reason(installed):
    found = statuses(["future"])
    assert found["future"].status == "incompatible"
    assert (
        f"supports crmkit API >=2.0 but this core provides {crmkit.API_VERSION}"
        in found["future"].reason
    )


def test_requirement_missing_names_both(installed):
    with pytest.raises(
        crmkit.PluginError, match="plugin 'needy' requires plugin 'good', which is not enabled"
    ):
        statuses(["needy"])
    assert statuses(["needy", "good"])["needy"].ok


def test_enabled_but_not_installed_is_an_error(installed):
    with pytest.raises(
        crmkit.PluginError, match=r"plugin 'nope' is enabled in .* but not installed"
    ):
        statuses(["nope"])


def test_misspelt_hook_is_caught_at_start(installed):
    with pytest.raises(crmkit.PluginError, match="crmkit_after_order_created"):
        statuses(["typo"])


def test_zero_plugins(installed, tmp_path):
    crm = crmkit.open(f"sqlite:///{tmp_path / 'x.db'}", plugins=[], upgrade=True)
    assert crm.plugin_names == []
    assert crm.customers.add(name="Alone").id == 1
    crm.close()


def test_plugin_hookspecs_for_other_plugins(installed, tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    both = crmkit.open(url, plugins=["speaker", "listener"], upgrade=True)
    assert both.has_hook("crmkit_speaker_words")
    assert both.call("crmkit_speaker_words", crm=both) == ["hi from listener"]
    both.close()
    alone = crmkit.open(url, plugins=["listener"])  # the hook's owner is absent: still loads
    assert not alone.has_hook("crmkit_speaker_words")
    alone.close()


def test_environment_overrides_the_config_file(installed, tmp_path, monkeypatch):
    path = tmp_path / "crmkit.toml"
    path.write_text('database = "sqlite:///crm.db"\nplugins = ["good", "listener"]\n')
    assert config_module.load(path).plugins == ["good", "listener"]
    assert config_module.load(path).database == f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("CRMKIT_PLUGINS", "listener")
    assert config_module.load(path).plugins == ["listener"]
    monkeypatch.setenv("CRMKIT_PLUGINS", "")
    assert config_module.load(path).plugins == []


def test_settings_are_validated_against_declared_keys(installed, tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text('plugins = ["good"]\n[good]\ngreting = "typo"\n')
    with pytest.raises(
        crmkit.ConfigError, match=r"crmkit.toml: \[good\] has unknown keys \['greting'\]"
    ):
        crmkit.open(path, upgrade=True)
    path.write_text("plugins = []\n[nosuch]\nx = 1\n")
    with pytest.raises(
        crmkit.ConfigError, match=r"\[nosuch\] is not a setting of any installed plugin"
    ):
        crmkit.open(path, upgrade=True)


def test_plugins_list_command(installed, tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text(
        f'database = "sqlite:///{tmp_path}/c.db"\nplugins = ["good", "broken", "gone"]\n'
    )
    result = CliRunner().invoke(
        cli, ["--config", str(path), "plugins", "list", "--format", "json"], obj=CliState()
    )
    assert result.exit_code == 0, result.output
    import json

    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["good"]["status"] == "ok" and rows["good"]["version"] == "1.2.3"
    assert rows["broken"]["status"].startswith("failed: import failed")
    assert rows["gone"]["status"].startswith("missing")
    assert rows["listener"]["enabled"] == "no"


def test_plugins_list_warns_about_a_plugin_without_crmkit_api(installed, tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text(f'database = "sqlite:///{tmp_path}/c.db"\nplugins = ["good", "needy"]\n')
    result = CliRunner().invoke(
        cli, ["--config", str(path), "plugins", "list", "--format", "json"], obj=CliState()
    )
    assert result.exit_code == 0, result.output
    import json

    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["good"]["status"] == "ok"  # declares CRMKIT_API
    assert rows["needy"]["status"].startswith("ok; warning: declares no CRMKIT_API")
    from crmkit.hooks import API_VERSION

    assert f'CRMKIT_API = ">={API_VERSION},<2"' in rows["needy"]["status"]


def _install_plugin_with_tables(root):
    versions = root / "stamps_versions"
    versions.mkdir()
    (versions / "stamps0001.py").write_text(
        textwrap.dedent(
            """
            import sqlalchemy as sa
            from alembic import op

            revision = "stamps0001"
            down_revision = None
            branch_labels = ("stamps",)
            depends_on = None


            def upgrade():
                op.create_table("stamps_cards", sa.Column("id", sa.Integer, primary_key=True))


            def downgrade():
                op.drop_table("stamps_cards")
            """
        )
    )
    (root / "crmkit_stamps.py").write_text(
        textwrap.dedent(
            f"""
            import crmkit

            @crmkit.hookimpl
            def crmkit_register_migrations():
                return {str(versions)!r}
            """
        )
    )
    info = root / "crmkit_stamps-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crmkit-stamps\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[crmkit]\nstamps = crmkit_stamps\n")
    return info


def test_uninstalled_plugin_is_reported_and_leaves_the_rest_working(installed, tmp_path):
    import shutil

    from sqlalchemy import inspect

    info = _install_plugin_with_tables(installed)
    config = tmp_path / "crmkit.toml"
    runner = CliRunner()
    init = runner.invoke(
        cli,
        [
            "init",
            "--path",
            str(config),
            "--database",
            f"sqlite:///{tmp_path}/crm.db",
            "--plugins",
            "good,stamps",
        ],
        obj=CliState(),
    )
    assert init.exit_code == 0, init.output
    crm = crmkit.open(config)
    assert "stamps_cards" in inspect(crm.engine).get_table_names()
    crm.customers.add(name="Before")
    crm.close()

    shutil.rmtree(info)  # pip uninstall crmkit-stamps
    listed = runner.invoke(
        cli, ["--config", str(config), "plugins", "list", "--format", "csv"], obj=CliState()
    )
    assert "stamps,,yes,missing: enabled in the config but not installed," in listed.output
    refused = runner.invoke(cli, ["--config", str(config), "db", "current"], obj=CliState())
    assert refused.exit_code == 1
    assert (
        "plugin 'stamps' is enabled in" in refused.output
        and "remove it from 'plugins'" in refused.output
    )

    config.write_text(config.read_text().replace('"good", "stamps"', '"good"'))
    current = runner.invoke(cli, ["--config", str(config), "db", "current"], obj=CliState())
    assert current.exit_code == 0, current.output
    assert "set aside: stamps0001" in current.output and "at head" in current.output
    upgraded = runner.invoke(cli, ["--config", str(config), "db", "upgrade"], obj=CliState())
    assert upgraded.exit_code == 0, upgraded.output
    crm = crmkit.open(config)
    assert [c.name for c in crm.customers.list()] == ["Before"]
    assert "stamps_cards" in inspect(crm.engine).get_table_names()  # its tables stay
    assert crm.settings["good"] == {"greeting": "hello"}
    crm.close()


def test_an_unknown_plugin_from_the_environment_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMKIT_PLUGINS", "nosuchplugin")
    with pytest.raises(
        crmkit.PluginError, match="enabled in the environment variable CRMKIT_PLUGINS"
    ):
        crmkit.open(f"sqlite:///{tmp_path}/c.db", upgrade=True)
    path = tmp_path / "crmkit.toml"
    path.write_text(f'database = "sqlite:///{tmp_path}/c.db"\nplugins = []\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "customer", "list"], obj=CliState())
    assert result.exit_code == 1
    assert "enabled in the environment variable CRMKIT_PLUGINS" in result.output
    assert "crmkit.toml" not in result.output.split("but not installed")[0]
