"""A small, safe Markdown renderer for the static site (no dependency).

Supports headings, paragraphs, ``-``/``*``/``1.`` lists, ``>`` quotes, fenced
code blocks, ``inline code``, ``**bold**``, ``*em*`` and ``[links](url)``.
Everything is HTML-escaped first; link targets are limited to http(s),
mailto and relative URLs (``javascript:`` is refused), so an article can not
inject markup into the site.
"""

from __future__ import annotations

import html
import re

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_ORDERED = re.compile(r"^\s*\d+[.)]\s+")
_BULLET = re.compile(r"^\s*[-*+]\s+")


def _safe_url(url: str) -> str:
    m = _SCHEME.match(url)
    if m and m.group(0).lower() not in ("http:", "https:", "mailto:"):
        return "#"
    return url


def inline(text: str) -> str:
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2 == 1:
            out.append("<code>" + html.escape(part[1:-1]) + "</code>")
            continue
        s = html.escape(part, quote=True)
        s = _LINK.sub(lambda m: f'<a href="{_safe_url(m.group(2))}">{m.group(1)}</a>', s)
        s = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", s)
        s = _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", s)
        out.append(s)
    return "".join(out)


def to_html(markdown: str) -> str:
    lines = markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag = ""
    i = 0

    def flush() -> None:
        nonlocal list_tag
        if para:
            out.append("<p>" + inline(" ".join(para)) + "</p>")
            para.clear()
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{x}</li>" for x in items) + f"</{list_tag}>")
            items.clear()
            list_tag = ""

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
        elif not stripped:
            flush()
        elif m := re.match(r"^(#{1,6})\s+(.*?)\s*#*$", stripped):
            flush()
            level = len(m.group(1))
            out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif _BULLET.match(line) or _ORDERED.match(line):
            tag = "ul" if _BULLET.match(line) else "ol"
            if para or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append(inline((_BULLET if tag == "ul" else _ORDERED).sub("", line, count=1)))
        elif stripped.startswith(">"):
            flush()
            out.append("<blockquote>" + inline(stripped.lstrip("> ")) + "</blockquote>")
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + inline(stripped)
        else:
            if items:
                flush()
            para.append(stripped)
        i += 1
    flush()
    return "\n".join(out)
