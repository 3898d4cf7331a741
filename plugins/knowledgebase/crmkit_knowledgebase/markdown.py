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
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")


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
    blocks = _Blocks()
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith("```"):
            i = blocks.code(lines, i)
        else:
            blocks.line(lines[i])
        i += 1
    blocks.flush()
    return "\n".join(blocks.out)


class _Blocks:
    """The HTML so far, and the paragraph or list being built, as lines are read."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.para: list[str] = []
        self.items: list[str] = []
        self.list_tag = ""

    def flush(self) -> None:
        """End the paragraph or list being built."""
        if self.para:
            self.out.append("<p>" + inline(" ".join(self.para)) + "</p>")
            self.para.clear()
        if self.items:
            tag = self.list_tag
            self.out.append(f"<{tag}>" + "".join(f"<li>{x}</li>" for x in self.items) + f"</{tag}>")
            self.items.clear()
            self.list_tag = ""

    def code(self, lines: list[str], i: int) -> int:
        """A fenced code block opening at ``lines[i]``; the index of its closing fence."""
        self.flush()
        code = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith("```"):
            code.append(lines[i])
            i += 1
        self.out.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
        return i

    def line(self, line: str) -> None:
        """Any other line: blank, heading, list item, quote or text."""
        stripped = line.strip()
        if not stripped:
            self.flush()
        elif m := _HEADING.match(stripped):
            self.flush()
            level = len(m.group(1))
            self.out.append(f"<h{level}>{inline(m.group(2))}</h{level}>")
        elif _BULLET.match(line) or _ORDERED.match(line):
            self.list_item(line)
        elif stripped.startswith(">"):
            self.flush()
            self.out.append("<blockquote>" + inline(stripped.lstrip("> ")) + "</blockquote>")
        elif self.items and line.startswith((" ", "\t")):
            self.items[-1] += " " + inline(stripped)  # an item's continuation line
        else:
            if self.items:
                self.flush()
            self.para.append(stripped)

    def list_item(self, line: str) -> None:
        tag = "ul" if _BULLET.match(line) else "ol"
        if self.para or (self.items and tag != self.list_tag):
            self.flush()
        self.list_tag = tag
        self.items.append(inline((_BULLET if tag == "ul" else _ORDERED).sub("", line, count=1)))
