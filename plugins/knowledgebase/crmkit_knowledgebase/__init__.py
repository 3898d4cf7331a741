"""crmkit knowledge base: articles, search, reply templates, self-service site.

Use from Python::

    from crmkit_knowledgebase import service
    kb = service(crm)
    kb.add("Refund policy", "...", category="billing", audience="public", status="published")
    kb.search("退款")
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from crmkit.plugin import lazy_attributes

if TYPE_CHECKING:
    from crmkit_knowledgebase.service import KnowledgeBase, service

__all__ = ["KnowledgeBase", "service"]


# imported on first use (PEP 562): loading the plugin's hooks, which imports this package
# first, then costs no SQLAlchemy or Jinja2 (``crmkit --help`` stays quick)
_LAZY = dict.fromkeys(__all__, "crmkit_knowledgebase.service")
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """The package's ``service`` is the function of the same-named submodule: when the
    import system binds the submodule here, the function takes its place (as the eager
    ``from crmkit_knowledgebase.service import service`` used to do)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "service" and isinstance(value, types.ModuleType):
            value = value.service
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
