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

import codecs
import json
import os
import re
import tomllib
import zoneinfo
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from crmkit.core.entities import AttributeDefinition
from crmkit.errors import ConfigError, CrmError

CONFIG_NAME = "crmkit.toml"
DEFAULT_DATABASE = "sqlite:///crm.db"
PLUGINS_VARIABLE = "CRMKIT_PLUGINS"
CORE_KEYS = {
    "database", "plugins", "timezone", "currency", "templates", "attributes", "workflows",
    "roles", "server",
}  # fmt: skip


@attrs.define
class ServerSettings:
    """``[server]`` of crmkit.toml: how ``crmkit serve`` listens and guards sessions."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: threads per worker running request handlers (service code is synchronous); more
    #: threads wait on the GIL more than they gain (bench/api_load.py)
    threads: int = 8
    #: how long a quick route (run on the worker's event loop thread: Route.quick) waits
    #: for a lock another transaction holds before it answers 503 busy, in milliseconds;
    #: routes in the handler threads wait as long as the database lets them
    quick_lock_wait_ms: int = 2000
    #: set the cookie's Secure flag (on behind HTTPS; off for http://127.0.0.1)
    secure_cookies: bool = False
    session_idle_minutes: int = 60
    session_absolute_hours: int = 12
    #: responses on one keep-alive connection before the server closes it (the client
    #: reconnects, to whichever worker is free to accept: spreads clients over workers)
    keepalive_requests: int = 100
    #: largest request body accepted (bulk imports included), in bytes
    max_body_bytes: int = 50 * 1024 * 1024
    #: the language of messages and pages when the request does not say ("en" or "zh")
    language: str = "en"


SERVER_KEYS = {f.name: f.type for f in attrs.fields(ServerSettings)}


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
    #: ``[roles.<name>] grants = ["customers.read:own", ...]``: replaces or adds a role
    roles: dict[str, list[str]] = attrs.field(factory=dict)
    server: ServerSettings = attrs.field(factory=ServerSettings)
    path: Path | None = None
    #: where ``plugins`` came from when not from the file, e.g. the environment variable
    plugins_source: str | None = None

    @property
    def where(self) -> str:
        """The config file, for messages about its keys and tables."""
        return str(self.path) if self.path else "the configuration"

    @property
    def plugins_where(self) -> str:
        """Where the enabled plugins were chosen: ``CRMKIT_PLUGINS`` or the file."""
        return self.plugins_source or self.where


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
        data = _read_toml(file)
    config = from_dict(data, path=file)
    if os.environ.get("CRMKIT_DATABASE_URL"):
        config.database = os.environ["CRMKIT_DATABASE_URL"]
    plugins_from_environment(config)
    if database:
        config.database = database
    if file is not None and config.database.startswith("sqlite:///"):
        # a relative SQLite path in a config file is relative to that file
        db_path = config.database.removeprefix("sqlite:///")
        relative = db_path and db_path != ":memory:" and not Path(db_path).is_absolute()
        if relative and not database and not os.environ.get("CRMKIT_DATABASE_URL"):
            config.database = f"sqlite:///{(file.parent / db_path).resolve()}"
    return config


def _read_toml(file: Path) -> dict[str, Any]:
    """The parsed file: UTF-8, with or without a byte order mark (Notepad writes one)."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {file} not found; create it with 'crmkit init' or pass --config"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{file} is a folder; --config takes the path of a .toml file") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ConfigError(f"{file} is UTF-16 text; save it as UTF-8 (crmkit reads TOML as UTF-8)")
    try:
        text = raw.decode("utf-8-sig")  # a leading UTF-8 byte order mark is dropped
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{file}: line {line}: not UTF-8 text ({exc.reason}); save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from None


def plugins_from_environment(config: Config) -> None:
    """Apply ``CRMKIT_PLUGINS`` (when set) to ``config``, noting it as their source."""
    if PLUGINS_VARIABLE in os.environ:
        source = f"the environment variable {PLUGINS_VARIABLE}"
        config.plugins = parse_plugin_list(os.environ[PLUGINS_VARIABLE], where=source)
        config.plugins_source = source


def parse_plugin_list(text: str, *, where: str = "the plugin list") -> list[str] | None:
    """Comma-separated plugin names (``"all"``: None, every installed plugin); a name
    given twice is a :class:`ConfigError` naming it and ``where`` the list came from."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return None
    twice = listed_twice(names)
    if twice:
        raise ConfigError(f"{where}: {twice}")
    return names


def listed_twice(names: list[str]) -> str | None:
    """What is wrong when a plugin name occurs more than once in ``names``, else None."""
    counts = Counter(names)
    repeated = [name for name in counts if counts[name] > 1]
    if not repeated:
        return None
    named = ", ".join(repr(name) for name in repeated)
    return f"plugin {named} is listed more than once; list each plugin once"


def from_dict(data: dict[str, Any], path: Path | None = None) -> Config:
    """Validate the parsed TOML ``data`` (read from ``path``) into a :class:`Config`."""
    where = str(path) if path else "the configuration"

    def fail(key: str, message: str) -> CrmError:
        return ConfigError(f"{where}: {key}: {message}")

    config = Config(path=path)
    if "database" in data:
        config.database = _database(data["database"], fail)
    config.plugins = _plugins(data.get("plugins", "all"), fail)
    config.timezone = _timezone(data.get("timezone", "UTC"), fail)
    config.currency = _currency(data.get("currency", "EUR"), fail)
    if "templates" in data:
        config.templates = _templates(data["templates"], path, fail)
    config.attributes = _attributes(data.get("attributes") or {}, fail)
    workflows = data.get("workflows") or {}
    if not isinstance(workflows, dict):
        raise fail("workflows", "must be a table of workflow definitions")
    config.workflows = workflows
    config.plugin_settings = _plugin_settings(data, fail)
    config.roles = _roles(data.get("roles") or {}, fail)
    config.server = _server(data.get("server") or {}, fail)
    return config


def _roles(value: Any, fail: _Fail) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise fail("roles", "must be tables like [roles.sales_rep] grants = [...]")
    roles = {}
    for name, table in value.items():
        grants = table.get("grants") if isinstance(table, dict) else None
        if not isinstance(grants, list) or not all(isinstance(g, str) for g in grants):
            raise fail(
                f"roles.{name}",
                'needs grants = ["permission:scope", ...], e.g. ["customers.read:own"]',
            )
        unknown = set(table) - {"grants", "title"}
        if unknown:
            raise fail(f"roles.{name}", f"unknown keys {sorted(unknown)}; known: grants, title")
        roles[name] = grants
    return roles


def _server(value: Any, fail: _Fail) -> ServerSettings:
    if not isinstance(value, dict):
        raise fail("server", "must be a table: [server] port = 8000")
    unknown = set(value) - set(SERVER_KEYS)
    if unknown:
        raise fail("server", f"unknown keys {sorted(unknown)}; known: {sorted(SERVER_KEYS)}")
    settings = ServerSettings()
    for key, given in value.items():
        default = getattr(settings, key)
        if type(given) is not type(default):
            raise fail(f"server.{key}", f"must be {type(default).__name__}, not {given!r}")
        if isinstance(given, int) and not isinstance(given, bool) and given <= 0:
            raise fail(f"server.{key}", f"must be positive, not {given}")
        setattr(settings, key, given)
    if settings.language not in ("en", "zh"):
        raise fail("server.language", f"must be 'en' or 'zh', not {settings.language!r}")
    return settings


#: ``fail(key, message)``: the ConfigError naming the file and the key.
_Fail = Callable[[str, str], CrmError]


def _database(value: Any, fail: _Fail) -> str:
    if not isinstance(value, str) or not value:
        raise fail("database", "must be a URL such as sqlite:///crm.db")
    return value


def _plugins(value: Any, fail: _Fail) -> list[str] | None:
    if value == "all":
        return None
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        twice = listed_twice(value)
        if twice:
            raise fail("plugins", twice)
        return list(value)
    raise fail("plugins", 'must be a list of plugin names, or "all"')


def _timezone(value: Any, fail: _Fail) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise fail(
            "timezone", f"{value!r} is not an IANA time zone such as 'Europe/Paris'"
        ) from None
    return str(value)


def _currency(value: Any, fail: _Fail) -> str:
    if not (isinstance(value, str) and len(value) == 3 and value.isalpha()):
        raise fail("currency", f"{value!r} is not a 3-letter ISO currency code such as 'EUR'")
    return value.upper()


def _templates(value: Any, path: Path | None, fail: _Fail) -> str:
    """The templates folder, which must exist; a relative one is relative to the config
    file's folder."""
    if not isinstance(value, str) or not value.strip():
        raise fail("templates", "must be the path of a folder of templates, as a string")
    folder = Path(value).expanduser()
    if path is not None and not folder.is_absolute():
        folder = path.parent / folder
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        relative = (
            f" (relative paths are relative to the folder of {path})"
            if path is not None and not Path(value).expanduser().is_absolute()
            else ""
        )
        raise fail(
            "templates",
            f"the folder {folder}{relative} {problem}; create it, or remove the key to use "
            "the built-in templates",
        )
    return str(folder)


def _attributes(tables: dict[str, Any], fail: _Fail) -> list[AttributeDefinition]:
    return [_attribute(name, spec, fail) for name, spec in tables.items()]


def _attribute(name: str, spec: Any, fail: _Fail) -> AttributeDefinition:
    key = f"attributes.{name}"
    if not isinstance(spec, dict):
        raise fail(key, "must be a table with at least type = ...")
    unknown = set(spec) - {"type", "choices", "required", "description"}
    if unknown:
        raise fail(key, f"unknown keys {sorted(unknown)}")
    try:
        return AttributeDefinition(
            name=name,
            type=spec.get("type", ""),
            choices=tuple(spec.get("choices", ())),
            required=bool(spec.get("required", False)),
            description=str(spec.get("description", "")),
        )
    except CrmError as exc:
        raise fail(key, str(exc)) from None


def _plugin_settings(data: dict[str, Any], fail: _Fail) -> dict[str, dict[str, Any]]:
    """Every table that is not a core key: one plugin's settings each."""
    settings = {}
    for key, value in data.items():
        if key in CORE_KEYS:
            continue
        if not isinstance(value, dict):
            raise fail(key, "unknown setting; plugin settings go in a table named after the plugin")
        settings[key] = value
    return settings


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
