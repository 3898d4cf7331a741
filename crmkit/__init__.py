"""crmkit: a plugin-based CRM framework.

Embed it::

    import crmkit

    crm = crmkit.open("sqlite:///crm.db", plugins=[], upgrade=True)
    alice = crm.customers.add(name="Alice Li", email="alice@example.com")
    crm.orders.add(customer_id=alice.id, amount="120.00", occurred_at=...)

Extend it with plugins: see :mod:`crmkit.hooks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from crmkit.lazy import lazy_attributes

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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

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
