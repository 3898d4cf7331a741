"""crmkit: a plugin-based CRM framework.

Embed it::

    import crmkit

    crm = crmkit.open("sqlite:///crm.db", plugins=[], upgrade=True)
    alice = crm.customers.add(name="Alice Li", email="alice@example.com")
    crm.orders.add(customer_id=alice.id, amount="120.00", occurred_at=...)

Extend it with plugins: see :mod:`crmkit.hooks`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from crmkit.errors import (
    ConfigError,
    Conflict,
    CrmError,
    NotFound,
    PluginError,
    SchemaOutOfDate,
    TransitionRefused,
    ValidationError,
)
from crmkit.hooks import API_VERSION, hookimpl, hookspec

if TYPE_CHECKING:  # the lazy names below, for type checkers and editors
    from crmkit.core.entities import (
        AttributeDefinition,
        Contact,
        Customer,
        Interaction,
        Order,
        OrderLine,
        Section,
        SettingsSpec,
        Staff,
    )
    from crmkit.core.orders import StoredOrders
    from crmkit.core.workflow import Stage, Transition, WorkflowDefinition, WorkflowInstance
    from crmkit.crm import CRM, open

# name -> module that defines it, imported on first access (PEP 562): ``import crmkit``
# (which every command line run and plugin does) stays free of SQLAlchemy and Jinja2
_LAZY = {
    **dict.fromkeys(
        (
            "AttributeDefinition",
            "Contact",
            "Customer",
            "Interaction",
            "Order",
            "OrderLine",
            "Section",
            "SettingsSpec",
            "Staff",
        ),
        "crmkit.core.entities",
    ),
    "StoredOrders": "crmkit.core.orders",
    **dict.fromkeys(
        ("Stage", "Transition", "WorkflowDefinition", "WorkflowInstance"), "crmkit.core.workflow"
    ),
    "CRM": "crmkit.crm",
    "open": "crmkit.crm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        return _submodule(__name__, name)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _submodule(package: str, name: str) -> Any:
    """``package.name`` as an attribute: a submodule, imported now (the eager imports
    this package once had made ``crmkit.config`` and the like attributes without one)."""
    try:
        found = importlib.util.find_spec(f"{package}.{name}") if name.isidentifier() else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return importlib.import_module(f"{package}.{name}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "CRM",
    "AttributeDefinition",
    "ConfigError",
    "Conflict",
    "Contact",
    "CrmError",
    "Customer",
    "Interaction",
    "NotFound",
    "Order",
    "OrderLine",
    "PluginError",
    "SchemaOutOfDate",
    "Section",
    "SettingsSpec",
    "Stage",
    "Staff",
    "StoredOrders",
    "Transition",
    "TransitionRefused",
    "ValidationError",
    "WorkflowDefinition",
    "WorkflowInstance",
    "hookimpl",
    "hookspec",
    "open",
]
