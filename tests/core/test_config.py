"""Configuration errors name file and key; templates stack; tracing prints hook calls."""

import pytest

import crmkit
from crmkit import ConfigError
from crmkit import config as config_module


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('timezone = "Mars/Olympus"', r"timezone: 'Mars/Olympus' is not an IANA time zone"),
        ('currency = "EURO"', r"currency: 'EURO' is not a 3-letter ISO currency code"),
        ("plugins = 3", r"plugins: must be a list of plugin names"),
        (
            '[attributes.size]\ntype = "colour"',
            r"attributes.size: attribute type 'colour' is not valid",
        ),
        ('[attributes.size]\ntype = "choice"', r"attributes.size: .*no choices"),
        ("database = [1]", r"database: must be a URL"),
        ("this is not toml", r"is not valid TOML"),
        ("colour = 3", r"colour: unknown setting"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, text, message):
    path = tmp_path / "crmkit.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        config_module.load(path)
    assert str(path) in str(info.value)


def test_missing_config_file_says_how_to_create_it(tmp_path):
    with pytest.raises(ConfigError, match="create it with 'crmkit init'"):
        config_module.load(tmp_path / "nope.toml")


def test_declared_attributes_from_config_are_validated(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text(
        f'database = "sqlite:///{tmp_path}/c.db"\nplugins = []\n'
        '[attributes.tier]\ntype = "choice"\nchoices = ["gold", "silver"]\n'
    )
    crm = crmkit.open(path, upgrade=True)
    assert crm.customers.add(name="A", tier="gold").attributes == {"tier": "gold"}
    with pytest.raises(crmkit.ValidationError, match="use one of: gold, silver"):
        crm.customers.add(name="B", tier="bronze")
    crm.close()


def test_templates_stack_user_then_plugins_then_core(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "hello.html").write_text("plugin hello")
    (plugin_dir / "bye.html").write_text("plugin bye")
    (user / "bye.html").write_text("user bye")
    (user / "wrap.html").write_text('{% include "default:footer.html" %}!')
    (user / "footer.html").write_text("user footer overrides the core's")

    class Templates:
        CRMKIT_NAME = "templates"

        @crmkit.hookimpl
        def crmkit_register_template_dirs(self):
            return [str(plugin_dir)]

    crm = crmkit.open(f"sqlite:///{tmp_path}/c.db", plugins=[Templates()], upgrade=True)
    crm.config.templates = str(user)
    env = crm.templates
    assert env.get_template("hello.html").render() == "plugin hello"
    assert env.get_template("bye.html").render() == "user bye"
    assert env.get_template("footer.html").render() == "user footer overrides the core's"
    assert env.get_template("wrap.html").render().strip() == (
        '<footer class="crmkit-footer">Made with crmkit</footer>!'
    )
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"  # autoescaped
    crm.close()


def test_trace_plugins_prints_hook_calls(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("CRMKIT_TRACE_PLUGINS", "1")
    crm = crmkit.open(f"sqlite:///{tmp_path}/c.db", plugins=[], upgrade=True)
    crm.customers.add(name="Traced")
    crm.close()
    assert "crmkit_after_customers_created" in capfd.readouterr().err


def test_init_writes_a_config_that_reads_back_with_every_plugins_defaults(tmp_path, monkeypatch):
    """`crmkit init` with every installed plugin: the file is valid TOML (keys with spaces are
    quoted) and opening it yields exactly the settings each plugin declares as defaults."""
    import tomllib

    from click.testing import CliRunner

    import crmkit
    from crmkit.cli import CliState, cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    result = CliRunner().invoke(cli, ["init", "--database", url], obj=CliState())
    assert result.exit_code == 0, result.output
    written = tomllib.loads((tmp_path / "crmkit.toml").read_text(encoding="utf-8"))
    crm = crmkit.open(str(tmp_path / "crmkit.toml"))
    try:
        enabled = [s.name for s in crm.plugin_statuses if s.enabled and s.ok]
        assert enabled == written["plugins"]
        for name in enabled:
            if name in written:
                alone = crmkit.open(url, plugins=[name])
                assert crm.settings[name] == alone.settings[name]
                alone.close()
    finally:
        crm.close()


def test_messages_name_where_the_plugin_list_came_from(tmp_path, monkeypatch):
    path = tmp_path / "crmkit.toml"
    path.write_text('plugins = ["warranty"]\n')
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    from_file = config_module.load(path)
    assert from_file.plugins_where == str(path) == from_file.where
    with pytest.raises(crmkit.PluginError, match=f"enabled in {path} but not installed"):
        crmkit.plugins.load(from_file.plugins, where=from_file.plugins_where)
    monkeypatch.setenv("CRMKIT_PLUGINS", "warranty")
    from_env = config_module.load(path)
    assert from_env.plugins == ["warranty"]
    assert from_env.plugins_where == "the environment variable CRMKIT_PLUGINS"
    assert from_env.where == str(path)  # settings and workflows still come from the file
    with pytest.raises(crmkit.PluginError) as info:
        crmkit.plugins.load(from_env.plugins, where=from_env.plugins_where)
    assert "enabled in the environment variable CRMKIT_PLUGINS but not installed" in str(info.value)
    assert str(path) not in str(info.value)


def test_from_dict_reads_every_core_key(tmp_path):
    (tmp_path / "pages").mkdir()
    config = config_module.from_dict(
        {
            "database": "sqlite:///x.db",
            "plugins": ["loyalty"],
            "timezone": "Asia/Shanghai",
            "currency": "cny",
            "templates": "pages",
            "attributes": {"vip": {"type": "boolean", "description": "a VIP"}},
            "workflows": {"onboarding": {"initial": "welcome"}},
            "loyalty": {"points_per_unit": 2},
        },
        path=tmp_path / "crmkit.toml",
    )
    assert (config.database, config.plugins, config.timezone, config.currency) == (
        "sqlite:///x.db", ["loyalty"], "Asia/Shanghai", "CNY",
    )  # fmt: skip
    assert config.templates == str(tmp_path / "pages")
    assert [(a.name, a.type, a.description) for a in config.attributes] == [
        ("vip", "boolean", "a VIP")
    ]
    assert config.workflows == {"onboarding": {"initial": "welcome"}}
    assert config.plugin_settings == {"loyalty": {"points_per_unit": 2}}
    assert config_module.from_dict({}).plugins is None  # "all" by default
    with pytest.raises(ConfigError, match=r"the configuration: attributes.x: unknown keys \['k'\]"):
        config_module.from_dict({"attributes": {"x": {"type": "string", "k": 1}}})
    with pytest.raises(ConfigError, match="workflows: must be a table"):
        config_module.from_dict({"workflows": 3})


def test_a_utf8_byte_order_mark_is_read(tmp_path, monkeypatch):
    # Windows Notepad saves UTF-8 with a BOM; tomllib alone refuses it ("Invalid statement")
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    path = tmp_path / "crmkit.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'timezone = "Asia/Shanghai"\nplugins = []\n')
    config = config_module.load(path)
    assert (config.timezone, config.plugins) == ("Asia/Shanghai", [])


def test_utf16_or_invalid_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "crmkit.toml"
    path.write_text('timezone = "UTC"\n', encoding="utf-16")
    with pytest.raises(ConfigError, match=r"is UTF-16 text; save it as UTF-8"):
        config_module.load(path)
    path.write_bytes(b'timezone = "UTC"\n# caf\xe9\n')
    with pytest.raises(ConfigError, match=r"crmkit.toml: line 2: not UTF-8 text"):
        config_module.load(path)


def test_a_plugin_listed_twice_is_one_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    path = tmp_path / "crmkit.toml"
    path.write_text('plugins = ["loyalty", "complaints", "loyalty"]\n')
    with pytest.raises(ConfigError) as info:
        config_module.load(path)
    assert str(info.value) == (
        f"{path}: plugins: plugin 'loyalty' is listed more than once; list each plugin once"
    )
    path.write_text("plugins = []\n")
    monkeypatch.setenv("CRMKIT_PLUGINS", "segmentation, segmentation")
    with pytest.raises(ConfigError, match=r"^the environment variable CRMKIT_PLUGINS: plugin "):
        config_module.load(path)
    with pytest.raises(ConfigError, match=r"^--plugins: plugin 'a' is listed more than once"):
        config_module.parse_plugin_list("a,b,a", where="--plugins")


def test_a_plugin_listed_twice_on_the_command_line(tmp_path, monkeypatch):
    from crmkit.testing import run_cli

    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    path = tmp_path / "crmkit.toml"
    path.write_text('database = "sqlite:///c.db"\nplugins = ["loyalty", "loyalty"]\n')
    result = run_cli(["--config", str(path), "plugins", "list"])
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {path}: plugins: plugin 'loyalty' is listed more than once; "
        "list each plugin once\n"
    )
    init = run_cli(["init", "--path", str(tmp_path / "new.toml"), "--plugins", "loyalty,loyalty"])
    assert init.exit_code == 1
    assert "--plugins: plugin 'loyalty' is listed more than once" in init.stderr
    assert not (tmp_path / "new.toml").exists()


def test_a_missing_templates_folder_is_one_error_naming_path_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CRMKIT_PLUGINS", raising=False)
    path = tmp_path / "crmkit.toml"
    path.write_text('plugins = []\ntemplates = "pages"\n')
    with pytest.raises(ConfigError) as info:
        config_module.load(path)
    assert str(info.value) == (
        f"{path}: templates: the folder {tmp_path / 'pages'} (relative paths are relative to "
        f"the folder of {path}) does not exist; create it, or remove the key to use the "
        "built-in templates"
    )
    (tmp_path / "pages").write_text("a file")
    with pytest.raises(ConfigError, match=r"templates: the folder .*pages .*is a file, not a"):
        config_module.load(path)
    path.write_text(f'plugins = []\ntemplates = "{tmp_path / "elsewhere"}"\n')
    with pytest.raises(ConfigError, match=r"elsewhere does not exist; create it"):
        config_module.load(path)
    path.write_text("plugins = []\ntemplates = 3\n")
    with pytest.raises(ConfigError, match=r"templates: must be the path of a folder"):
        config_module.load(path)
    (tmp_path / "real").mkdir()
    path.write_text('plugins = []\ntemplates = "real"\n')
    assert config_module.load(path).templates == str(tmp_path / "real")
