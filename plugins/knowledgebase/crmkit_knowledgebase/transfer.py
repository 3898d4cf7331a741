"""``crmkit kb import`` / ``crmkit kb export``: folders of Markdown files with front matter.

The layout is ``DIR/articles/<slug>.md`` and ``DIR/templates/<name>.md``; the file
format is :mod:`crmkit_knowledgebase.frontmatter`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from crmkit.plugin import ValidationError
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.content import clean_content
from crmkit_knowledgebase.entities import article_from_row
from crmkit_knowledgebase.frontmatter import (
    ARTICLE_KEYS,
    TEMPLATE_KEYS,
    check_keys,
    dump_article,
    dump_template,
    parse,
)

__all__ = ["ARTICLE_KEYS", "TEMPLATE_KEYS", "dump_article", "dump_template", "export_dir",
           "import_dir", "parse", "read_article", "read_template"]  # fmt: skip


def read_article(path: Path) -> dict[str, Any]:
    where = str(path)
    meta, body = parse(_read(path), where)
    check_keys(meta, ARTICLE_KEYS, where)
    meta.setdefault("slug", path.stem)
    if "title" not in meta:
        raise ValidationError(f'{where}: front matter needs a title, e.g. title = "Refund policy"')
    return {**meta, "body": body}


def read_template(path: Path) -> dict[str, Any]:
    where = str(path)
    meta, body = parse(_read(path), where)
    check_keys(meta, TEMPLATE_KEYS, where)
    meta.setdefault("name", path.stem)
    return {**meta, "body": body}


def _read(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None


def _write(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(text)


def _files(directory: Path) -> tuple[list[Path], list[Path]]:
    if not directory.is_dir():
        raise ValidationError(f"{directory} is not a directory; give the folder to import")
    articles = sorted((directory / "articles").glob("*.md")) if (
        directory / "articles"
    ).is_dir() else sorted(directory.glob("*.md"))  # fmt: skip
    templates = sorted((directory / "templates").glob("*.md"))
    return articles, templates


def import_dir(kb: Any, directory: str | Path, *, author: str | None = None) -> dict[str, int]:
    """Import ``DIR/articles/*.md`` (or ``DIR/*.md``) and ``DIR/templates/*.md``.

    Every file is read and checked first; then one transaction creates new
    articles, edits changed ones (a new revision each) and leaves unchanged
    ones alone. Any error changes nothing.
    """
    directory = Path(directory)
    article_files, template_files = _files(directory)
    if not article_files and not template_files:
        raise ValidationError(
            f"{directory} has no .md files (looked in {directory}/articles and "
            f"{directory}/templates); export a knowledge base first to see the layout"
        )
    articles = []
    seen: dict[str, Path] = {}
    for path in article_files:
        data = read_article(path)
        try:
            data = clean_content(data)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}", field=exc.field) from None
        if data["slug"] in seen:
            raise ValidationError(f"{path}: slug {data['slug']!r} is also in {seen[data['slug']]}")
        seen[data["slug"]] = path
        articles.append(data)
    templates = [read_template(p) for p in template_files]
    counts = dict.fromkeys(
        ("articles_created", "articles_updated", "articles_unchanged", "templates_created",
         "templates_updated", "templates_unchanged"), 0,
    )  # fmt: skip
    with kb.crm.transaction(actor=author):
        existing = {a.slug: a for a in _existing(kb, [a["slug"] for a in articles])}
        new = []
        for data in articles:
            old = existing.get(data["slug"])
            if old is None:
                new.append(data)
                continue
            changed = {k: v for k, v in data.items() if getattr(old, k) != v}
            if changed:
                kb.edit(old.id, author=author, message="imported", **changed)
                counts["articles_updated"] += 1
            else:
                counts["articles_unchanged"] += 1
        if new:
            kb.add_many(new, author=author, message="imported")
            counts["articles_created"] += len(new)
        names = {t.name: t for t in kb.templates()}
        for data, path in zip(templates, template_files, strict=True):
            name = data.pop("name")
            try:
                old = names.get(name)
                if old is None:
                    kb.add_template(name, author=author, **data)
                    counts["templates_created"] += 1
                    continue
                changed = {k: v for k, v in data.items() if getattr(old, k) != v}
                if changed:
                    kb.edit_template(name, author=author, **changed)
                    counts["templates_updated"] += 1
                else:
                    counts["templates_unchanged"] += 1
            except ValidationError as exc:
                raise ValidationError(f"{path}: {exc}", field=exc.field) from None
    return counts


def _existing(kb: Any, slugs: list[str]) -> list[Any]:
    found = []
    with kb.crm.reading() as connection:
        for i in range(0, len(slugs), 500):
            rows = connection.execute(
                select(t.articles).where(t.articles.c.slug.in_(slugs[i : i + 500]))
            )
            found.extend(article_from_row(r) for r in rows)
    return found


def export_dir(kb: Any, directory: str | Path) -> dict[str, int]:
    """Write every article and template as Markdown with front matter."""
    directory = Path(directory)
    (directory / "articles").mkdir(parents=True, exist_ok=True)
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    count = 0
    offset = 0
    while True:
        batch = kb.list(limit=1000, offset=offset)
        if not batch:
            break
        for article in batch:
            _write(directory / "articles" / f"{article.slug}.md", dump_article(article.content()))
            count += 1
        offset += len(batch)
    templates = kb.templates()
    for tpl in templates:
        data = {k: getattr(tpl, k) for k in (*TEMPLATE_KEYS, "body")}
        _write(directory / "templates" / f"{tpl.name}.md", dump_template(data))
    return {"articles": count, "templates": len(templates)}
