"""``crmkit.toml``: where the database is, which plugins are enabled, their settings.

Example::

    database = "sqlite:///crm.db"
    plugins = ["loyalty", "complaints"]     # or "all": every installed plugin
    timezone = "Asia/Shanghai"              # display zone; storage is UTC
    currency = "CNY"
    templates = "templates"                 # folder that overrides any page

    [attributes.vip]                        # a typed custom attribute
    type = "boolean"

    [workflows.onboarding]                  # a workflow defined as data
    initial = "welcome"
    ...

    [loyalty]                               # one table per plugin's settings
    points_per_unit = 2

The environment overrides the file: ``CRMKIT_DATABASE_URL`` the database,
``CRMKIT_PLUGINS`` the plugins (comma-separated; empty for none),
``CRMKIT_CONFIG`` which file to read.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import zoneinfo
from pathlib import Path
from typing import Any

import attrs

from crmkit.core.entities import AttributeDefinition
from crmkit.errors import ConfigError, CrmError

CONFIG_NAME = "crmkit.toml"
DEFAULT_DATABASE = "sqlite:///crm.db"
CORE_KEYS = {"database", "plugins", "timezone", "currency", "templates", "attributes", "workflows"}


@attrs.define
class Config:
    database: str = DEFAULT_DATABASE
    plugins: list[str] | None = None  # None: every installed plugin
    timezone: str = "UTC"
    currency: str = "EUR"
    templates: str | None = None
    attributes: list[AttributeDefinition] = attrs.field(factory=list)
    workflows: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    plugin_settings: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    path: Path | None = None

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "the configuration"


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to read: ``path``, else ``$CRMKIT_CONFIG``, else ./crmkit.toml if present."""
    if path is not None:
        return Path(path)
    if os.environ.get("CRMKIT_CONFIG"):
        return Path(os.environ["CRMKIT_CONFIG"])
    local = Path.cwd() / CONFIG_NAME
    return local if local.is_file() else None


def load(path: str | os.PathLike[str] | None = None, *, database: str | None = None) -> Config:
    """Read and validate the configuration, applying environment overrides."""
    file = find_config(path)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"config file {file} not found; create it with 'crmkit init' or pass --config"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    config = from_dict(data, path=file)
    if os.environ.get("CRMKIT_DATABASE_URL"):
        config.database = os.environ["CRMKIT_DATABASE_URL"]
    if "CRMKIT_PLUGINS" in os.environ:
        config.plugins = parse_plugin_list(os.environ["CRMKIT_PLUGINS"])
    if database:
        config.database = database
    if file is not None and config.database.startswith("sqlite:///"):
        # a relative SQLite path in a config file is relative to that file
        db_path = config.database.removeprefix("sqlite:///")
        relative = db_path and db_path != ":memory:" and not Path(db_path).is_absolute()
        if relative and not database and not os.environ.get("CRMKIT_DATABASE_URL"):
            config.database = f"sqlite:///{(file.parent / db_path).resolve()}"
    return config


def parse_plugin_list(text: str) -> list[str] | None:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return None if names == ["all"] else names


def from_dict(data: dict[str, Any], path: Path | None = None) -> Config:
    where = str(path) if path else "the configuration"

    def fail(key: str, message: str) -> CrmError:
        return ConfigError(f"{where}: {key}: {message}")

    config = Config(path=path)
    if "database" in data:
        if not isinstance(data["database"], str) or not data["database"]:
            raise fail("database", "must be a URL such as sqlite:///crm.db")
        config.database = data["database"]
    plugins = data.get("plugins", "all")
    if plugins == "all":
        config.plugins = None
    elif isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        config.plugins = list(plugins)
    else:
        raise fail("plugins", 'must be a list of plugin names, or "all"')
    tz = data.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise fail("timezone", f"{tz!r} is not an IANA time zone such as 'Europe/Paris'") from None
    config.timezone = tz
    currency = data.get("currency", "EUR")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise fail("currency", f"{currency!r} is not a 3-letter ISO currency code such as 'EUR'")
    config.currency = currency.upper()
    if "templates" in data:
        config.templates = str(data["templates"])
        if path is not None and not Path(config.templates).is_absolute():
            config.templates = str(path.parent / config.templates)
    for name, spec in (data.get("attributes") or {}).items():
        if not isinstance(spec, dict):
            raise fail(f"attributes.{name}", "must be a table with at least type = ...")
        unknown = set(spec) - {"type", "choices", "required", "description"}
        if unknown:
            raise fail(f"attributes.{name}", f"unknown keys {sorted(unknown)}")
        try:
            config.attributes.append(
                AttributeDefinition(
                    name=name,
                    type=spec.get("type", ""),
                    choices=tuple(spec.get("choices", ())),
                    required=bool(spec.get("required", False)),
                    description=str(spec.get("description", "")),
                )
            )
        except CrmError as exc:
            raise fail(f"attributes.{name}", str(exc)) from None
    workflows = data.get("workflows") or {}
    if not isinstance(workflows, dict):
        raise fail("workflows", "must be a table of workflow definitions")
    config.workflows = workflows
    for key, value in data.items():
        if key in CORE_KEYS:
            continue
        if not isinstance(value, dict):
            raise fail(key, "unknown setting; plugin settings go in a table named after the plugin")
        config.plugin_settings[key] = value
    return config


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dump(config: Config, plugin_defaults: dict[str, dict[str, Any]]) -> str:
    """Render a commented ``crmkit.toml`` for ``crmkit init``."""
    lines = [
        "# crmkit configuration. Reference: README.md#configuration",
        f"database = {_toml(config.database)}",
        "plugins = "
        + (
            '"all"' if config.plugins is None else "[" + ", ".join(map(_toml, config.plugins)) + "]"
        ),
        f"timezone = {_toml(config.timezone)}",
        f"currency = {_toml(config.currency)}",
    ]
    for name, defaults in sorted(plugin_defaults.items()):
        lines += ["", f"[{name}]"]
        lines += [f"{_toml_key(key)} = {_toml(value)}" for key, value in defaults.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: Any) -> str:
    """A bare key when TOML allows one, otherwise a quoted key ("product quality")."""
    key = str(key)
    return key if _BARE_KEY.fullmatch(key) else _toml(key)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # a TOML basic string: JSON's escapes are valid TOML escapes
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return _toml(str(value))
