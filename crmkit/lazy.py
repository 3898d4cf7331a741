"""Names a package loads on first use (PEP 562), so that importing the package stays cheap.

``crmkit``, ``crmkit.plugin`` and the plugins' packages are imported by every command line
run (the hook modules import them); their heavy names (SQLAlchemy-backed services, tables,
the command line) load when first touched instead::

    __getattr__, __dir__ = lazy_attributes(__name__, {"Customer": "crmkit.core.entities"})

A name that is not in the mapping but is a submodule of the package is imported and
returned too, as the package's eager imports once made submodules attributes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` for ``package``: each of ``names``
    (name -> module that defines it) is imported from its module on first access and
    kept in the package's namespace; any other name is looked up as a submodule."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            if "__path__" not in namespace or name.startswith("__"):  # not a package
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return _submodule(package, name)
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__


def _submodule(package: str, name: str) -> Any:
    try:
        found = importlib.util.find_spec(f"{package}.{name}") if name.isidentifier() else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return importlib.import_module(f"{package}.{name}")
