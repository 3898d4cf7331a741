"""What people write into the knowledge base, checked: article and template fields, slugs.

Every function raises :class:`crmkit.plugin.ValidationError` naming the field;
nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from crmkit.plugin import ValidationError
from crmkit_knowledgebase.text import fold

AUDIENCES = ("internal", "public")
STATUSES = ("draft", "published", "archived")
CONTENT_FIELDS = ("slug", "title", "body", "category", "tags", "products", "audience", "status")
#: the defaults of an article's optional fields
ARTICLE_DEFAULTS: dict[str, Any] = {
    "body": "",
    "category": "general",
    "tags": [],
    "products": [],
    "audience": "internal",
    "status": "draft",
}
_SLUG = re.compile(r"^[^\W_][\w-]*$")


def text_field(value: Any, field: str, *, max_len: int, required: bool = True) -> str:
    """Text of at most ``max_len`` characters; stripped, except a body."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text, got {value!r}", field=field)
    value = value.strip() if field != "body" else value
    if required and not value.strip():
        raise ValidationError(f"article {field} must not be empty", field=field)
    if len(value) > max_len:
        raise ValidationError(
            f"{field} is {len(value)} characters long; the maximum is {max_len}", field=field
        )
    return value


def names(value: Any, field: str) -> list[str]:
    """A list of distinct, stripped names (a comma-separated string is split)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{field} must be a list of names, got {value!r}", field=field)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValidationError(f"{field} must be names (text), got {item!r}", field=field)
        item = item.strip()
        if not item:
            continue
        if len(item) > 100:
            raise ValidationError(f"{field} entry {item[:20]!r}… is longer than 100", field=field)
        if item not in out:
            out.append(item)
    return out


def choice(value: Any, field: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValidationError(
            f"article {field} {value!r} is not valid; use one of: {', '.join(allowed)}",
            field=field,
        )
    return value


def slugify(title: str) -> str:
    """The slug of a title: ``Refund policy`` → ``refund-policy``, ``退款政策`` → ``退款政策``."""
    slug = re.sub(r"[\W_]+", "-", fold(title)).strip("-")[:80].strip("-")
    return slug or "article"


def check_slug(slug: Any) -> str:
    if not isinstance(slug, str) or not _SLUG.match(slug) or len(slug) > 200:
        raise ValidationError(
            f"slug {slug!r} is not valid; use letters, digits and '-' (e.g. 'refund-policy')",
            field="slug",
        )
    return slug


def clean_content(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate article content fields; raises ValidationError naming the field."""
    unknown = set(data) - set(CONTENT_FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown article field(s) {sorted(unknown)}; known: {', '.join(CONTENT_FIELDS)}",
            field=sorted(unknown)[0],
        )
    out: dict[str, Any] = {}
    if "slug" in data:
        out["slug"] = check_slug(data["slug"])
    if "title" in data:
        out["title"] = text_field(data["title"], "title", max_len=300)
    if "body" in data:
        out["body"] = text_field(data["body"], "body", max_len=1_000_000, required=False)
    if "category" in data:
        out["category"] = text_field(data["category"], "category", max_len=100)
    for name in ("tags", "products"):
        if name in data:
            out[name] = names(data[name], name)
    if "audience" in data:
        out["audience"] = choice(data["audience"], "audience", AUDIENCES)
    if "status" in data:
        out["status"] = choice(data["status"], "status", STATUSES)
    return out


def clean_new_article(item: Mapping[str, Any], position: int) -> dict[str, Any]:
    """A new article's content with the defaults filled in; errors name the article
    (``article 2 ('refund-policy')``) as well as the field."""
    try:
        content = clean_content(item)
        if "title" not in content:
            raise ValidationError("article title is missing", field="title")
    except ValidationError as exc:
        where = f"article {position} ({item.get('slug') or item.get('title')!r})"
        raise ValidationError(f"{where}: {exc}", field=exc.field) from None
    defaults = {k: list(v) if isinstance(v, list) else v for k, v in ARTICLE_DEFAULTS.items()}
    return {**defaults, **content}


def clean_template(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate reply template fields (the body is checked by :mod:`templating`)."""
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = check_slug(data["name"])
    if "title" in data:
        out["title"] = text_field(data["title"], "title", max_len=300, required=False)
    if "body" in data:
        out["body"] = text_field(data["body"], "body", max_len=100_000, required=False)
    if "format" in data:
        out["format"] = data["format"]
    if "triggers" in data:
        out["triggers"] = names(data["triggers"], "triggers")
    if "category" in data:
        out["category"] = text_field(data["category"], "category", max_len=100)
    return out
