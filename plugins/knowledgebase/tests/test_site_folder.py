"""`kb export-site DIR` writes only into a new, empty or export-made folder and removes only
the files an earlier export wrote (listed in DIR/.crmkit-site)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from crmkit_knowledgebase.site import MARKER, export_site

from crmkit.plugin import ValidationError


def files(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def public(kb: Any, title: str) -> Any:
    return kb.add(title, f"{title} body.", category="help", audience="public", status="published")


def test_a_folder_export_site_did_not_make_is_refused_and_left_alone(
    kb: Any, tmp_path: Path
) -> None:
    public(kb, "Refund policy")
    site = tmp_path / "docs"
    (site / "articles").mkdir(parents=True)
    (site / "articles" / "mine.html").write_text("my page", encoding="utf-8")
    (site / "notes.txt").write_text("my notes", encoding="utf-8")
    before = files(site)
    with pytest.raises(ValidationError) as refused:
        export_site(kb, site)
    message = str(refused.value)
    assert str(site) in message and "not made by 'crmkit kb export-site'" in message
    assert MARKER in message and "give a new or empty folder" in message
    assert files(site) == before  # nothing written, nothing deleted
    file = tmp_path / "file.txt"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(ValidationError, match="is a file, not a folder"):
        export_site(kb, file)


def test_a_reexport_removes_only_its_own_files(kb: Any, tmp_path: Path) -> None:
    public(kb, "Refund policy")
    public(kb, "Shipping times")
    site = tmp_path / "empty"
    site.mkdir()  # an empty folder is fine; so is a new one
    assert export_site(kb, site) == {"articles": 2, "categories": 1}
    marker = json.loads((site / MARKER).read_text(encoding="utf-8"))
    written = sorted(f for f in files(site) if f != MARKER)
    assert marker["files"] == written
    assert "articles/refund-policy.html" in written
    # the user adds files of their own, next to the site's and among its pages
    (site / "notes.txt").write_text("my notes", encoding="utf-8")
    (site / "articles" / "mine.html").write_text("my page", encoding="utf-8")
    (site / "categories" / "extra").mkdir()
    (site / "categories" / "extra" / "a.txt").write_text("mine", encoding="utf-8")
    kb.edit("refund-policy", audience="internal")  # its page must go
    assert export_site(kb, site) == {"articles": 1, "categories": 1}
    after = files(site)
    assert "articles/refund-policy.html" not in after
    assert after["notes.txt"] == "my notes" and after["articles/mine.html"] == "my page"
    assert after["categories/extra/a.txt"] == "mine"
    assert "articles/shipping-times.html" in after
    marker = json.loads((site / MARKER).read_text(encoding="utf-8"))
    assert "articles/refund-policy.html" not in marker["files"]
    assert "notes.txt" not in marker["files"] and "articles/mine.html" not in marker["files"]


def test_a_file_of_the_users_in_the_way_of_a_new_page_is_refused(kb: Any, tmp_path: Path) -> None:
    public(kb, "Refund policy")
    site = tmp_path / "site"
    export_site(kb, site)
    (site / "articles" / "shipping-times.html").write_text("my own page", encoding="utf-8")
    public(kb, "Shipping times")
    before = files(site)
    with pytest.raises(ValidationError) as refused:
        export_site(kb, site)
    assert "shipping-times.html exists but was not written by" in str(refused.value)
    assert files(site) == before


@pytest.mark.parametrize(
    "marker",
    [
        '{"written_by": "crmkit kb export-site", "files": ["../outside.txt"]}',
        '{"written_by": "crmkit kb export-site", "files": ["/etc/hostname"]}',
        '{"written_by": "something else", "files": []}',
        "not json",
    ],
)
def test_a_marker_that_is_not_ours_is_refused(kb: Any, tmp_path: Path, marker: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / MARKER).write_text(marker, encoding="utf-8")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me", encoding="utf-8")
    with pytest.raises(ValidationError, match="is not a list of files written by"):
        export_site(kb, site)
    assert outside.read_text(encoding="utf-8") == "keep me"
    assert files(site) == {MARKER: marker}


def test_cli_refuses_with_one_error_line(kb: Any, cli_runner: Any, tmp_path: Path) -> None:
    public(kb, "Refund policy")
    site = tmp_path / "site"
    site.mkdir()
    (site / "readme.txt").write_text("mine", encoding="utf-8")
    result = cli_runner(["kb", "export-site", str(site)], plugins=["knowledgebase"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not made by" in lines[0]
    assert files(site) == {"readme.txt": "mine"}
