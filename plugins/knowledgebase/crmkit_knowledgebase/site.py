"""``crmkit kb export-site DIR``: a static self-service site of public, published articles.

Layout::

    DIR/index.html              categories with their articles, a search box
    DIR/categories/<c>.html     one page per category
    DIR/articles/<slug>.html    one page per article (Markdown rendered safely)
    DIR/search.html             results page: reads ?q=, searches in the browser
    DIR/search-index.js         window.KB_INDEX = [...] (title, category, tags, text, url)
    DIR/search.js               the search, plain JavaScript
    DIR/.crmkit-site            the files this export wrote (JSON)

The folder must be new, empty, or made by an earlier export (it has
``.crmkit-site``); anything else is refused before a file is written. A
re-export replaces and removes only the files the marker lists, so a file the
user put in the folder survives, and one in the way of a new page is refused.

Only articles with ``audience = "public"`` and ``status = "published"`` are
written; the search index is built from the same list, so internal or draft
text can not leak through it. No external assets: it works from ``file://``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from crmkit.plugin import ValidationError
from crmkit_knowledgebase.content import slugify
from crmkit_knowledgebase.markdown import to_html
from crmkit_knowledgebase.text import has_cjk, plain_text

STATIC = Path(__file__).parent / "static"
#: lists the files an export wrote; only a folder with it (or an empty one) is written into
MARKER = ".crmkit-site"
WRITTEN_BY = "crmkit kb export-site"
MARKER_NOTE = (
    "The files of the self-service site written by 'crmkit kb export-site' into this folder. "
    "The next export replaces and removes only these files; keep this file."
)
TOP_FILES = ("index.html", "search.html", "search-index.js", "search.js")


def _file(name: str) -> str:
    """The page's file name: the slug as is (letters of any script, digits, '-'); links to it
    are percent-encoded (``|urlencode`` in the templates), which browsers decode back."""
    return name.replace("/", "-") + ".html"


def export_site(kb: Any, directory: str | Path, *, title: str | None = None) -> dict[str, int]:
    """Write the site into ``directory``: a new or empty folder, or one an earlier export made.

    The files written are listed in ``DIR/.crmkit-site``; a re-export replaces and removes
    only the files listed there (pages of articles no longer public go), so a file of the
    user's in the folder is never overwritten or deleted. Any other folder is refused before
    anything is written (``ValidationError``).
    """
    directory = Path(directory)
    previous = _previous_files(directory)
    site_title = title or kb.settings.get("site_title") or "Help centre"
    env = kb.crm.templates
    articles = _public_articles(kb)
    lang = (
        "zh" if articles and sum(has_cjk(a.title) for a in articles) > len(articles) / 2 else "en"
    )
    categories: dict[str, dict[str, Any]] = {}
    for a in articles:
        cat = categories.setdefault(
            a.category, {"name": a.category, "file": _file(slugify(a.category)), "articles": []}
        )
        cat["articles"].append({"title": a.title, "file": _file(a.slug)})
    planned = {*TOP_FILES, *(f"articles/{_file(a.slug)}" for a in articles)}
    planned |= {f"categories/{c['file']}" for c in categories.values()}
    _refuse_foreign(directory, planned - previous)
    for sub in ("articles", "categories"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # listed before writing: an export stopped half-way leaves no unlisted file behind
    _write_marker(directory, previous | planned)
    common = {"site_title": site_title, "lang": lang}
    article_page = env.get_template("knowledgebase/site/article.html")
    for a in articles:
        html = article_page.render(
            **common,
            root="../",
            article=a,
            body_html=to_html(a.body),
            category_file=categories[a.category]["file"],
        )
        (directory / "articles" / _file(a.slug)).write_text(html, encoding="utf-8")
    category_page = env.get_template("knowledgebase/site/category.html")
    for cat in categories.values():
        (directory / "categories" / cat["file"]).write_text(
            category_page.render(**common, root="../", category=cat), encoding="utf-8"
        )
    ordered = sorted(categories.values(), key=lambda c: c["name"])
    (directory / "index.html").write_text(
        env.get_template("knowledgebase/site/index.html").render(
            **common, root="", categories=ordered
        ),
        encoding="utf-8",
    )
    (directory / "search.html").write_text(
        env.get_template("knowledgebase/site/search.html").render(**common, root=""),
        encoding="utf-8",
    )
    (directory / "search-index.js").write_text(_search_index(articles), encoding="utf-8")
    shutil.copyfile(STATIC / "search.js", directory / "search.js")
    _remove(directory, previous - planned)  # pages of articles no longer public must go
    _write_marker(directory, planned)
    return {"articles": len(articles), "categories": len(categories)}


def _public_articles(kb: Any) -> list[Any]:
    articles = []
    offset = 0
    while True:
        batch = kb.list(audience="public", status="published", limit=1000, offset=offset)
        if not batch:
            break
        articles.extend(batch)
        offset += len(batch)
    # a defensive second check: only public, published articles ever reach the site
    return [a for a in articles if a.audience == "public" and a.status == "published"]


def _search_index(articles: list[Any]) -> str:
    index = [
        {
            "url": "articles/" + quote(_file(a.slug)),
            "title": a.title,
            "category": a.category,
            "tags": a.tags,
            "text": plain_text(a.body),
        }
        for a in articles
    ]
    payload = json.dumps(index, ensure_ascii=False)
    payload = (
        payload.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )
    return f"window.KB_INDEX = {payload};\n"


# --------------------------------------------------------------------------
# the folder: only an empty one or one an earlier export made, and only our files
# --------------------------------------------------------------------------


def _previous_files(directory: Path) -> set[str]:
    """The files the previous export wrote (none for a new or empty folder); any other
    folder is refused."""
    if not directory.exists():
        return set()
    if not directory.is_dir():
        raise ValidationError(
            f"{directory} is a file, not a folder; give a folder for the site", field="directory"
        )
    marker = directory / MARKER
    if marker.is_file():
        return _read_marker(marker)
    if any(directory.iterdir()):
        raise ValidationError(
            f"{directory} is not empty and was not made by 'crmkit kb export-site' (it has no "
            f"{MARKER} file); the site is written only into a new or empty folder or one an "
            "earlier export-site made, so that no file of yours is overwritten or deleted; "
            "give a new or empty folder",
            field="directory",
        )
    return set()


def _read_marker(marker: Path) -> set[str]:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("written_by") != WRITTEN_BY or not isinstance(files, list):
            raise ValueError("not written by export-site")
        return {_relative(f) for f in files}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValidationError(
            f"{marker} is not a list of files written by 'crmkit kb export-site' ({exc}); "
            "so nothing in the folder is known to be the site's: remove the site's files and "
            f"{MARKER} yourself, or give a new or empty folder",
            field="directory",
        ) from None


def _relative(name: Any) -> str:
    """A file name from the marker: relative, inside the folder (never ``..``)."""
    if not isinstance(name, str):
        raise ValueError(f"{name!r} is not a file name")
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("..", ".", "") for p in path.parts):
        raise ValueError(f"{name!r} is not a file inside the folder")
    if "\\" in name or path.parts[0] == MARKER:
        raise ValueError(f"{name!r} is not a file of the site")
    return name


def _refuse_foreign(directory: Path, new: set[str]) -> None:
    """Refuse to overwrite a file this export did not write before (it is the user's)."""
    for sub in ("articles", "categories"):
        path = directory / sub
        if (path.exists() or path.is_symlink()) and (path.is_symlink() or not path.is_dir()):
            raise ValidationError(
                f"{path} is not a folder the site can write its pages into; move it away",
                field="directory",
            )
    for name in sorted(new):
        path = directory / name
        if path.exists() or path.is_symlink():
            raise ValidationError(
                f"{path} exists but was not written by 'crmkit kb export-site'; the site would "
                "overwrite it: move it away, or give a new or empty folder",
                field="directory",
            )


def _remove(directory: Path, stale: set[str]) -> None:
    """Remove the files an earlier export wrote and this one did not (folders stay)."""
    root = directory.resolve()
    for name in sorted(stale):
        path = directory / name
        if path.parent.resolve() != (root / name).parent or not (
            path.is_file() or path.is_symlink()
        ):
            continue  # replaced by a folder, or its folder moved: not ours to remove
        path.unlink()


def _write_marker(directory: Path, files: set[str]) -> None:
    data = {"written_by": WRITTEN_BY, "note": MARKER_NOTE, "files": sorted(files)}
    temporary = directory / (MARKER + ".tmp")
    temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, directory / MARKER)
