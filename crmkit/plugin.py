"""The public API for plugins: everything a plugin may import from crmkit.

A plugin imports from this module (or from the ``crmkit`` package, whose
names are a subset of these), and from :mod:`crmkit.testing` in its tests.
Nothing else in crmkit is public: ``crmkit.core.*``, ``crmkit.cli.*`` and the
other modules may change in any release. A test walks every bundled plugin's
imports and fails on anything else, and ``docs/plugin-guide.md`` carries a
reference generated from the docstrings of the names below.

Versioning (``CRMKIT_API``, see :data:`API_VERSION`): every name in
``__all__``, every hook in ``docs/hooks.md``, and the **columns of the core
tables listed under "Tables"** (their names, types and meaning; plugins may
read, join and reference them by foreign key) are covered. A *minor* bump
(1.1 -> 1.2) only adds: new names, hooks, optional arguments, table columns;
a renamed hook keeps its old name working, with a ``DeprecationWarning``,
for one minor version. A *major* bump (1.x -> 2.0) may remove or change any
of them. Plugins write only their own tables; core rows change through the
services (``crm.customers``, ``crm.orders`` ...), so hooks fire.

Every name but the hook markers and the errors is loaded on first use, so a
plugin's hook module can import this one without pulling in SQLAlchemy, Jinja2 or
the command line (``crmkit --help`` stays quick with every plugin enabled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.errors import (
    ConfigError,
    Conflict,
    CrmError,
    Forbidden,
    NotFound,
    PluginError,
    PreconditionFailed,
    SchemaOutOfDate,
    TransitionRefused,
    Unauthenticated,
    ValidationError,
)
from crmkit.hooks import API_VERSION, hookimpl, hookspec
from crmkit.lazy import lazy_attributes

if TYPE_CHECKING:  # the lazy names below, for type checkers and editors
    from crmkit.cli import CliState, UserError, lazy_command, pass_crm
    from crmkit.cli.output import emit, format_option, render
    from crmkit.cli.params import AMOUNT, CUSTOMER, DATE, DATETIME, ID
    from crmkit.core.actors import Actor
    from crmkit.core.audit import AuditEntry
    from crmkit.core.bulk import insert_many
    from crmkit.core.consent import ConsentChange
    from crmkit.core.context import Changes, HookContext
    from crmkit.core.csvcells import csv_writer, neutralise_cell, restore_cell
    from crmkit.core.customers import BulkResult
    from crmkit.core.entities import (
        ATTRIBUTE_TYPES,
        CHANNELS,
        CONSENT_PURPOSES,
        CUSTOMER_KINDS,
        CUSTOMER_STATUSES,
        CUSTOMER_TYPES,
        DIRECTIONS,
        ORDER_STATUSES,
        AttributeDefinition,
        Contact,
        Customer,
        Interaction,
        Order,
        OrderLine,
        Section,
        SettingsSpec,
        Staff,
        TimelineEntry,
        to_money,
    )
    from crmkit.core.orders import StoredOrders
    from crmkit.core.permissions import PermissionSpec, Resource
    from crmkit.core.prebuilt import driver_rows
    from crmkit.core.serialize import jsonable
    from crmkit.core.tables import (
        consent_changes,
        consents,
        contacts,
        customers,
        interactions,
        metadata,
        order_lines,
        orders,
        staff,
        workflow_instances,
        workflow_transitions,
    )
    from crmkit.core.types import Money, UTCDateTime, money_scale, to_decimal
    from crmkit.core.workflow import Stage, Transition, WorkflowDefinition, WorkflowInstance
    from crmkit.crm import CRM, open
    from crmkit.server.routing import (
        ApiRequest,
        ApiResponse,
        Page,
        Route,
        cursor_int,
        decode_cursor,
        encode_cursor,
        page_limit,
    )

# name -> module that defines it; imported on first access (PEP 562), so a plugin's hook
# module imports this one without pulling in SQLAlchemy, Jinja2 or the command line
_LAZY = {
    "Actor": "crmkit.core.actors",
    "AuditEntry": "crmkit.core.audit",
    "insert_many": "crmkit.core.bulk",
    "ConsentChange": "crmkit.core.consent",
    "Changes": "crmkit.core.context",
    "HookContext": "crmkit.core.context",
    "csv_writer": "crmkit.core.csvcells",
    "neutralise_cell": "crmkit.core.csvcells",
    "restore_cell": "crmkit.core.csvcells",
    "BulkResult": "crmkit.core.customers",
    "ATTRIBUTE_TYPES": "crmkit.core.entities",
    "CHANNELS": "crmkit.core.entities",
    "CONSENT_PURPOSES": "crmkit.core.entities",
    "CUSTOMER_KINDS": "crmkit.core.entities",
    "CUSTOMER_STATUSES": "crmkit.core.entities",
    "CUSTOMER_TYPES": "crmkit.core.entities",
    "DIRECTIONS": "crmkit.core.entities",
    "ORDER_STATUSES": "crmkit.core.entities",
    "AttributeDefinition": "crmkit.core.entities",
    "Contact": "crmkit.core.entities",
    "Customer": "crmkit.core.entities",
    "Interaction": "crmkit.core.entities",
    "Order": "crmkit.core.entities",
    "OrderLine": "crmkit.core.entities",
    "Section": "crmkit.core.entities",
    "SettingsSpec": "crmkit.core.entities",
    "Staff": "crmkit.core.entities",
    "TimelineEntry": "crmkit.core.entities",
    "to_money": "crmkit.core.entities",
    "StoredOrders": "crmkit.core.orders",
    "PermissionSpec": "crmkit.core.permissions",
    "Resource": "crmkit.core.permissions",
    "driver_rows": "crmkit.core.prebuilt",
    "jsonable": "crmkit.core.serialize",
    "consent_changes": "crmkit.core.tables",
    "consents": "crmkit.core.tables",
    "contacts": "crmkit.core.tables",
    "customers": "crmkit.core.tables",
    "interactions": "crmkit.core.tables",
    "metadata": "crmkit.core.tables",
    "order_lines": "crmkit.core.tables",
    "orders": "crmkit.core.tables",
    "staff": "crmkit.core.tables",
    "workflow_instances": "crmkit.core.tables",
    "workflow_transitions": "crmkit.core.tables",
    "Money": "crmkit.core.types",
    "UTCDateTime": "crmkit.core.types",
    "money_scale": "crmkit.core.types",
    "to_decimal": "crmkit.core.types",
    "Stage": "crmkit.core.workflow",
    "Transition": "crmkit.core.workflow",
    "WorkflowDefinition": "crmkit.core.workflow",
    "WorkflowInstance": "crmkit.core.workflow",
    "CRM": "crmkit.crm",
    "open": "crmkit.crm",
    "ApiRequest": "crmkit.server.routing",
    "ApiResponse": "crmkit.server.routing",
    "Page": "crmkit.server.routing",
    "Route": "crmkit.server.routing",
    "cursor_int": "crmkit.server.routing",
    "decode_cursor": "crmkit.server.routing",
    "encode_cursor": "crmkit.server.routing",
    "page_limit": "crmkit.server.routing",
    "CliState": "crmkit.cli",
    "UserError": "crmkit.cli",
    "pass_crm": "crmkit.cli",
    "lazy_command": "crmkit.cli",
    "emit": "crmkit.cli.output",
    "format_option": "crmkit.cli.output",
    "render": "crmkit.cli.output",
    "AMOUNT": "crmkit.cli.params",
    "CUSTOMER": "crmkit.cli.params",
    "DATE": "crmkit.cli.params",
    "DATETIME": "crmkit.cli.params",
    "ID": "crmkit.cli.params",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


#: The public names, grouped as the API reference shows them.
GROUPS: dict[str, tuple[str, ...]] = {
    "Hooks and versions": ("API_VERSION", "hookimpl", "hookspec", "lazy_attributes"),
    "The CRM handle": ("CRM", "open", "HookContext", "Changes"),
    "Actors, permissions and the audit log": ("Actor", "PermissionSpec", "Resource", "AuditEntry"),
    "HTTP routes": (
        "Route",
        "ApiRequest",
        "ApiResponse",
        "Page",
        "page_limit",
        "encode_cursor",
        "decode_cursor",
        "cursor_int",
    ),
    "Entities": (
        "Customer",
        "Contact",
        "Interaction",
        "Order",
        "OrderLine",
        "StoredOrders",
        "Staff",
        "AttributeDefinition",
        "SettingsSpec",
        "Section",
        "TimelineEntry",
        "ConsentChange",
        "BulkResult",
        "Stage",
        "Transition",
        "WorkflowDefinition",
        "WorkflowInstance",
    ),
    "Vocabularies": (
        "ATTRIBUTE_TYPES",
        "CHANNELS",
        "CONSENT_PURPOSES",
        "CUSTOMER_KINDS",
        "CUSTOMER_STATUSES",
        "CUSTOMER_TYPES",
        "DIRECTIONS",
        "ORDER_STATUSES",
    ),
    "Errors": (
        "CrmError",
        "ValidationError",
        "NotFound",
        "Conflict",
        "ConfigError",
        "PluginError",
        "SchemaOutOfDate",
        "TransitionRefused",
        "Forbidden",
        "Unauthenticated",
        "PreconditionFailed",
    ),
    "Tables": (
        "metadata",
        "customers",
        "contacts",
        "consents",
        "consent_changes",
        "interactions",
        "orders",
        "order_lines",
        "staff",
        "workflow_instances",
        "workflow_transitions",
    ),
    "Column types and values": (
        "Money",
        "UTCDateTime",
        "money_scale",
        "to_decimal",
        "to_money",
        "jsonable",
        "insert_many",
        "driver_rows",
    ),
    "CSV files people open in spreadsheets": (
        "csv_writer",
        "neutralise_cell",
        "restore_cell",
    ),
    "Command line": (
        "pass_crm",
        "lazy_command",
        "CliState",
        "UserError",
        "emit",
        "render",
        "format_option",
        "AMOUNT",
        "CUSTOMER",
        "DATE",
        "DATETIME",
        "ID",
    ),
}

__all__ = [  # the same names as GROUPS (a test checks)
    "API_VERSION",
    "hookimpl",
    "hookspec",
    "lazy_attributes",
    "CRM",
    "open",
    "HookContext",
    "Changes",
    "Actor",
    "PermissionSpec",
    "Resource",
    "AuditEntry",
    "Route",
    "ApiRequest",
    "ApiResponse",
    "Page",
    "page_limit",
    "encode_cursor",
    "decode_cursor",
    "cursor_int",
    "Customer",
    "Contact",
    "Interaction",
    "Order",
    "OrderLine",
    "StoredOrders",
    "Staff",
    "AttributeDefinition",
    "SettingsSpec",
    "Section",
    "TimelineEntry",
    "ConsentChange",
    "BulkResult",
    "Stage",
    "Transition",
    "WorkflowDefinition",
    "WorkflowInstance",
    "ATTRIBUTE_TYPES",
    "CHANNELS",
    "CONSENT_PURPOSES",
    "CUSTOMER_KINDS",
    "CUSTOMER_STATUSES",
    "CUSTOMER_TYPES",
    "DIRECTIONS",
    "ORDER_STATUSES",
    "CrmError",
    "ValidationError",
    "NotFound",
    "Conflict",
    "ConfigError",
    "PluginError",
    "SchemaOutOfDate",
    "TransitionRefused",
    "Forbidden",
    "Unauthenticated",
    "PreconditionFailed",
    "metadata",
    "customers",
    "contacts",
    "consents",
    "consent_changes",
    "interactions",
    "orders",
    "order_lines",
    "staff",
    "workflow_instances",
    "workflow_transitions",
    "Money",
    "UTCDateTime",
    "money_scale",
    "to_decimal",
    "to_money",
    "jsonable",
    "insert_many",
    "driver_rows",
    "csv_writer",
    "neutralise_cell",
    "restore_cell",
    "pass_crm",
    "lazy_command",
    "CliState",
    "UserError",
    "emit",
    "render",
    "format_option",
    "AMOUNT",
    "CUSTOMER",
    "DATE",
    "DATETIME",
    "ID",
]
