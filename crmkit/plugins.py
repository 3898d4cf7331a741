"""Finding, checking and registering plugins.

A plugin is found through the entry-point group ``crmkit``; the entry point's
name is the plugin's name and its value the module holding the hook
implementations. The module may declare, as module attributes:

* ``CRMKIT_API = ">=1.0,<2"`` — the core API versions it supports
  (PEP 440 specifier); a plugin outside the running core's version is refused.
* ``CRMKIT_REQUIRES = ("loyalty",)`` — plugins it cannot work without.
* ``CRMKIT_USES = ("segmentation",)`` — plugins it uses when present.

Only enabled plugins are imported. A plugin that fails to import or is
incompatible is reported with its reason and the others load; an enabled
plugin that is not installed, or one whose requirement is missing, is a
configuration error.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import types
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from crmkit import hooks
from crmkit.errors import PluginError

ENTRY_POINT_GROUP = "crmkit"

#: The core's own hook implementations, registered like any plugin so the
#: contract is exercised by the core itself.
DEFAULT_PLUGINS = ("crmkit.core.builtin",)


@attrs.define
class PluginStatus:
    """What ``crmkit plugins list`` shows for one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    enabled: bool = False
    status: str = "disabled"  # ok | failed | incompatible | missing | disabled
    reason: str = ""
    hooks: list[str] = attrs.field(factory=list)
    requires: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    warnings: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def installed() -> dict[str, md.EntryPoint]:
    """Installed plugins by name (entry-point group ``crmkit``)."""
    return {ep.name: ep for ep in md.entry_points(group=ENTRY_POINT_GROUP)}


def _distribution(ep: md.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _plugin_name(plugin: Any) -> str:
    name = getattr(plugin, "CRMKIT_NAME", None)
    if name:
        return str(name)
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__.rsplit(".", 1)[-1].removeprefix("crmkit_")
    return type(plugin).__name__ if not isinstance(plugin, type) else plugin.__name__


def check_api(name: str, plugin: Any) -> str | None:
    """Return why ``plugin`` cannot run on this core's API, or None when it can."""
    spec = getattr(plugin, "CRMKIT_API", None)
    if spec is None:
        return None
    try:
        allowed = SpecifierSet(str(spec))
    except InvalidSpecifier:
        return f"its CRMKIT_API {spec!r} is not a version range such as '>=1.0,<2'"
    if Version(hooks.API_VERSION) not in allowed:
        return (
            f"it supports crmkit API {spec} but this core provides {hooks.API_VERSION}; "
            f"install a version of the plugin built for API {hooks.API_VERSION}"
        )
    return None


def hook_names(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(caller.name for caller in (pm.get_hookcallers(plugin) or []) if caller.name)


def load(
    enabled: Sequence[str | Any] | None,
    *,
    where: str = "the configuration",
) -> tuple[pluggy.PluginManager, list[PluginStatus]]:
    """Build the plugin manager for ``enabled`` plugins (None: every installed one).

    Items of ``enabled`` are plugin names, or plugin objects (modules,
    classes, instances) registered directly, which is how tests and
    integrators add code that is not an installed distribution.
    """
    pm = pluggy.PluginManager("crmkit")
    pm.add_hookspecs(hooks)
    for module_name in DEFAULT_PLUGINS:
        __import__(module_name)
        pm.register(sys.modules[module_name], name=f"crmkit.{module_name.rsplit('.', 1)[-1]}")

    available = installed()
    wanted: list[str | Any] = list(available) if enabled is None else list(enabled)
    statuses: dict[str, PluginStatus] = {}
    for name, ep in available.items():
        dist, version = _distribution(ep)
        statuses[name] = PluginStatus(name=name, distribution=dist, version=version)

    loaded: dict[str, Any] = {}
    for item in wanted:
        if not isinstance(item, str):
            name = _plugin_name(item)
            statuses[name] = PluginStatus(name=name, distribution=None, enabled=True)
            _register(pm, name, item, statuses[name], loaded)
            continue
        name = item
        if name not in available:
            raise PluginError(
                f"plugin {name!r} is enabled in {where} but not installed; install "
                f"crmkit-{name} (pip install crmkit-{name}) or remove it from 'plugins'",
                plugin=name,
            )
        status = statuses[name]
        status.enabled = True
        try:
            plugin = available[name].load()
        except Exception as exc:  # a broken plugin must not take the others down
            status.status = "failed"
            status.reason = f"import failed: {type(exc).__name__}: {exc}"
            continue
        _register(pm, name, plugin, status, loaded)

    for name in loaded:
        status = statuses[name]
        for required in status.requires:
            if required not in loaded:
                why = (
                    "is not enabled"
                    if required in available or required in statuses
                    else "is not installed"
                )
                if required in statuses and statuses[required].enabled:
                    why = f"failed to load ({statuses[required].reason})"
                raise PluginError(
                    f"plugin {name!r} requires plugin {required!r}, which {why}; "
                    f"enable {required!r} in {where} or disable {name!r}",
                    plugin=name,
                )
    for plugin in loaded.values():
        for caller in pm.hook.crmkit_register_hookspecs.get_hookimpls():
            if caller.plugin is plugin:
                specs = caller.function()
                if specs is not None:
                    pm.add_hookspecs(specs)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"a plugin implements a hook that does not exist: {exc}; check the hook's "
            "spelling against docs/hooks.md"
        ) from None
    for name, plugin in loaded.items():
        statuses[name].hooks = hook_names(pm, plugin)
    if os.environ.get("CRMKIT_TRACE_PLUGINS") == "1":
        pm.trace.root.setwriter(lambda message: print(message, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm, sorted(statuses.values(), key=lambda s: s.name)


def _register(
    pm: pluggy.PluginManager,
    name: str,
    plugin: Any,
    status: PluginStatus,
    loaded: dict[str, Any],
) -> None:
    reason = check_api(name, plugin)
    status.requires = tuple(getattr(plugin, "CRMKIT_REQUIRES", ()))
    status.uses = tuple(getattr(plugin, "CRMKIT_USES", ()))
    if getattr(plugin, "CRMKIT_API", None) is None:
        status.warnings.append(
            f"declares no CRMKIT_API, so nothing checks it against this core's API "
            f"{hooks.API_VERSION}; add CRMKIT_API = \">={hooks.API_VERSION},<2\" to its module"
        )
    if reason:
        status.status = "incompatible"
        status.reason = f"plugin {name!r} refused: {reason}"
        return
    try:
        pm.register(plugin, name=name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        status.status = "failed"
        status.reason = f"registration failed: {exc}"
        return
    status.status = "ok"
    loaded[name] = plugin


def owner_of(pm: pluggy.PluginManager, exc: BaseException) -> str | None:
    """Name the plugin whose code raised ``exc``: the deepest frame inside a plugin."""
    prefixes: dict[str, str] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        module = plugin.__name__ if isinstance(plugin, types.ModuleType) else plugin.__module__
        package = module.split(".")[0] if module.startswith("crmkit_") else module
        prefixes[package] = name
    culprit = None
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, name in prefixes.items():
            if module == prefix or module.startswith(prefix + "."):
                culprit = name
        tb = tb.tb_next
    return culprit


def enabled_names(statuses: Iterable[PluginStatus]) -> list[str]:
    return [s.name for s in statuses if s.ok]
