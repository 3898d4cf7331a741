"""``crmkit kb export-site DIR``: a static self-service site of public, published articles.

Layout::

    DIR/index.html              categories with their articles, a search box
    DIR/categories/<c>.html     one page per category
    DIR/articles/<slug>.html    one page per article (Markdown rendered safely)
    DIR/search.html             results page: reads ?q=, searches in the browser
    DIR/search-index.js         window.KB_INDEX = [...] (title, category, tags, text, url)
    DIR/search.js               the search, plain JavaScript

Only articles with ``audience = "public"`` and ``status = "published"`` are
written; the search index is built from the same list, so internal or draft
text can not leak through it. No external assets: it works from ``file://``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

from crmkit_knowledgebase.content import slugify
from crmkit_knowledgebase.markdown import to_html
from crmkit_knowledgebase.text import has_cjk, plain_text

STATIC = Path(__file__).parent / "static"


def _file(name: str) -> str:
    """The page's file name: the slug as is (letters of any script, digits, '-'); links to it
    are percent-encoded (``|urlencode`` in the templates), which browsers decode back."""
    return name.replace("/", "-") + ".html"


def export_site(kb: Any, directory: str | Path, *, title: str | None = None) -> dict[str, int]:
    directory = Path(directory)
    for sub in ("articles", "categories"):
        path = directory / sub
        if path.exists():
            shutil.rmtree(path)  # pages of articles no longer public must go
        path.mkdir(parents=True)
    site_title = title or kb.settings.get("site_title") or "Help centre"
    env = kb.crm.templates
    articles = []
    offset = 0
    while True:
        batch = kb.list(audience="public", status="published", limit=1000, offset=offset)
        if not batch:
            break
        articles.extend(batch)
        offset += len(batch)
    # a defensive second check: only public, published articles ever reach the site
    articles = [a for a in articles if a.audience == "public" and a.status == "published"]
    lang = (
        "zh" if articles and sum(has_cjk(a.title) for a in articles) > len(articles) / 2 else "en"
    )
    categories: dict[str, dict[str, Any]] = {}
    for a in articles:
        cat = categories.setdefault(
            a.category, {"name": a.category, "file": _file(slugify(a.category)), "articles": []}
        )
        cat["articles"].append({"title": a.title, "file": _file(a.slug)})
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
    (directory / "search-index.js").write_text(f"window.KB_INDEX = {payload};\n", encoding="utf-8")
    shutil.copyfile(STATIC / "search.js", directory / "search.js")
    return {"articles": len(articles), "categories": len(categories)}
