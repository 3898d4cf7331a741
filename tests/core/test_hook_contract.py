"""The hook contract is documented, consistent and reproduced in docs/hooks.md."""

import inspect
from pathlib import Path

import pytest

from crmkit import hookref

SPECS = hookref.hookspecs()


def test_there_are_hooks_of_every_kind():
    names = [name for name, _ in SPECS]
    assert any(n.startswith("crmkit_register_") for n in names)
    assert any(n.startswith("crmkit_after_") for n in names)
    assert any(n.startswith("crmkit_allow_") for n in names)


@pytest.mark.parametrize(("name", "spec"), SPECS, ids=[n for n, _ in SPECS])
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


def test_reference_is_fresh():
    reference = Path(__file__).parents[2] / "docs" / "hooks.md"
    assert reference.read_text(encoding="utf-8") == hookref.render(), (
        "docs/hooks.md is out of date: run python -m crmkit.hookref > docs/hooks.md"
    )


def test_reference_lists_every_hook_with_its_signature():
    text = hookref.render()
    for name, spec in SPECS:
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
