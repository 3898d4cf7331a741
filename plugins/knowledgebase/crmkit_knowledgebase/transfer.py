"""``crmkit kb import`` / ``crmkit kb export``: folders of Markdown files with front matter.

The layout is ``DIR/articles/<slug>.md`` and ``DIR/templates/<name>.md``; the file
format (TOML or YAML front matter, then the body) is
:mod:`crmkit_knowledgebase.frontmatter`. Import reads either form, file by file;
export writes the form asked for (TOML by default).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crmkit.plugin import ValidationError
from crmkit_knowledgebase import access
from crmkit_knowledgebase import tables as t
from crmkit_knowledgebase.content import clean_content
from crmkit_knowledgebase.entities import article_from_row
from crmkit_knowledgebase.frontmatter import (
    ARTICLE_KEYS,
    FORMATS,
    TEMPLATE_KEYS,
    check_keys,
    dump_article,
    dump_template,
    parse,
    read,
)

__all__ = ["ARTICLE_KEYS", "FORMATS", "TEMPLATE_KEYS", "dump_article", "dump_template",
           "export_dir", "import_dir", "parse", "read_article", "read_template"]  # fmt: skip

COUNTS = ("articles_created", "articles_updated", "articles_unchanged", "templates_created",
          "templates_updated", "templates_unchanged")  # fmt: skip


def read_article(path: Path) -> dict[str, Any]:
    """An article file's content (front matter and body), its keys checked."""
    where = str(path)
    document = read(_read(path), where)
    meta = document.meta
    check_keys(meta, ARTICLE_KEYS, where, document.format)
    meta.setdefault("slug", path.stem)
    if "title" not in meta:
        example = 'title = "Refund policy"' if document.format == "toml" else "title: Refund policy"
        raise ValidationError(f"{where}: front matter needs a title, e.g. {example}")
    return {**meta, "body": document.body}


def read_template(path: Path) -> dict[str, Any]:
    """A template file's fields (front matter and body), its keys checked."""
    where = str(path)
    document = read(_read(path), where)
    check_keys(document.meta, TEMPLATE_KEYS, where, document.format)
    document.meta.setdefault("name", path.stem)
    return {**document.meta, "body": document.body}


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
    if not articles and not templates:
        raise ValidationError(
            f"{directory} has no .md files (looked in {directory}/articles and "
            f"{directory}/templates); export a knowledge base first to see the layout"
        )
    return articles, templates


def import_dir(kb: Any, directory: str | Path, *, author: str | None = None) -> dict[str, int]:
    """Import ``DIR/articles/*.md`` (or ``DIR/*.md``) and ``DIR/templates/*.md``.

    Every file is read and checked first; then one transaction creates new
    articles, edits changed ones (a new revision each) and leaves unchanged
    ones alone; templates likewise. Any error changes nothing.
    """
    article_files, template_files = _files(Path(directory))
    articles = read_articles(article_files)
    templates = [(read_template(p), p) for p in template_files]
    counts: Counter[str] = Counter(dict.fromkeys(COUNTS, 0))
    kb.crm.authorise(access.WRITE)
    with kb.crm.transaction(actor=author) as ctx, access.bulk():
        counts.update(_store_articles(kb, articles, author))
        counts.update(_store_templates(kb, templates, author))
        # one entry for the import, with its counts (never one per article)
        ctx.audit("kb.import", "kb_import", changes={k: [None, counts[k]] for k in COUNTS})
    return {k: counts[k] for k in COUNTS}


def read_articles(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every article file's checked content; a slug may be in one file only."""
    articles = []
    seen: dict[str, Path] = {}
    for path in paths:
        data = read_article(path)
        try:
            data = clean_content(data)
        except ValidationError as exc:
            raise ValidationError(f"{path}: {exc}", field=exc.field) from None
        if data["slug"] in seen:
            raise ValidationError(f"{path}: slug {data['slug']!r} is also in {seen[data['slug']]}")
        seen[data["slug"]] = path
        articles.append(data)
    return articles


def _store_articles(kb: Any, articles: list[dict[str, Any]], author: str | None) -> Counter[str]:
    counts: Counter[str] = Counter()
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
        counts["articles_updated" if changed else "articles_unchanged"] += 1
    if new:
        kb.add_many(new, author=author, message="imported")
        counts["articles_created"] += len(new)
    return counts


def _store_templates(
    kb: Any, templates: list[tuple[dict[str, Any], Path]], author: str | None
) -> Counter[str]:
    counts: Counter[str] = Counter()
    names = {tpl.name: tpl for tpl in kb.templates()}
    for data, path in templates:
        fields = {k: v for k, v in data.items() if k != "name"}
        try:
            old = names.get(data["name"])
            if old is None:
                kb.add_template(data["name"], author=author, **fields)
                counts["templates_created"] += 1
                continue
            changed = {k: v for k, v in fields.items() if getattr(old, k) != v}
            if changed:
                kb.edit_template(data["name"], author=author, **changed)
            counts["templates_updated" if changed else "templates_unchanged"] += 1
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


def export_dir(kb: Any, directory: str | Path, *, front_matter: str = "toml") -> dict[str, int]:
    """Write every article and template as Markdown with front matter in ``front_matter``
    (``"toml"`` between ``+++`` lines, or ``"yaml"`` between ``---`` lines)."""
    if front_matter not in FORMATS:
        raise ValidationError(
            f"front matter format {front_matter!r} is not valid; use one of: {', '.join(FORMATS)}",
            field="front_matter",
        )
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
            text = dump_article(article.content(), front_matter)
            _write(directory / "articles" / f"{article.slug}.md", text)
            count += 1
        offset += len(batch)
    templates = kb.templates()
    for tpl in templates:
        data = {k: getattr(tpl, k) for k in (*TEMPLATE_KEYS, "body")}
        _write(directory / "templates" / f"{tpl.name}.md", dump_template(data, front_matter))
    return {"articles": count, "templates": len(templates)}
