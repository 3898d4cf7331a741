"""The core's own hook implementations, registered like any plugin (DEFAULT_PLUGINS)."""

from __future__ import annotations

from pathlib import Path

from crmkit.core.workflow import WorkflowDefinition
from crmkit.hooks import hookimpl

_HERE = Path(__file__).parent


@hookimpl
def crmkit_register_workflows():
    return WorkflowDefinition.from_toml(_HERE / "workflows" / "sales.toml")
