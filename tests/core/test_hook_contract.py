"""The hook contract is documented, consistent and reproduced in docs/hooks.md."""

import inspect
from pathlib import Path

import pytest

from crmkit import hookref

SPECS = hookref.hookspecs()
PLUGIN_SPECS = [
    (plugin, name, spec)
    for plugin, specs in hookref.plugin_hookspecs().items()
    for name, spec in specs
]
ALL_SPECS = [(name, spec) for name, spec in SPECS] + [(n, s) for _, n, s in PLUGIN_SPECS]


def test_there_are_hooks_of_every_kind():
    names = [name for name, _ in SPECS]
    assert any(n.startswith("crmkit_register_") for n in names)
    assert any(n.startswith("crmkit_after_") for n in names)
    assert any(n.startswith("crmkit_allow_") for n in names)


@pytest.mark.parametrize(("name", "spec"), ALL_SPECS, ids=[n for n, _ in ALL_SPECS])
def test_every_hookspec_says_when_where_and_what(name, spec):
    doc = inspect.getdoc(spec) or ""
    assert "Transaction" in doc, f"{name}: say in which transaction it runs"
    assert "Returns" in doc or "Return" in doc or "return" in doc, f"{name}: say what it may return"
    assert "When" in doc or "when" in doc or name.startswith("crmkit_after_"), (
        f"{name}: say when it fires"
    )
    assert "Example::" in doc, f"{name}: give a short example implementation"
    for parameter in inspect.signature(spec).parameters.values():
        assert parameter.default is inspect.Parameter.empty, (
            f"{name}: hook arguments have no defaults"
        )


def test_every_bundled_plugin_with_hooks_publishes_them_in_a_hookspecs_module():
    for plugin in hookref.BUNDLED_PLUGINS:
        module = hookref.plugin_hookspec_module(plugin)
        if module is None:
            continue
        assert inspect.ismodule(module), f"{plugin}: return the hookspecs module, not a class"
        assert module.__name__ == f"crmkit_{plugin}.hookspecs", module.__name__


@pytest.mark.parametrize(
    ("plugin", "name", "spec"), PLUGIN_SPECS, ids=[n for _, n, _ in PLUGIN_SPECS]
)
def test_plugin_hooks_follow_the_grammar_and_are_typed(plugin, name, spec):
    prefix = f"crmkit_{plugin}_"
    assert name.startswith(prefix), f"{name}: a {plugin} hook is named {prefix}..."
    rest = name.removeprefix(prefix)
    if rest.startswith("after_"):
        assert rest.count("_") >= 2, f"{name}: events are {prefix}after_<things>_<done>"
    signature = inspect.signature(spec)
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: no return type"
    for parameter in signature.parameters.values():
        assert parameter.annotation is not inspect.Parameter.empty, (
            f"{name}: argument {parameter.name} has no type"
        )


def test_renamed_hooks_point_at_hooks_that_exist():
    for plugin in hookref.BUNDLED_PLUGINS:
        module = hookref.plugin_hookspec_module(plugin)
        for old, new in (getattr(module, "RENAMED_HOOKS", None) or {}).items():
            assert hasattr(module, new), f"{plugin}: {old} renamed to {new}, which is not declared"
            assert not hasattr(module, old), f"{plugin}: {old} is still declared as a hook"


def test_core_hook_names_follow_the_grammar():
    nouns = {"crmkit_customer_360_section", "crmkit_generate_demo_data"}
    nouns |= {"crmkit_export_personal_data", "crmkit_erase_personal_data"}
    nouns |= {"crmkit_merge_customers", "crmkit_catch_up", "crmkit_customer_timeline"}
    nouns |= {"crmkit_permission_allowed"}  # a rule every permission check asks (datasette's name)
    for name, _ in SPECS:
        assert name.startswith(("crmkit_register_", "crmkit_after_", "crmkit_allow_")) or (
            name in nouns
        ), f"{name} breaks the naming grammar (docs/plugin-guide.md)"


def test_reference_is_fresh():
    reference = Path(__file__).parents[2] / "docs" / "hooks.md"
    assert reference.read_text(encoding="utf-8") == hookref.render(), (
        "docs/hooks.md is out of date: run python -m crmkit.hookref > docs/hooks.md"
    )


def test_reference_lists_every_hook_with_its_signature():
    text = hookref.render()
    for name, spec in ALL_SPECS:
        assert f"def {name}{str(inspect.signature(spec)).replace(chr(39), '')}" in text


def test_cli_reference_is_fresh():
    from crmkit import clidoc

    reference = Path(__file__).parents[2] / "docs" / "cli.md"
    assert reference.read_text(encoding="utf-8") == clidoc.render(), (
        "docs/cli.md is out of date: run python -m crmkit.clidoc > docs/cli.md"
    )


def test_cli_reference_ignores_plugin_commands_and_earlier_runs(tmp_path):
    """Rendering after a plugin's command ran in the same process gives the same reference."""
    from click.testing import CliRunner

    import crmkit
    from crmkit import clidoc
    from crmkit.cli import CliState, cli

    before = clidoc.render()

    class Hello:
        @staticmethod
        @crmkit.hookimpl
        def crmkit_register_commands(cli):
            @cli.command("hello-doc-test")
            def hello():
                "Say hello."
                print("hello")

    url = f"sqlite:///{tmp_path / 'x.db'}"
    args = ["--database", url, "hello-doc-test"]
    result = CliRunner().invoke(cli, args, obj=CliState(plugins=[Hello()]))
    try:
        assert result.exit_code == 0, result.output
        assert "hello-doc-test" in cli.commands
        assert clidoc.render() == before
    finally:
        cli.commands.pop("hello-doc-test", None)
