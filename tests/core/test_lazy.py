"""crmkit.lazy: names a package loads on first use."""

from __future__ import annotations

import sys
import types

import pytest

from crmkit.lazy import lazy_attributes


def _module(name: str, *, package: bool) -> types.ModuleType:
    module = types.ModuleType(name)
    if package:
        module.__path__ = []  # a package with no submodules on disk
    sys.modules[name] = module
    return module


@pytest.fixture
def fake():
    made = []

    def make(name: str, *, package: bool) -> types.ModuleType:
        made.append(name)
        return _module(name, package=package)

    yield make
    for name in made:
        sys.modules.pop(name, None)


def test_a_lazy_name_is_imported_on_first_access_and_kept(fake):
    module = fake("crmkit_lazy_probe", package=True)
    module.__getattr__, module.__dir__ = lazy_attributes(
        "crmkit_lazy_probe", {"dumps": "json", "Decimal": "decimal"}
    )
    assert "dumps" not in vars(module)
    import json

    assert module.dumps is json.dumps
    assert vars(module)["dumps"] is json.dumps  # kept: the next access costs nothing
    assert {"dumps", "Decimal"} <= set(module.__dir__())


def test_an_unknown_name_is_an_attribute_error_in_a_package_and_a_module(fake):
    package = fake("crmkit_lazy_pkg", package=True)
    package.__getattr__, _ = lazy_attributes("crmkit_lazy_pkg", {})
    plain = fake("crmkit_lazy_mod", package=False)
    plain.__getattr__, _ = lazy_attributes("crmkit_lazy_mod", {})
    for module, name in ((package, "crmkit_lazy_pkg"), (plain, "crmkit_lazy_mod")):
        with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'nope'"):
            _ = module.nope
        assert not hasattr(module, "__wrapped__")  # dunders never look for a submodule


def test_a_submodule_is_reachable_as_an_attribute():
    import crmkit

    assert crmkit.config is sys.modules["crmkit.config"]
