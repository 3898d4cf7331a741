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
import logging
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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

#: ``CRMKIT_TRACE_PLUGINS=1`` logs every hook call here, at DEBUG level.
_trace_log = logging.getLogger("crmkit.plugins.trace")


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


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, plus hook renames: an implementation under a hook's old
    name (``RENAMED_HOOKS`` of a plugin's hookspecs module) is registered for the
    new name, with a :class:`DeprecationWarning`."""

    def __init__(self) -> None:
        super().__init__("crmkit")
        self.renamed_hooks: dict[str, str] = {}

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        new_name = self.renamed_hooks.get(name)
        if opts is not None and new_name is not None and not opts.get("specname"):
            warnings.warn(
                f"plugin {self.get_name(plugin) or _plugin_name(plugin)!r} implements "
                f"{name}, which is now {new_name}; rename the function (the old name "
                "stops working in crmkit API 1.3)",
                DeprecationWarning,
                stacklevel=2,
            )
            opts = {**opts, "specname": new_name}
        return opts


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
    pm = PluginManager()
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
        _load_one(pm, item, available, statuses, loaded, where)
    _check_requirements(loaded, available, statuses, where)
    _add_plugin_hookspecs(pm, loaded)
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
        _trace_log.setLevel(logging.DEBUG)
        if not any(isinstance(h, _StderrHandler) for h in _trace_log.handlers):
            # the user asked for the trace on stderr, whatever logging the application set up
            _trace_log.addHandler(_StderrHandler())
            _trace_log.propagate = False
        pm.trace.root.setwriter(lambda message: _trace_log.debug(message.rstrip()))
        pm.enable_tracing()
    return pm, sorted(statuses.values(), key=lambda s: s.name)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler bound to whatever ``sys.stderr`` is when a record is emitted."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _load_one(
    pm: pluggy.PluginManager,
    item: str | Any,
    available: dict[str, md.EntryPoint],
    statuses: dict[str, PluginStatus],
    loaded: dict[str, Any],
    where: str,
) -> None:
    """Import (for a name) and register one enabled plugin, noting its status."""
    if not isinstance(item, str):
        name = _plugin_name(item)
        statuses[name] = PluginStatus(name=name, distribution=None, enabled=True)
        _register(pm, name, item, statuses[name], loaded)
        return
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
        return
    _register(pm, name, plugin, status, loaded)


def _check_requirements(
    loaded: dict[str, Any],
    available: dict[str, md.EntryPoint],
    statuses: dict[str, PluginStatus],
    where: str,
) -> None:
    """An enabled plugin whose ``CRMKIT_REQUIRES`` is not loaded is a configuration error."""
    for name in loaded:
        for required in statuses[name].requires:
            if required in loaded:
                continue
            why = (
                "is not enabled"
                if required in available or required in statuses
                else ("is not installed")
            )
            if required in statuses and statuses[required].enabled:
                why = f"failed to load ({statuses[required].reason})"
            raise PluginError(
                f"plugin {name!r} requires plugin {required!r}, which {why}; "
                f"enable {required!r} in {where} or disable {name!r}",
                plugin=name,
            )


def _add_plugin_hookspecs(pm: PluginManager, loaded: dict[str, Any]) -> None:
    """Add the hookspecs loaded plugins publish; re-register implementers of renamed hooks."""
    for plugin in loaded.values():
        for caller in pm.hook.crmkit_register_hookspecs.get_hookimpls():
            if caller.plugin is plugin:
                specs = caller.function()
                if specs is not None:
                    pm.add_hookspecs(specs)
                    pm.renamed_hooks.update(getattr(specs, "RENAMED_HOOKS", {}) or {})
    if not pm.renamed_hooks:
        return
    for name, plugin in list(loaded.items()):
        if any(_is_hookimpl(plugin, old) for old in pm.renamed_hooks):
            # registered before the rename was known: register again so the old
            # names are parsed as the new hooks
            pm.unregister(plugin)
            pm.register(plugin, name=name)


def _is_hookimpl(plugin: Any, attribute: str) -> bool:
    function = getattr(plugin, attribute, None)
    return function is not None and hasattr(function, "crmkit_impl")


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
            f'{hooks.API_VERSION}; add CRMKIT_API = ">={hooks.API_VERSION},<2" to its module'
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


def each_implementation(
    pm: pluggy.PluginManager, hook_name: str
) -> Iterator[tuple[str, Callable[[Mapping[str, Any]], Any]]]:
    """Each implementation of ``hook_name``, in pluggy's call order, as (plugin, call).

    ``call(arguments)`` runs that plugin's implementation with the arguments it accepts.
    For hooks whose answers the core takes plugin by plugin (360 sections, timeline,
    export, erasure, merge, catch-up): a failing plugin can be named and the others
    still run. Hook wrappers are not applied.
    """
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        yield impl.plugin_name, _caller(impl)


def _caller(impl: Any) -> Callable[[Mapping[str, Any]], Any]:
    def call(arguments: Mapping[str, Any]) -> Any:
        return impl.function(*(arguments[name] for name in impl.argnames))

    return call
