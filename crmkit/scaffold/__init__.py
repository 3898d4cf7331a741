"""``crmkit plugin new``: generate an installable plugin package from Jinja2 templates.

The templates in ``template/`` mirror the generated tree; path parts and file
contents are rendered with ``name``, ``distribution`` (``crmkit-<name>``, with
dashes), ``description``, ``title`` (the 360 section's) and ``api`` (this core's
API version, for ``CRMKIT_API``); the
``.jinja`` suffix is dropped. The generated plugin imports only the public API
(``crmkit.plugin``, and ``crmkit.testing`` in its tests).

:mod:`crmkit.scaffold.revision` writes new revisions into a plugin's branch
(``crmkit db revision``).
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from crmkit.errors import ValidationError
from crmkit.hooks import API_VERSION

TEMPLATE = Path(__file__).parent / "template"
#: names of the core's own commands and packages: a plugin group of the same name would clash
RESERVED = {
    "core", "cli", "crmkit", "db", "init", "plugins", "plugin", "customer", "contact", "staff",
    "interaction", "order", "workflow", "import", "export", "demo",
}  # fmt: skip
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


def check_name(name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ValidationError(
            f"plugin name {name!r} is not valid; use 2-31 lowercase letters, digits or _ "
            "starting with a letter, such as 'visits'"
        )
    if name in RESERVED:
        raise ValidationError(f"plugin name {name!r} is taken by crmkit itself; choose another")


def check_description(description: str) -> None:
    """The description goes verbatim into pyproject.toml, docstrings and the command's help:
    one line, without the quote or backslash that would end or escape those strings."""
    bad = sorted({c for c in description if c in '"\\' or not c.isprintable()})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValidationError(
            f"--description may not contain {shown}; write it as one line without double "
            "quotes or backslashes, such as 'Record store visits'"
        )


def distribution_name(name: str) -> str:
    """``crmkit-<name>`` with dashes, as PyPI spells distribution names (hotel_rooms ->
    crmkit-hotel-rooms)."""
    return "crmkit-" + name.replace("_", "-")


def generate(name: str, directory: Path, description: str = "") -> list[Path]:
    """Write the plugin package for ``name`` into ``directory`` (which must not exist)."""
    check_name(name)
    check_description(description)
    if directory.exists() and any(directory.iterdir()):
        raise ValidationError(f"{directory} already exists and is not empty; choose another --dir")
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    values = {
        "name": name,
        "distribution": distribution_name(name),
        "description": description or f"The {name} plugin for crmkit.",
        "title": name.replace("_", " ").capitalize(),
        "api": API_VERSION,
    }
    written = []
    for source in sorted(TEMPLATE.rglob("*.jinja")):
        relative = source.relative_to(TEMPLATE).as_posix().removesuffix(".jinja")
        target = directory / env.from_string(relative).render(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(env.from_string(source.read_text(encoding="utf-8")).render(values))
        written.append(target)
    return written
