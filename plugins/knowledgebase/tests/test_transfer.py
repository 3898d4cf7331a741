"""`kb import` / `kb export`: Markdown with TOML front matter, round trips without loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from crmkit_knowledgebase.plugin import SAMPLES, counts
from crmkit_knowledgebase.transfer import ARTICLE_KEYS, dump_article, export_dir, import_dir, parse
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.plugin import ValidationError


def snapshot(kb: Any) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    articles = [a.content() for a in kb.list(limit=None)]
    templates = [(t.name, t.title, t.format, t.category, t.triggers, t.body)
                 for t in kb.templates()]  # fmt: skip
    return articles, templates


def test_export_then_import_into_an_empty_base_loses_nothing(
    samples: Any, second_kb: Any, tmp_path: Path
) -> None:
    samples.add("Tricky", "line one\r\nline \"two\" \\ \t tab\n\n+++\nnot front matter\n",
                tags=["a,b", "引号\"", "x y"], products=["P-1"], slug="tricky")  # fmt: skip
    samples.add("No body", "", category="空 类别")
    assert export_dir(samples, tmp_path) == {"articles": 25, "templates": 20}
    assert (
        (tmp_path / "articles" / "退款政策.md")
        .read_text(encoding="utf-8")
        .startswith('+++\nslug = "退款政策"\ntitle = "退款政策"\n')
    )
    other = second_kb
    result = import_dir(other, tmp_path, author="importer")
    assert result["articles_created"] == 25 and result["templates_created"] == 20
    assert snapshot(other) == snapshot(samples)
    # importing the same files again changes nothing; an edited file is one new revision
    again = import_dir(other, tmp_path)
    assert (again["articles_unchanged"], again["templates_unchanged"]) == (25, 20)
    path = tmp_path / "articles" / "tricky.md"
    path.write_bytes(path.read_bytes().replace(b"line one", b"line 1"))
    assert import_dir(other, tmp_path)["articles_updated"] == 1
    history = other.revisions("tricky")
    assert [(r.number, r.message) for r in history] == [(1, "imported"), (2, "imported")]
    assert history[-1].body.startswith("line 1\r\n")


BROKEN = [
    ("no front matter", r"broken.md: no front matter; start the file with a line '\+\+\+'"),
    ("---\ntitle: x\n---\n", "broken.md: YAML front matter"),
    ('+++\ntitle = "x"\n', "broken.md: front matter is not closed"),
    ('+++\ntitle = "x\n+++\n', "broken.md: invalid front matter: .*line 1"),
    ('+++\ntitle = "x"\ncolour = "red"\n+++\n', "broken.md: unknown front matter key.*colour"),
    ('+++\ntitle = "x"\ntags = "refund"\n+++\n', "broken.md: tags must be a list of strings"),
    ('+++\ntitle = "x"\nstatus = "live"\n+++\n', "broken.md: article status 'live'"),
    ('+++\ncategory = "x"\n+++\n', "broken.md: front matter needs a title"),
    ('+++\ntitle = "x"\nslug = "a b"\n+++\n', "broken.md: slug 'a b' is not valid"),
]


def test_invalid_files_name_the_file_and_field_and_import_nothing(kb: Any, tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "a-good-one.md").write_text('+++\ntitle = "Fine"\n+++\nok\n')
    for content, message in BROKEN:
        (tmp_path / "articles" / "broken.md").write_text(content, encoding="utf-8")
        with pytest.raises(ValidationError, match=message):
            import_dir(kb, tmp_path)
    assert counts(kb.crm)["articles"] == 0


def test_an_unsafe_template_file_is_refused_and_nothing_is_imported(
    kb: Any, tmp_path: Path
) -> None:
    export = tmp_path / "in"
    (export / "templates").mkdir(parents=True)
    (export / "articles").mkdir()
    (export / "articles" / "fine.md").write_text('+++\ntitle = "Fine"\n+++\nok\n')
    (export / "templates" / "evil.md").write_text("+++\n+++\n{{ ''.__class__.__mro__ }}\n")
    with pytest.raises(ValidationError, match=r"evil.md: template 'evil' tried to reach outside"):
        import_dir(kb, export)
    assert counts(kb.crm) == dict.fromkeys(counts(kb.crm), 0)


def test_samples_import_into_an_empty_base(kb: Any) -> None:
    result = import_dir(kb, SAMPLES)
    assert result["articles_created"] == 23
    assert {a.status for a in kb.list(limit=None)} == {"published", "draft", "archived"}


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
bodies = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(deadline=None)  # timing varies on a loaded CI machine
@given(
    title=names.filter(lambda s: s.strip() == s),
    category=names,
    tags=st.lists(names, max_size=4),
    body=bodies,
    audience=st.sampled_from(["internal", "public"]),
    status=st.sampled_from(["draft", "published", "archived"]),
)
def test_front_matter_and_body_round_trip(
    title: str, category: str, tags: list[str], body: str, audience: str, status: str
) -> None:
    content = {"slug": "s", "title": title, "category": category, "tags": tags, "products": [],
               "audience": audience, "status": status, "body": body}  # fmt: skip
    meta, parsed_body = parse(dump_article(content), "x.md")
    assert parsed_body == body  # byte for byte, line endings and "+++" lines included
    assert meta == {k: content[k] for k in ARTICLE_KEYS}
