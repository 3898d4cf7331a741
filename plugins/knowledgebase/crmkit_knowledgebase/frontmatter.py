"""Front matter: the metadata block at the top of a Markdown file, read and written.

Two forms are read, chosen by the file's first line, and either is written:

TOML between ``+++`` lines (Hugo's form; this plugin's default)::

    +++
    slug = "refund-policy"
    title = "Refund policy"
    tags = ["refund", "退款"]
    audience = "public"
    +++
    The body, in Markdown, byte for byte.

YAML between ``---`` lines (Jekyll, MkDocs, Obsidian, Docusaurus; a closing ``...``
line is accepted too)::

    ---
    slug: refund-policy
    title: Refund policy
    tags: [refund, 退款]
    audience: public
    ---
    The body, in Markdown, byte for byte.

TOML is read with the standard library's :mod:`tomllib` and written by
:func:`toml_value` (strings and lists of strings are all it needs). YAML is read
with PyYAML's safe loader (``yaml.SafeLoader``, what ``yaml.safe_load`` uses: plain
data only, never Python objects), which here also refuses a key given twice, and
written with its safe dumper. The body is everything after the closing line, kept
exactly (line endings included). Errors name the file and, for a syntax error, the
line of the file. Templates use the same shapes with ``name, title, format,
category, triggers`` and a Jinja2 body.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import attrs
import yaml

from crmkit.plugin import ValidationError

ARTICLE_KEYS = ("slug", "title", "category", "tags", "products", "audience", "status")
TEMPLATE_KEYS = ("name", "title", "format", "category", "triggers")
LIST_KEYS = ("tags", "products", "triggers")
#: the front matter formats, the first is the default
FORMATS = ("toml", "yaml")
_OPEN = {"toml": re.compile(r"\+\+\+[ \t]*\r?\n"), "yaml": re.compile(r"---[ \t]*\r?\n")}
_CLOSE = {
    "toml": re.compile(r"^\+\+\+[ \t]*(?:\r?\n|\Z)", re.M),
    "yaml": re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.M),
}
_FENCE = {"toml": "+++", "yaml": "---"}
#: how a value is written, for the examples in error messages
_EXAMPLES = {
    "toml": ('{key} = "..."', '{key} = ["a", "b"]'),
    "yaml": ('{key}: "..."', "{key}: [a, b]"),
}


@attrs.frozen
class Document:
    """A file split into its front matter (``meta``, in format ``format``) and ``body``."""

    meta: dict[str, Any]
    body: str
    format: str


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


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


class _Dumper(yaml.SafeDumper):
    """The safe dumper; a text with a line break, a tab or another unprintable character
    is written double-quoted with escapes, so every value stays on its line."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = None if value.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def yaml_text(data: dict[str, Any]) -> str:
    """``data`` as YAML lines (``key: value``, lists in flow style ``[a, b]``)."""
    if not data:
        return ""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=None,
        width=1_000_000,  # never fold a long title over two lines
    )


def dump(meta: dict[str, Any], body: str, keys: tuple[str, ...], fmt: str = "toml") -> str:
    """A file of ``meta``'s ``keys`` (those not None) as front matter in ``fmt``, then ``body``."""
    data = {k: meta[k] for k in keys if meta.get(k) is not None}
    if fmt == "toml":
        header = "\n".join(f"{k} = {toml_value(v)}" for k, v in data.items()) + "\n"
    elif fmt == "yaml":
        header = yaml_text(data)
    else:
        raise ValueError(f"front matter format {fmt!r} is not one of {', '.join(FORMATS)}")
    return f"{_FENCE[fmt]}\n{header}{_FENCE[fmt]}\n{body}"


def dump_article(content: dict[str, Any], fmt: str = "toml") -> str:
    return dump(content, content.get("body", ""), ARTICLE_KEYS, fmt)


def dump_template(data: dict[str, Any], fmt: str = "toml") -> str:
    return dump(data, data.get("body", ""), TEMPLATE_KEYS, fmt)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def parse(text: str, where: str) -> tuple[dict[str, Any], str]:
    """Split a document into (front matter, body); errors name ``where``."""
    document = read(text, where)
    return document.meta, document.body


def read(text: str, where: str) -> Document:
    """Split a document into its front matter (TOML or YAML, by its first line) and body."""
    text = text.removeprefix("\ufeff")
    opened = ((fmt, opening.match(text)) for fmt, opening in _OPEN.items())
    fmt, first = next(((fmt, m) for fmt, m in opened if m is not None), ("", None))
    if first is None:
        raise ValidationError(
            f"{where}: no front matter; start the file with a line '+++' and TOML "
            "(title = \"...\"), or a line '---' and YAML (title: ...), then a closing line "
            "like the first and the Markdown body"
        )
    rest = text[first.end() :]
    close = _CLOSE[fmt].search(rest)
    if close is None:
        raise ValidationError(
            f"{where}: front matter is not closed; add a line '{_FENCE[fmt]}' after it"
        )
    header = rest[: close.start()]
    meta = _load_toml(header, where) if fmt == "toml" else _load_yaml(header, where)
    return Document(meta, rest[close.end() :], fmt)


def _load_toml(header: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(header)
    except tomllib.TOMLDecodeError as exc:
        # tomllib counts lines from the front matter's start; the file has the '+++' before
        message = re.sub(r"at line (\d+)", lambda m: f"at line {int(m.group(1)) + 1}", str(exc))
        raise ValidationError(
            f"{where}: invalid front matter: {message}; write TOML such as "
            'title = "Refund policy" and tags = ["refund", "billing"]'
        ) from None


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data only) that refuses a key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(header: str, where: str) -> dict[str, Any]:
    try:
        meta = yaml.load(header, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValidationError(f"{where}: {_yaml_problem(exc)}") from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ValidationError(
            f"{where}: YAML front matter must be keys with values, e.g. title: Refund policy"
        )
    return meta


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What went wrong and where, in the file's lines (marks count from 0 at the line after
    the opening '---')."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    problem = problem.replace("<stream end>", "the end of the front matter")
    problem = problem.replace("end of stream", "end of the front matter")
    where = f"line {mark.line + 2}: " if mark is not None else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        problem += f" ({context} that starts on line {context_mark.line + 2})"
    return (
        f"{where}invalid YAML front matter: {problem}; write YAML such as title: Refund policy "
        "and tags: [refund, billing] (quote a value that contains ': ' or starts with a "
        "special character)"
    )


def check_keys(meta: dict[str, Any], keys: tuple[str, ...], where: str, fmt: str = "toml") -> None:
    """Refuse unknown keys, and values of the wrong type (texts; lists of texts)."""
    unknown = sorted(set(meta) - set(keys), key=str)
    if unknown:
        raise ValidationError(
            f"{where}: unknown front matter key(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(keys)}"
        )
    text, names = _EXAMPLES[fmt]
    for key, value in meta.items():
        if key in LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                example = names.format(key=key)
                raise ValidationError(f"{where}: {key} must be a list of strings, e.g. {example}")
        elif not isinstance(value, str):
            hint = " (quote a value YAML would read as a number, date or yes/no)"
            raise ValidationError(
                f"{where}: {key} must be a string, e.g. {text.format(key=key)}"
                + (hint if fmt == "yaml" else "")
            )
