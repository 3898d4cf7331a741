"""`kb export-site`: public, published articles only; offline search tried in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from crmkit_knowledgebase.markdown import to_html
from crmkit_knowledgebase.site import export_site

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"


def site_text(directory: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(directory.rglob("*")) if p.is_file()
    )


def test_markdown_blocks_render_escaped() -> None:
    markdown = ("# Title #\r\nSome *em* and **bold**\ntext & <b>.\n\n- one\n  more\n- two\n"
                "1. first\n> quote\n```\n<code>\n```\n[x](javascript:alert) [y](https://e.com)")  # fmt: skip
    assert to_html(markdown).split("\n") == [
        "<h1>Title</h1>",
        "<p>Some <em>em</em> and <strong>bold</strong> text &amp; &lt;b&gt;.</p>",
        "<ul><li>one more</li><li>two</li></ul>",
        "<ol><li>first</li></ol>",
        "<blockquote>quote</blockquote>",
        "<pre><code>&lt;code&gt;</code></pre>",
        '<p><a href="#">x</a> <a href="https://e.com">y</a></p>',
    ]


def test_only_public_published_articles_reach_the_site(samples: Any, tmp_path: Path) -> None:
    kb = samples
    kb.add("Secret margins", "Our margin on kettles is SECRETWORD.", category="billing",
           audience="internal", status="published")  # fmt: skip
    kb.add("Coming soon", "DRAFTWORD return portal.", category="returns", audience="public",
           status="draft")  # fmt: skip
    kb.add("Unsafe <b>title</b>", "<script>alert(1)</script> [x](javascript:alert(2))",
           category="misc", audience="public", status="published")  # fmt: skip
    site = tmp_path / "site"
    result = export_site(kb, site)
    public = [a for a in kb.list(limit=None) if (a.audience, a.status) == ("public", "published")]
    assert result == {"articles": len(public), "categories": len({a.category for a in public})}
    pages = sorted(p.name for p in (site / "articles").iterdir())
    assert len(pages) == len(public) == 21
    assert "handling-vip-complaints.html" not in pages  # internal
    assert "new-return-portal.html" not in pages and "old-shipping-rates.html" not in pages
    everything = site_text(site)
    for leaked in ("SECRETWORD", "DRAFTWORD", "Secret margins", "Shipping rates 2024",
                   "VIP"):  # fmt: skip
        assert leaked not in everything, leaked
    index = json.loads(
        (site / "search-index.js").read_text(encoding="utf-8")
        .removeprefix("window.KB_INDEX = ").removesuffix(";\n")
    )  # fmt: skip
    assert sorted(d["title"] for d in index) == sorted(a.title for a in public)
    unsafe = (site / "articles" / "unsafe-b-title-b.html").read_text(encoding="utf-8")
    assert "<script>alert" not in unsafe and "&lt;script&gt;alert(1)&lt;/script&gt;" in unsafe
    assert 'href="#"' in unsafe and "javascript:" not in unsafe
    assert "Unsafe &lt;b&gt;title&lt;/b&gt;" in unsafe
    # no external assets: every src/href is relative (links inside articles aside)
    for page in site.rglob("*.html"):
        for ref in re.findall(r'(?:src|href)="([^"]*)"', page.read_text(encoding="utf-8")):
            assert not re.match(r"[a-z]+:|//", ref) or page.parent.name == "articles", ref
    # every relative link of every page leads to a file of the site (Chinese names too)
    for page in site.rglob("*.html"):
        for ref in re.findall(r'(?:src|href)="([^"#:]+)"', page.read_text(encoding="utf-8")):
            assert (page.parent / unquote(ref.split("?")[0])).is_file(), (page, ref)
    # an article that stops being public disappears at the next export
    kb.edit("refund-policy", audience="internal")
    export_site(kb, site)
    assert not (site / "articles" / "refund-policy.html").exists()
    assert "original packaging" not in site_text(site)


class DevTools:
    """Chromium driven over the DevTools protocol on a pipe (fds 3 and 4): no extra package."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--remote-debugging-pipe", "--window-size=1100,900",
                 f"--user-data-dir={profile}", "about:blank"]  # fmt: skip

        def fds() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            # fds 3 and 4 are made in the child (dup2 before exec) and kept open
            [CHROMIUM, *flags], preexec_fn=fds, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._id = 0
        self._buffer = b""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            if select.select([self._r], [], [], 0.5)[0]:
                self._buffer += os.read(self._r, 1 << 20)
        raise TimeoutError(method)

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", True, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:  # evaluated while the page navigates: ask again
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(expression)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                      ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # fmt: skip
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", True, type=kind, x=box[0], y=box[1],
                      button="left", clickCount=1)  # fmt: skip

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._w)
        os.close(self._r)


@pytest.mark.browser
def test_search_and_open_an_article_in_headless_chromium(samples: Any, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CRMKIT_REQUIRE_BROWSER") == "1":
            pytest.fail("CRMKIT_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("headless Chromium not installed at /usr/bin/chromium")
    site = tmp_path / "site"
    export_site(samples, site)
    browser = DevTools(tmp_path / "profile")
    try:
        browser.send("Page.navigate", True, url=(site / "index.html").as_uri())
        browser.wait("document.readyState === 'complete' && !!document.getElementById('q')")
        assert "退款政策" in browser.js("document.body.innerText")  # categories list it
        # type a word into the search box and press Enter: the form opens search.html?q=...
        browser.click("#q")
        browser.send("Input.insertText", True, text="packaging")
        for kind in ("keyDown", "keyUp"):
            browser.send("Input.dispatchKeyEvent", True, type=kind, key="Enter", code="Enter",
                         windowsVirtualKeyCode=13, text="\r")  # fmt: skip
        browser.wait("location.pathname.endsWith('search.html') && "
                     "document.querySelectorAll('a.result').length > 0")  # fmt: skip
        results = browser.js("[...document.querySelectorAll('a.result')].map(a => a.textContent)")
        assert sorted(results) == ["Installation of large appliances", "Refund policy"], results
        marks = browser.js(
            "[...document.querySelectorAll('#results mark')].map(m => m.textContent)"
        )
        assert marks == ["packaging", "packaging"]
        # the screenshot shows English results (CJK glyphs need fonts CI machines may lack)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = browser.send("Page.captureScreenshot", True, format="png")["data"]
        (ARTIFACTS / "kb_site.png").write_bytes(base64.b64decode(shot))
        # typing more in the box on the results page searches again, as you type (Chinese too)
        browser.js("document.getElementById('q').select()")
        browser.send("Input.insertText", True, text="退款")
        browser.wait("document.querySelector('a.result') && "
                     "document.querySelector('a.result').textContent === '退款政策'")  # fmt: skip
        browser.click("a.result")
        browser.wait("location.pathname.endsWith('.html') && "
                     "location.pathname.includes('/articles/') && "
                     "document.readyState === 'complete'")  # fmt: skip
        assert browser.js("document.getElementById('title').textContent") == "退款政策"
        assert "30 天内" in browser.js("document.getElementById('body').innerText")
    finally:
        browser.close()
    assert (ARTIFACTS / "kb_site.png").stat().st_size > 5000
