"""Front matter: the metadata block at the top of a Markdown file, read and written.

An article file::

    +++
    slug = "refund-policy"
    title = "Refund policy"
    category = "billing"
    tags = ["refund", "退款"]
    products = []
    audience = "public"
    status = "published"
    +++
    The body, in Markdown, byte for byte.

Front matter is read with the standard library's :mod:`tomllib` and written
by :func:`toml_value` (strings, integers and lists of strings are all it
needs). The body is everything after the closing ``+++`` line, kept exactly
(line endings included). Templates use the same shape with ``name, title,
format, category, triggers`` and a Jinja2 body.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from crmkit.plugin import ValidationError

ARTICLE_KEYS = ("slug", "title", "category", "tags", "products", "audience", "status")
TEMPLATE_KEYS = ("name", "title", "format", "category", "triggers")
_CLOSE = re.compile(r"^\+\+\+[ \t]*(?:\r?\n|\Z)", re.M)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string, once DEL is escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump(meta: dict[str, Any], body: str, keys: tuple[str, ...]) -> str:
    lines = [f"{k} = {toml_value(meta[k])}" for k in keys if meta.get(k) is not None]
    return "+++\n" + "\n".join(lines) + "\n+++\n" + body


def dump_article(content: dict[str, Any]) -> str:
    return dump(content, content.get("body", ""), ARTICLE_KEYS)


def dump_template(data: dict[str, Any]) -> str:
    return dump(data, data.get("body", ""), TEMPLATE_KEYS)


def parse(text: str, where: str) -> tuple[dict[str, Any], str]:
    """Split a document into (front matter, body); errors name ``where``."""
    text = text.removeprefix("\ufeff")
    if text.startswith("---"):
        raise ValidationError(
            f"{where}: YAML front matter (---) is not supported; write TOML between "
            '+++ lines, e.g. +++ / title = "Refund policy" / +++'
        )
    first = re.match(r"\+\+\+[ \t]*\r?\n", text)
    if not first:
        raise ValidationError(
            f"{where}: no front matter; start the file with a line '+++', then TOML "
            "(title = \"...\"), then a closing '+++' line and the Markdown body"
        )
    rest = text[first.end() :]
    close = _CLOSE.search(rest)
    if close is None:
        raise ValidationError(f"{where}: front matter is not closed; add a line '+++' after it")
    try:
        meta = tomllib.loads(rest[: close.start()])
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(
            f"{where}: invalid front matter: {exc}; write TOML such as "
            'title = "Refund policy" and tags = ["refund", "billing"]'
        ) from None
    return meta, rest[close.end() :]


def check_keys(meta: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(meta) - set(keys))
    if unknown:
        raise ValidationError(
            f"{where}: unknown front matter key(s) {', '.join(unknown)}; known: {', '.join(keys)}"
        )
    for key, value in meta.items():
        if key in ("tags", "products", "triggers"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValidationError(
                    f'{where}: {key} must be a list of strings, e.g. {key} = ["a", "b"]'
                )
        elif not isinstance(value, str):
            raise ValidationError(f'{where}: {key} must be a string, e.g. {key} = "..."')
