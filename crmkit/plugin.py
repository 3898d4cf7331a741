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

The CLI helpers (``pass_crm``, ``emit`` ...) are loaded on first use, so a
plugin's hook module can import this one without pulling in the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the lazy names below, for type checkers and editors
    from crmkit.cli import CliState, UserError, pass_crm
    from crmkit.cli.output import emit, format_option, render
    from crmkit.cli.params import AMOUNT, CUSTOMER, DATE, DATETIME, ID

# name -> module that defines it; imported on first access (PEP 562)
_LAZY = {
    "pass_crm": "crmkit.cli",
    "CliState": "crmkit.cli",
    "UserError": "crmkit.cli",
    "emit": "crmkit.cli.output",
    "render": "crmkit.cli.output",
    "format_option": "crmkit.cli.output",
    "AMOUNT": "crmkit.cli.params",
    "CUSTOMER": "crmkit.cli.params",
    "DATE": "crmkit.cli.params",
    "DATETIME": "crmkit.cli.params",
    "ID": "crmkit.cli.params",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crmkit.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


#: The public names, grouped as the API reference shows them.
GROUPS: dict[str, tuple[str, ...]] = {
    "Hooks and versions": ("API_VERSION", "hookimpl", "hookspec"),
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
    ),
    "CSV files people open in spreadsheets": (
        "csv_writer",
        "neutralise_cell",
        "restore_cell",
    ),
    "Command line": (
        "pass_crm",
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
    "csv_writer",
    "neutralise_cell",
    "restore_cell",
    "pass_crm",
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
