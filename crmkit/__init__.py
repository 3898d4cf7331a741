"""crmkit: a plugin-based CRM framework.

Embed it::

    import crmkit

    crm = crmkit.open("sqlite:///crm.db", plugins=[], upgrade=True)
    alice = crm.customers.add(name="Alice Li", email="alice@example.com")
    crm.orders.add(customer_id=alice.id, amount="120.00", occurred_at=...)

Extend it with plugins: see :mod:`crmkit.hooks`.
"""

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
